"""The lab: a regional hosting on this machine, driven by the Plan.

``Lab(plan).up()`` converges the machine to the Plan's lab hosts and reports
what it changed (nothing, the second time); ``down()`` removes every machine,
mount, link, rule and process of the lab; ``status()`` says what runs.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from relais.errors import LabError
from relais.lab import base, config, network, services, ssh, system
from relais.lab.config import LabHost, LabSpec
from relais.lab.hosts import HostMachine, config_digest
from relais.lab.paths import LabPaths
from relais.lab.progress import Reporter
from relais.lab.ssh import SshParams
from relais.plan import DnsRecord, Plan

BOOT_TIMEOUT_S = 120.0
UP_TOOLS = ("systemd-nspawn", "debootstrap", "dnsmasq", "apt-cacher-ng", "nft", "ip", "ssh",
            "ssh-keygen")


@dataclass
class HostStatus:
    name: str
    fqdn: str
    address: str
    state: str  # running | starting | orphaned | stopped | absent
    pid: int | None = None
    ssh: bool | None = None
    systemd: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class LabStatus:
    bridge: str
    subnet: str
    gateway: str
    bridge_up: bool
    isolated: bool
    resolver: bool
    package_proxy: bool
    base_image: str | None
    hosts: list[HostStatus] = field(default_factory=list)

    @property
    def all_running(self) -> bool:
        return all(h.state == "running" and h.ssh for h in self.hosts)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["hosts"] = [h.as_dict() for h in self.hosts]
        return data


@dataclass
class UpResult:
    changes: list[str]
    status: LabStatus
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {"changed": bool(self.changes), "changes": self.changes,
                "seconds": round(self.seconds, 2), "status": self.status.as_dict()}


class Lab:
    """The lab of one Plan on this machine (or, without a Plan, the lab last brought up)."""

    def __init__(
        self,
        plan: Plan | None,
        *,
        paths: LabPaths | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.paths = paths or LabPaths.default()
        self.reporter = reporter or Reporter()
        self.plan = plan
        self._spec = config.lab_spec(plan) if plan is not None else None

    # --- what the lab is -------------------------------------------------------------

    @property
    def spec(self) -> LabSpec:
        if self._spec is None:
            recorded = ssh.recorded_spec(self.paths)
            if recorded is None:
                raise LabError("the lab is not up", hint="run `relais lab up` first")
            self._spec = recorded
        return self._spec

    def _records(self) -> list[DnsRecord]:
        return list(self.plan.dns) if self.plan is not None else []

    def ssh_params(self, name: str) -> SshParams:
        """SSH connection parameters of a lab host (address, port, user, key, known_hosts)."""
        return ssh.params_for(self.spec, name, self.paths)

    def exec(
        self,
        name: str,
        command: list[str],
        *,
        timeout: float | None = 120,
        capture: bool = True,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as root on a lab host over SSH; ``returncode`` is the remote exit code.

        A fresh host takes root's login; once hardened (root login closed) the controller logs
        in as the deploy account and uses sudo, as `relais deploy` does."""
        system.require_root("exec")
        return ssh.run_as_root(self.ssh_params(name), command, timeout=timeout, capture=capture,
                               input_text=input_text)

    # --- up --------------------------------------------------------------------------

    def up(self) -> UpResult:
        system.require_root("up")
        system.require_tools(*UP_TOOLS)
        if self.plan is None:
            raise LabError("`lab up` needs the Plan")
        started = time.monotonic()
        try:
            self._prepare_dirs()
            with system.exclusive_lock(self.paths.lock):
                changes = self._up()
        except OSError as exc:
            if system.is_disk_full(exc):
                raise system.disk_full_error(exc, "bringing the lab up") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise LabError(f"permission denied: {exc.filename or exc}",
                               hint="`relais lab` must run as root") from None
            raise
        status = self.status()
        return UpResult(changes=changes, status=status, seconds=time.monotonic() - started)

    def _prepare_dirs(self) -> None:
        for path, mode in (
            (self.paths.state, 0o711),
            (self.paths.ssh_dir, 0o700),
            (self.paths.hosts_dir, 0o700),
            (self.paths.dns_dir, 0o755),
            (self.paths.proxy_dir, 0o755),
            (self.paths.cache, 0o711),
        ):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)

    def _up(self) -> list[str]:
        spec = self.spec
        report = self.reporter
        changes: list[str] = []

        def changed(message: str | None) -> None:
            if message:
                changes.append(message)
                report.step(message)

        previous = ssh.recorded_spec(self.paths)
        # Remember both labs until this one is up, so `down` can clean up after a failed `up`.
        self._write_record(spec, previous)
        if previous is not None and previous.bridge != spec.bridge:
            for host in previous.hosts:
                if HostMachine(self.paths, host.name).destroy():
                    changed(f"host {host.name} removed (old bridge {previous.bridge})")
            if network.remove_bridge(previous.bridge):
                changed(f"old bridge {previous.bridge} removed")
        wanted = {h.name for h in spec.hosts}
        for directory in sorted(self.paths.hosts_dir.iterdir()):
            if directory.name not in wanted and HostMachine(self.paths, directory.name).destroy():
                changed(f"host {directory.name} removed (no longer in the Plan)")

        config.check_subnet_free(spec, system.routes())
        for message in network.ensure_bridge(spec):
            changed(message)
        if network.ensure_isolation(spec, self.paths.nft_applied):
            changed(f"nftables table inet {config.NFT_TABLE} installed (lab isolated)")

        recipe = base.current_recipe()
        sources = base.parse_sources(recipe.apt_sources)
        proxy = services.PackageProxy(self.paths, spec, config.proxied_uris(sources))
        changed(proxy.ensure())
        base_path, built = base.ensure_base(
            self.paths.cache, recipe, proxy_url=spec.proxy_url, reporter=report
        )
        if built:
            changed(f"base image built: {base_path}")
        for old in base.remove_unused_bases(self.paths.cache, base_path):
            changed(f"old base image removed: {old}")

        controller_key, created = ssh.ensure_controller_key(self.paths)
        if created:
            changed(f"controller SSH key created: {self.paths.ssh_key}")
        resolver = services.Resolver(
            self.paths, spec,
            config.dnsmasq_conf(spec, self._records(), user=services.resolver_user()),
        )
        changed(resolver.ensure())

        to_start: list[tuple[LabHost, HostMachine, str]] = []
        known: list[str] = []
        for host in spec.hosts:
            machine = HostMachine(self.paths, host.name)
            host_pub, _ = machine.ensure_host_key(host)
            known.append(config.known_hosts_line(host, host_pub))
            procs = machine.processes()
            files = config.host_files(
                spec, host, machine_id=machine.uuid().replace("-", ""), authorized_key=controller_key
            )
            files["etc/ssh/ssh_host_ed25519_key"] = machine.host_key.read_text()
            files["etc/ssh/ssh_host_ed25519_key.pub"] = host_pub + "\n"
            argv = config.nspawn_argv(host, root=str(machine.root), bridge=spec.bridge,
                                      uuid=machine.uuid())
            digest = config_digest(argv, files)
            applied = machine.applied()
            if (
                procs.state == "running"
                and applied.get("base") == str(base_path)
                and applied.get("config") == digest
                and machine.mounted_base() in (str(base_path), None)
            ):
                continue
            # Even a stopped machine may have left nspawn's runtime files and its link behind.
            if machine.stop():
                changed(f"host {host.name} stopped ({procs.state}, to be restarted)")
            if machine.mount(base_path):
                changed(f"host {host.name} file system ready over {base_path.name}")
            machine.configure(files)
            to_start.append((host, machine, digest))

        if system.write_if_changed(self.paths.known_hosts, "\n".join(known) + "\n", 0o600):
            changed(f"known_hosts recorded: {self.paths.known_hosts}")
        system.write_if_changed(
            self.paths.ssh_config,
            config.ssh_config(spec, identity=str(self.paths.ssh_key),
                              known_hosts=str(self.paths.known_hosts)),
            0o600,
        )
        if to_start:
            self._boot(spec, to_start)
            for host, machine, digest in to_start:
                machine.record_started(digest)
                changed(f"host {host.name} started ({host.address})")
        if network.set_etc_hosts(spec):
            changed("lab host names added to /etc/hosts")
        for header in config.other_instances_declaring(network.ETC_HOSTS.read_text(), spec):
            self.reporter.warn(
                f"/etc/hosts also names these hosts in another lab's block ({header.split(':')[0][2:]}); "
                "this lab's names come first. Bring the other lab down when done with it "
                "(RELAIS_LAB_INSTANCE=<name> relais lab down)."
            )
        self._write_record(spec, None)
        return changes

    def _boot(self, spec: LabSpec, hosts: list[tuple[LabHost, HostMachine, str]]) -> None:
        for host, machine, _ in hosts:
            machine.start(spec, host)
        failures: list[tuple[str, str]] = []
        degraded: list[str] = []
        with self.reporter.task("booting lab hosts", total=len(hosts)) as task:

            def wait(item: tuple[LabHost, HostMachine, str]) -> None:
                host, machine, _ = item
                state = self._wait_ready(host, machine)
                if state is None:
                    failures.append((host.name, _boot_failure(host.name, machine)))
                elif state != "running":
                    degraded.append(f"{host.name}: systemd {state}")
                task.advance(1, detail=f"{host.name} {state or 'failed'}")

            with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
                list(pool.map(wait, hosts))
        for message in degraded:
            self.reporter.warn(message)
        if failures:
            failures.sort()
            logs = ", ".join(str(self.paths.host_dir(name) / "nspawn.log") for name, _ in failures)
            raise LabError(
                f"lab host{'s' if len(failures) > 1 else ''} did not boot: "
                + "; ".join(reason for _, reason in failures),
                hint=f"see {logs}",
            )

    def _wait_ready(self, host: LabHost, machine: HostMachine) -> str | None:
        """Wait for sshd, then for the end of boot; systemd's final state, None on failure."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        params = self.ssh_params(host.name)
        while time.monotonic() < deadline:
            if not machine.processes().nspawn:
                return None
            try:
                with socket.create_connection((host.address, 22), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            remaining = max(5.0, deadline - time.monotonic())
            try:
                result = ssh.run_as_root(params, ["systemctl", "is-system-running", "--wait"],
                                         timeout=remaining, connect_timeout=2)
            except LabError:
                return None
            if result.returncode == 255:
                time.sleep(0.2)
                continue
            return result.stdout.strip() or "unknown"
        return None

    def _write_record(self, spec: LabSpec, previous: LabSpec | None) -> None:
        data: dict[str, object] = {"spec": spec.as_dict()}
        if previous is not None and previous != spec:
            data["previous"] = previous.as_dict()
        system.write_if_changed(self.paths.record, json.dumps(data, indent=2) + "\n", 0o600)

    # --- down ------------------------------------------------------------------------

    def down(self, *, purge: bool = False) -> list[str]:
        """Remove every machine, mount, link, rule and process of the lab.

        Kept: the controller's SSH key and the caches (base images, packages),
        unless ``purge``.
        """
        system.require_root("down")
        changes: list[str] = []

        def changed(message: str) -> None:
            changes.append(message)
            self.reporter.step(message)

        with system.exclusive_lock(self.paths.lock):
            bridges: set[str] = set()
            if self._spec is not None:
                bridges.add(self._spec.bridge)
            if self.paths.record.is_file():
                try:
                    data = json.loads(self.paths.record.read_text())
                    for key in ("spec", "previous"):
                        if isinstance(data.get(key), dict):
                            bridges.add(LabSpec.from_dict(data[key]).bridge)
                except (ValueError, KeyError):
                    pass
            if self.paths.hosts_dir.is_dir():
                machines = [HostMachine(self.paths, d.name) for d in sorted(self.paths.hosts_dir.iterdir())]
                with ThreadPoolExecutor(max_workers=max(1, len(machines))) as pool:
                    stopped = list(pool.map(lambda m: m.stop(), machines))
                for machine, was_running in zip(machines, stopped, strict=True):
                    machine.destroy()
                    changed(f"host {machine.name} {'stopped and ' if was_running else ''}removed")
            for name in services.stop_all(self.paths):
                changed(f"{name} stopped")
            for root in system.systemd_cgroup_roots():
                if system.remove_cgroup(root / system.CGROUP_GROUP):
                    changed(f"cgroup {root / system.CGROUP_GROUP} removed")
            if network.remove_isolation(self.paths.nft_applied):
                changed(f"nftables table inet {config.NFT_TABLE} removed")
            for bridge in sorted(bridges):
                if network.remove_bridge(bridge):
                    changed(f"bridge {bridge} removed")
            if network.set_etc_hosts(None):
                changed("lab host names removed from /etc/hosts")
            for path in (self.paths.known_hosts, self.paths.ssh_config, self.paths.record,
                         self.paths.dns_dir, self.paths.proxy_dir, self.paths.hosts_dir):
                if path.is_dir():
                    system.remove_tree(path)
                else:
                    path.unlink(missing_ok=True)
            if purge:
                if system.remove_tree(self.paths.cache):
                    changed(f"caches removed: {self.paths.cache}")
                if system.remove_tree(self.paths.ssh_dir):
                    changed(f"controller SSH key removed: {self.paths.ssh_dir}")
        return changes

    # --- status ----------------------------------------------------------------------

    def status(self, *, check_ssh: bool = True) -> LabStatus:
        system.require_root("status")
        spec = self.spec
        recipe_base: str | None = None
        try:
            recipe = base.current_recipe()
            if base.is_built(self.paths.cache, recipe):
                recipe_base = str(base.base_dir(self.paths.cache, recipe))
        except LabError:
            recipe_base = None
        result = LabStatus(
            bridge=spec.bridge,
            subnet=str(spec.network),
            gateway=spec.gateway,
            bridge_up=system.link_exists(spec.bridge)
            and f"{spec.gateway}/{spec.prefixlen}" in system.ipv4_addresses(spec.bridge),
            isolated=network.isolation_active(spec),
            resolver=bool(services.Resolver(self.paths, spec, "").pids()),
            package_proxy=bool(services.PackageProxy(self.paths, spec, []).pids()),
            base_image=recipe_base,
        )
        for host in spec.hosts:
            machine = HostMachine(self.paths, host.name)
            if not machine.dir.exists():
                result.hosts.append(HostStatus(host.name, host.fqdn, host.address, "absent"))
                continue
            procs = machine.processes()
            result.hosts.append(HostStatus(
                host.name, host.fqdn, host.address, procs.state,
                pid=procs.nspawn[0] if procs.nspawn else (procs.leaders[0] if procs.leaders else None),
            ))
        if check_ssh and self.paths.known_hosts.is_file():
            running = [h for h in result.hosts if h.state in ("running", "orphaned")]

            def probe(status: HostStatus) -> None:
                try:
                    out = ssh.run_as_root(self.ssh_params(status.name),
                                          ["systemctl", "is-system-running"], timeout=10,
                                          connect_timeout=2)
                except LabError:
                    status.ssh = False
                    return
                status.ssh = out.returncode != 255
                status.systemd = (out.stdout.strip() or None) if status.ssh else None

            if running:
                with ThreadPoolExecutor(max_workers=len(running)) as pool:
                    list(pool.map(probe, running))
        return result


# What nspawn prints on every run, and its complaint on exit that /run is not a tmpfs (it cannot
# clean its propagation directory there): never the reason a host did not boot.
_NSPAWN_NOISE = ("Spawning container ", "Press ^] three times", "Some capabilities will not be set",
                 "Attempted to remove disk file system under ")


def _boot_failure(name: str, machine: HostMachine) -> str:
    """Why a host did not come up: its systemd-nspawn ended (with the last lines of its log that
    are not nspawn's usual chatter), or it did not answer over SSH in time."""
    if machine.processes().nspawn:
        return f"{name}: did not answer over SSH within {BOOT_TIMEOUT_S:.0f} s"
    try:
        lines = [line.strip() for line in machine.log.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    causes = [line for line in lines if line and not line.startswith(_NSPAWN_NOISE)]
    return f"{name}: systemd-nspawn ended" + (f" ({'; '.join(causes[-3:])[:400]})" if causes else "")
