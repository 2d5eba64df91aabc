"""One lab host: an overlay on the base image, booted by systemd-nspawn.

Layout under ``<state>/hosts/<name>/``: ``upper/`` and ``work/`` (the host's own
copy-on-write layer), ``root/`` (the merged tree the machine boots), the host's
SSH key pair, its persistent UUID (also its machine id), ``nspawn.log``, and
``applied.json`` (what the running machine was started from).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from relais.errors import LabError
from relais.lab import config, system
from relais.lab.config import LabHost, LabSpec
from relais.lab.paths import LabPaths

HOST_SPACE_MIB = 256
NSPAWN_RUN = Path("/run/systemd/nspawn")
STOP_GRACE_S = 15.0
VETH_RELEASE_S = 10.0


@dataclass(frozen=True)
class HostProcesses:
    nspawn: list[int]
    leaders: list[int]

    @property
    def state(self) -> str:
        if self.nspawn and self.leaders:
            return "running"
        if self.nspawn:
            return "starting"
        if self.leaders:
            return "orphaned"
        return "stopped"


class HostMachine:
    def __init__(self, paths: LabPaths, name: str) -> None:
        self.name = name
        self.dir = paths.host_dir(name)
        self.upper = self.dir / "upper"
        self.work = self.dir / "work"
        self.root = self.dir / "root"
        self.log = self.dir / "nspawn.log"
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.uuid_file = self.dir / "uuid"
        self.applied_file = self.dir / "applied.json"

    # --- identity --------------------------------------------------------------------

    def uuid(self) -> str:
        """The machine's persistent UUID (its machine id is the same value without dashes)."""
        try:
            return str(uuid.UUID(self.uuid_file.read_text().strip()))
        except (OSError, ValueError):
            value = str(uuid.uuid4())
            self.dir.mkdir(parents=True, exist_ok=True)
            self.uuid_file.write_text(value + "\n")
            return value

    def ensure_host_key(self, host: LabHost) -> tuple[str, bool]:
        pub = self.host_key.with_suffix(".pub")
        if self.host_key.is_file() and pub.is_file():
            return pub.read_text().strip(), False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host_key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        system.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.fqdn}",
                    "-f", str(self.host_key)])
        return pub.read_text().strip(), True

    # --- processes -------------------------------------------------------------------

    def processes(self) -> HostProcesses:
        directory = f"--directory={self.root}"
        nspawn = [
            p.pid
            for p in system.processes()
            if p.argv and p.argv[0].endswith("systemd-nspawn") and directory in p.argv
        ]
        leaders: list[int] = []
        if self.uuid_file.is_file():
            marker = f"container_uuid={self.uuid()}"
            leaders = [
                p.pid
                for p in system.processes()
                if p.argv and "systemd" in p.argv[0] and system.environ_has(p.pid, marker)
            ]
        return HostProcesses(nspawn=nspawn, leaders=leaders)

    def cgroups(self) -> list[Path]:
        """The host's own cgroups. Without systemd on the controller, every nspawn would share
        the controller's cgroup, and the hosts' systemd would trip over each other's units
        (e.g. "status=219/CGROUP" at boot)."""
        return [root / system.CGROUP_GROUP / self.name for root in system.systemd_cgroup_roots()]

    def start(self, spec: LabSpec, host: LabHost) -> int:
        argv = config.nspawn_argv(host, root=str(self.root), bridge=spec.bridge, uuid=self.uuid())
        self.log.unlink(missing_ok=True)
        cgroups = self.cgroups()
        for cgroup in cgroups:
            system.remove_cgroup(cgroup)
            cgroup.mkdir(parents=True, exist_ok=True)
        return system.spawn(argv, log=self.log, cgroups=cgroups)

    def stop(self, *, grace: float = STOP_GRACE_S) -> bool:
        """Halt the machine (SIGTERM asks nspawn for an orderly shutdown), then kill leftovers."""
        procs = self.processes()
        if not procs.nspawn and not procs.leaders:
            self._clean_nspawn_runtime()
            self._release_veth()
            return False
        self._record_veth()
        if procs.nspawn:
            system.terminate(procs.nspawn, grace=grace)
        left = self.processes()
        # An orphaned init (its nspawn was killed) dies with its whole PID namespace.
        system.terminate(left.leaders + left.nspawn, grace=0, sig=9)
        for cgroup in self.cgroups():
            system.remove_cgroup(cgroup)
        self._clean_nspawn_runtime()
        self._release_veth()
        return True

    def veth(self) -> str | None:
        """The controller's end of the running machine's link to the bridge (nspawn names it
        ``vb-<machine>``, shortened with a hash when long): the peer of the machine's host0."""
        for pid in self.processes().leaders:
            try:
                index = int(Path(f"/proc/{pid}/root/sys/class/net/host0/iflink").read_text())
            except (OSError, ValueError):
                continue
            name = system.link_named_by_index(index)
            if name:
                return name
        return None

    def _record_veth(self) -> None:
        name = self.veth()
        if name and self.applied().get("veth") != name:
            self._save_applied({"veth": name})

    def _release_veth(self) -> None:
        """Delete the controller's end of a stopped machine's link. The kernel tears a killed
        machine's network namespace down in the background, and until it has, the next nspawn
        fails with "Failed to add new veth interfaces (vb-<machine>:host0): File exists"."""
        name = self.applied().get("veth", "")
        if not name.startswith("vb-") or not system.link_exists(name):
            return
        system.delete_link(name)
        deadline = time.monotonic() + VETH_RELEASE_S
        while system.link_exists(name):
            if time.monotonic() > deadline:
                raise LabError(f"the network link {name} of lab host {self.name} is still there "
                               "after the host stopped",
                               hint=f"`ip link delete {name}`, then run `relais lab up` again")
            time.sleep(0.1)

    def _clean_nspawn_runtime(self) -> None:
        """What nspawn leaves in /run when /run is not a tmpfs: its lock on the tree, its
        mount-propagation directory."""
        with contextlib.suppress(OSError):
            st = self.root.stat()
            (NSPAWN_RUN / "locks" / f"inode-{st.st_dev}:{st.st_ino}").unlink(missing_ok=True)
        propagate = NSPAWN_RUN / "propagate" / self.name
        # nspawn removes it on exit only from a tmpfs ("Attempted to remove disk file system
        # under ..."): harmless, as the next nspawn takes it as it is, but litter.
        if propagate.is_dir() and not system.mounts_under(propagate):
            with contextlib.suppress(OSError):
                propagate.rmdir()

    # --- file system -----------------------------------------------------------------

    def mounted_base(self) -> str | None:
        for mount in system.mounts():
            if mount.target == str(self.root):
                if mount.fstype != "overlay":
                    return "?"
                for option in mount.options.split(","):
                    if option.startswith("lowerdir="):
                        return option.removeprefix("lowerdir=")
                return "?"
        return None

    def mount(self, base: Path) -> bool:
        """Mount the host's tree over ``base``; True when something changed.

        A host's layer only makes sense over the base it was created on: a new
        base image means a fresh layer (the lab host is reinstalled).
        """
        applied = self.applied()
        current = self.mounted_base()
        if applied.get("base") == str(base) and (
            current == str(base) or (applied.get("layout") == "copy" and current is None)
        ):
            return False
        system.require_space(self.dir.parent, HOST_SPACE_MIB, f"lab host {self.name}")
        system.unmount_all(self.root)
        if applied.get("base") != str(base):
            for layer in (self.upper, self.work):
                system.remove_tree(layer)
            self.applied_file.unlink(missing_ok=True)
        for path in (self.upper, self.work, self.root):
            path.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={base},upperdir={self.upper},workdir={self.work}"
        result = system.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
                            check=False)
        layout = "overlay"
        if result.returncode != 0:
            # No overlayfs here: a full copy of the base (reflinked where the file system can).
            layout = "copy"
            system.remove_tree(self.root)
            self.root.mkdir(parents=True)
            system.run(["cp", "--reflink=auto", "-a", f"{base}/.", str(self.root)], timeout=600)
        self._save_applied({"base": str(base), "layout": layout})
        return True

    def configure(self, files: dict[str, str]) -> bool:
        changed = False
        for rel, content in files.items():
            mode = 0o600 if ("ssh_host_" in rel and not rel.endswith(".pub")) or rel.endswith(
                "authorized_keys"
            ) else 0o644
            changed |= system.write_if_changed(self.root / config.relative(rel), content, mode)
        ssh_dir = self.root / "root/.ssh"
        if ssh_dir.is_dir() and (ssh_dir.stat().st_mode & 0o777) != 0o700:
            os.chmod(ssh_dir, 0o700)
        return changed

    def applied(self) -> dict[str, str]:
        try:
            data = json.loads(self.applied_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_applied(self, values: dict[str, str]) -> None:
        data = self.applied()
        data.update(values)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.applied_file.write_text(json.dumps(data, indent=2) + "\n")

    def record_started(self, digest: str) -> None:
        self._save_applied({"config": digest})
        self._record_veth()

    def destroy(self) -> bool:
        stopped = self.stop()
        for cgroup in self.cgroups():
            system.remove_cgroup(cgroup)
        existed = self.dir.exists()
        system.remove_tree(self.dir)
        if any(m.target.startswith(str(self.dir)) for m in system.mounts()):
            raise LabError(f"cannot unmount {self.root}", hint="a process may still use it")
        return stopped or existed


def config_digest(argv: list[str], files: dict[str, str]) -> str:
    payload = json.dumps({"argv": argv, "files": files}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]
