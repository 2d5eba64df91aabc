"""The controller's services on the lab bridge: the resolver (dnsmasq) and the package proxy
(apt-cacher-ng). Both listen on the bridge address only, run in the foreground under the
lab's control (no systemd needed), and are found again by their command line.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import time
from pathlib import Path

from relais.errors import LabError
from relais.lab import config, system
from relais.lab.config import LabSpec
from relais.lab.paths import LabPaths

START_TIMEOUT_S = 10.0


def _user(name: str, fallback: str | None) -> str | None:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return fallback


def _listening(address: str, port: int, *, udp: bool) -> bool:
    """Is something bound to address:port? (read from /proc, no packet sent)."""
    packed = ipaddress.IPv4Address(address).packed
    wanted = f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"
    table = Path("/proc/net/udp" if udp else "/proc/net/tcp")
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == wanted and (udp or fields[3] == "0A"):
            return True
    return False


class Service:
    """A foreground daemon owned by the lab."""

    name = "service"
    port = 0

    def __init__(self, paths: LabPaths, spec: LabSpec) -> None:
        self.paths = paths
        self.spec = spec

    @property
    def directory(self) -> Path:
        raise NotImplementedError

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def marker(self) -> str:
        """An argument that only this lab's instance has on its command line."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        marker = self.marker()
        return [p.pid for p in system.find_processes(lambda p: marker in p.argv)]

    def ready(self) -> bool:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

    def write_config(self) -> bool:
        raise NotImplementedError

    def ensure(self) -> str | None:
        """Start or restart so it runs with the current configuration; what changed, if anything."""
        changed = self.write_config()
        pids = self.pids()
        if pids and not changed and self.ready():
            return None
        if pids:
            system.terminate(pids, grace=5)
        self.log.unlink(missing_ok=True)
        pid = system.spawn(self.argv(), log=self.log, user=self.user())
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready():
            if not system.alive(pid) or time.monotonic() > deadline:
                text = self.log.read_text(errors="replace") if self.log.exists() else ""
                tail = text.strip().splitlines()[-3:]
                raise LabError(
                    f"the lab {self.name} did not start on {self.spec.gateway}:{self.port}: "
                    + (" / ".join(tail) or "no output"),
                    hint=f"is another service bound to port {self.port} on all addresses? "
                    f"(`ss -lntup`); see {self.log}",
                )
            time.sleep(0.05)
        return f"{self.name} {'restarted' if pids else 'started'} on {self.spec.gateway}"

    def stop(self) -> bool:
        pids = self.pids()
        if pids:
            system.terminate(pids, grace=5)
        return bool(pids)


class Resolver(Service):
    """dnsmasq answering every lab host and every name of the Plan; forwards nothing."""

    name = "resolver"
    port = config.DNS_PORT

    def __init__(self, paths: LabPaths, spec: LabSpec, records_conf: str) -> None:
        super().__init__(paths, spec)
        self.conf_text = records_conf

    @property
    def directory(self) -> Path:
        return self.paths.dns_dir

    @property
    def conf(self) -> Path:
        return self.directory / "dnsmasq.conf"

    def argv(self) -> list[str]:
        return ["dnsmasq", "--keep-in-foreground", f"--conf-file={self.conf}"]

    def marker(self) -> str:
        return f"--conf-file={self.conf}"

    def ready(self) -> bool:
        return _listening(self.spec.gateway, config.DNS_PORT, udp=True) and _listening(
            self.spec.gateway, config.DNS_PORT, udp=False
        )

    def write_config(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        return system.write_if_changed(self.conf, self.conf_text)


class PackageProxy(Service):
    """apt-cacher-ng serving this machine's Debian sources to lab hosts."""

    name = "package proxy"
    port = config.PROXY_PORT

    def __init__(self, paths: LabPaths, spec: LabSpec, uris: list[str]) -> None:
        super().__init__(paths, spec)
        self.uris = uris

    @property
    def directory(self) -> Path:
        return self.paths.proxy_dir

    @property
    def log(self) -> Path:
        return self.directory / "apt-cacher-ng.out"

    def argv(self) -> list[str]:
        return ["apt-cacher-ng", "-c", str(self.directory)]

    def marker(self) -> str:
        return str(self.directory)

    def pids(self) -> list[int]:
        directory = str(self.directory)
        return [
            p.pid
            for p in system.processes()
            if p.argv and p.argv[0].endswith("apt-cacher-ng") and directory in p.argv
        ]

    def user(self) -> str | None:
        return _user("apt-cacher-ng", None)

    def ready(self) -> bool:
        return _listening(self.spec.gateway, config.PROXY_PORT, udp=False)

    def write_config(self) -> bool:
        run_dir = self.directory / "run"
        log_dir = self.directory / "log"
        cache = self.paths.package_cache
        for path in (self.directory, run_dir, log_dir, cache):
            path.mkdir(parents=True, exist_ok=True)
        user = self.user()
        if user:
            entry = pwd.getpwnam(user)
            for path in (run_dir, log_dir, cache):
                if path.stat().st_uid != entry.pw_uid:
                    shutil.chown(path, entry.pw_uid, entry.pw_gid)
                    os.chmod(path, 0o750)
        text = config.acng_conf(
            gateway=self.spec.gateway,
            cache_dir=str(cache),
            log_dir=str(log_dir),
            run_dir=str(run_dir),
            uris=self.uris,
        )
        return system.write_if_changed(self.directory / "acng.conf", text)


def resolver_user() -> str:
    return _user("dnsmasq", "nobody") or "nobody"


def stop_all(paths: LabPaths) -> list[str]:
    """Stop the lab's resolver and package proxy, whatever lab they were started for."""
    stopped: list[str] = []
    for marker, name in (
        (f"--conf-file={paths.dns_dir / 'dnsmasq.conf'}", Resolver.name),
        (str(paths.proxy_dir), PackageProxy.name),
    ):
        pids = [p.pid for p in system.find_processes(lambda p, m=marker: m in p.argv)]  # type: ignore[misc]
        if pids:
            system.terminate(pids, grace=5)
            stopped.append(name)
    return stopped
