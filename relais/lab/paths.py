"""Where the lab keeps things on the controller (root-owned, never in the repository).

- state (``/var/lib/relais/lab``, override ``RELAIS_LAB_STATE``): the controller's
  SSH key and known_hosts, each host's own layer and host key, the resolver and
  proxy configuration, the record of the last ``lab up``.
- cache (``/var/cache/relais/lab``, override ``RELAIS_LAB_CACHE``): base images,
  named by the hash of their recipe, and the package proxy's cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = Path("/var/lib/relais/lab")
CACHE_DIR = Path("/var/cache/relais/lab")


@dataclass(frozen=True)
class LabPaths:
    state: Path
    cache: Path

    @classmethod
    def default(cls) -> LabPaths:
        return cls(
            state=Path(os.environ.get("RELAIS_LAB_STATE", STATE_DIR)),
            cache=Path(os.environ.get("RELAIS_LAB_CACHE", CACHE_DIR)),
        )

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def record(self) -> Path:
        """The lab as last brought up: lets `down`, `ssh` and `exec` work without the Plan."""
        return self.state / "lab.json"

    @property
    def ssh_dir(self) -> Path:
        return self.state / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def hosts_dir(self) -> Path:
        return self.state / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    @property
    def dns_dir(self) -> Path:
        return self.state / "dns"

    @property
    def proxy_dir(self) -> Path:
        return self.state / "package-proxy"

    @property
    def nft_applied(self) -> Path:
        return self.state / "nftables.applied"

    @property
    def package_cache(self) -> Path:
        return self.cache / "packages"
