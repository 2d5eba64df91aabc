"""How the controller reaches each host: address, account, key, checked host keys.

Once a host is hardened the controller logs in as the named deploy account
(`relais`, member of the admins group, sudo) — root login is closed. On a fresh
host that account does not exist yet: the first deploy bootstraps through root
(the lab installs the controller's key for root; cloud-init does the same on
provisioned hosts), creates the account, then hardening closes root.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relais.deploy.context import DEPLOY_USER
from relais.errors import RelaisError
from relais.plan import Plan, PlannedHost


class TargetError(RelaisError):
    """A host cannot be reached or selected."""


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    user: str
    port: int
    private_key: Path
    known_hosts: Path
    lab: bool

    def ssh_options(self, user: str | None = None) -> list[str]:
        return ["-F", "/dev/null", "-o", f"User={user or self.user}", "-o", f"Port={self.port}",
                "-o", f"IdentityFile={self.private_key}", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-o", "LogLevel=ERROR"]

    def pyinfra_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ssh_hostname": self.address,
            "ssh_user": self.user,
            "ssh_port": self.port,
            "ssh_key": str(self.private_key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
            "ssh_look_for_keys": False,
            "ssh_allow_agent": False,
        }
        if self.user != "root":
            data["_sudo"] = True
        return data

    def run(
        self, command: str, *, user: str | None = None, timeout: int = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *self.ssh_options(user), self.address, command],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def can_login(self, user: str) -> bool:
        try:
            return self.run("true", user=user, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def controller_key(plan: Plan, host: PlannedHost) -> tuple[Path, Path]:
    """(private key, known_hosts) the controller uses for `host`."""
    if host.provider == "lab":
        from relais.lab import ssh_params

        params = ssh_params(host.name)
        return params.private_key, params.known_hosts
    key = Path(os.environ.get("RELAIS_SSH_KEY") or Path.home() / ".ssh" / "id_ed25519")
    known = Path(os.environ.get("RELAIS_KNOWN_HOSTS") or Path.home() / ".ssh" / "known_hosts")
    if not key.is_file():
        raise TargetError(f"the controller's SSH key {key} does not exist",
                          hint="set RELAIS_SSH_KEY to the private key installed on the hosts")
    return key, known


def resolve(plan: Plan, host: PlannedHost) -> Target:
    key, known = controller_key(plan, host)
    address = host.address if host.provider == "lab" else (host.public_address or host.address)
    if not address:
        raise TargetError(f"host {host.name} has no address yet",
                          hint="declare `address:` in hosting.yaml or provision it (`relais provision up`)")
    probe = Target(host.name, address, DEPLOY_USER, 22, key, known, host.provider == "lab")
    if probe.can_login(DEPLOY_USER):
        return probe
    bootstrap = Target(host.name, address, "root", 22, key, known, probe.lab)
    if bootstrap.can_login("root"):
        return bootstrap
    raise TargetError(
        f"cannot log in to {host.name} ({address}) as {DEPLOY_USER} or, for a first deploy, as root",
        hint="check that the host is up (`relais lab status`) and that the controller's key is installed",
    )


def select_hosts(plan: Plan, limit: list[str] | None) -> list[PlannedHost]:
    """Hosts named by --limit: a host, a role, or a commune (its host and backup host)."""
    if not limit:
        return list(plan.hosts)
    chosen: dict[str, PlannedHost] = {}
    for item in limit:
        matched = [h for h in plan.hosts if item in (h.name, h.fqdn) or item in h.roles]
        for tenant in plan.tenants:
            if item in (tenant.id, tenant.insee) or item.casefold() == tenant.commune.casefold():
                names = {tenant.host, tenant.backup.target_host}
                matched += [h for h in plan.hosts if h.name in names]
        if not matched:
            raise TargetError(f"--limit {item!r} matches no host, role or commune",
                              hint="hosts: " + ", ".join(h.name for h in plan.hosts))
        chosen.update({h.name: h for h in matched})
    return [h for h in plan.hosts if h.name in chosen]
