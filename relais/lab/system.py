"""Small, explicit effects on the controller: commands, processes, mounts, files.

The controller may have no systemd as PID 1, so the lab tracks its own
processes. It finds them by what they run (their command line, or the
container's UUID in the environment of a host's init) rather than by PID files
alone, so a killed previous run never leaves something the next run cannot see.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from relais.errors import LabError

# command -> Debian package that provides it
TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "dnsmasq": "dnsmasq-base",
    "apt-cacher-ng": "apt-cacher-ng",
    "nft": "nftables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
PREREQS_HINT = "or run scripts/lab-prereqs.sh"


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"`relais lab {action}` needs root (it creates network bridges, mounts and containers)",
            hint=f"run it as root, e.g. `sudo relais lab {action}`",
        )


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        packages = sorted({TOOLS.get(name, name) for name in missing})
        raise LabError(
            f"{', '.join(missing)} not found: the lab needs {'it' if len(missing) == 1 else 'them'}",
            hint=f"apt-get install {' '.join(packages)} ({PREREQS_HINT})",
        )


def require_space(path: Path, needed_mib: int, what: str) -> None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    free_mib = shutil.disk_usage(existing).free // (1024 * 1024)
    if free_mib < needed_mib:
        raise LabError(
            f"disk full: {free_mib} MiB free on {existing}, {what} needs about {needed_mib} MiB",
            hint="free some space (`relais lab down --purge` removes cached base images and packages)",
        )


def disk_full_error(exc: OSError, where: str) -> LabError:
    return LabError(
        f"disk full while {where}: {exc.strerror}",
        hint="free some space (`relais lab down --purge` removes cached base images and packages)",
    )


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def run(
    argv: list[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; a failure becomes a LabError naming the command."""
    try:
        result = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        require_tools(argv[0])
        raise
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = detail[-1] if detail else f"exit code {result.returncode}"
        if "No space left on device" in result.stderr:
            raise LabError(
                f"disk full: `{argv[0]}` failed: {last}",
                hint="free some space (`relais lab down --purge` removes cached images and packages)",
            )
        raise LabError(f"`{' '.join(argv)}` failed: {last}")
    return result


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """One lab operation at a time on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                "another `relais lab` command is running on this machine",
                hint=f"wait for it to finish (lock: {path})",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Write ``content`` unless the file already holds it; True when something changed."""
    try:
        if path.is_file() and not path.is_symlink() and path.read_text() == content:
            if (path.stat().st_mode & 0o777) != mode:
                path.chmod(mode)
                return True
            return False
    except UnicodeDecodeError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    tmp = path.with_name(f".{path.name}.relais-tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    tmp.replace(path)
    return True


# --- processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]


def processes() -> Iterator[Process]:
    """Every live (non-zombie) process of the machine with its command line."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if not raw:  # kernel threads and zombies
            continue
        argv = tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))
        yield Process(int(entry.name), argv)


def find_processes(match: Callable[[Process], bool]) -> list[Process]:
    return [p for p in processes() if match(p)]


def environ_has(pid: int, entry: str) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return entry.encode() in raw.split(b"\0")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def terminate(pids: list[int], *, grace: float, sig: int = signal.SIGTERM) -> None:
    """Ask processes to stop, wait up to ``grace`` seconds, then kill what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if not wait_gone(pids, grace):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_gone(pids, 10)


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(alive(pid) for pid in pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def spawn(
    argv: list[str], *, log: Path, user: str | None = None, cgroups: list[Path] | None = None
) -> int:
    """Start a long-running process detached from this one (own session, output to ``log``).

    With ``cgroups``, the process starts inside these cgroup directories (one per hierarchy).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    gid = pwd.getpwnam(user).pw_gid if user else None
    procs_files = [str(c / "cgroup.procs") for c in cgroups or []]

    def enter_cgroups() -> None:
        for name in procs_files:
            with open(name, "w") as handle:
                handle.write(f"{os.getpid()}\n")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            user=user,
            group=gid,
            extra_groups=[] if user else None,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            preexec_fn=enter_cgroups if procs_files else None,
        )
    return proc.pid


# --- mounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    target: str
    fstype: str
    options: str


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts() -> list[Mount]:
    found: list[Mount] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        found.append(Mount(_unescape(fields[4]), rfields[0], rfields[2]))
    return found


def mounts_under(path: Path) -> list[Mount]:
    prefix = str(path).rstrip("/")
    return [m for m in mounts() if m.target == prefix or m.target.startswith(prefix + "/")]


def unmount_all(path: Path) -> bool:
    """Unmount everything at or below ``path``, deepest first; True when something was mounted."""
    found = mounts_under(path)
    for mount in sorted(found, key=lambda m: m.target.count("/"), reverse=True):
        result = run(["umount", mount.target], check=False)
        if result.returncode != 0 and any(m.target == mount.target for m in mounts()):
            run(["umount", "--lazy", mount.target])
    return bool(found)


def remove_tree(path: Path) -> bool:
    """Delete a directory tree, never following into a mounted file system."""
    if not path.exists() and not path.is_symlink():
        return False
    unmount_all(path)
    run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=600)
    return True


# --- network --------------------------------------------------------------------------


def routes() -> list[tuple[str, str]]:
    """IPv4 routes of the controller as (interface, destination)."""
    out = run(["ip", "-4", "-o", "route", "show", "table", "all"], check=False).stdout
    found: list[tuple[str, str]] = []
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        dest = parts[0]
        if dest in ("local", "broadcast", "unicast", "multicast") and len(parts) > 1:
            if dest != "unicast":
                continue
            dest = parts[1]
        if "dev" in parts:
            found.append((parts[parts.index("dev") + 1], dest))
    return found


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def link_named_by_index(index: int) -> str | None:
    """The controller's network interface with this index, if any."""
    for entry in Path("/sys/class/net").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if int((entry / "ifindex").read_text()) == index:
                return entry.name
    return None


def delete_link(name: str) -> None:
    """Delete a network interface (both ends, for a veth); gone already is fine."""
    run(["ip", "link", "delete", "dev", name], check=False)


def bridge_ports(name: str) -> list[str]:
    path = Path("/sys/class/net", name, "brif")
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def ipv4_addresses(name: str) -> list[str]:
    out = run(["ip", "-4", "-o", "addr", "show", "dev", name], check=False).stdout
    return [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]


# --- cgroups --------------------------------------------------------------------------

CGROUP_GROUP = "relais-lab" + (
    "-" + "".join(c for c in os.environ.get("RELAIS_LAB_INSTANCE", "") if c.isalnum())[:12]
    if os.environ.get("RELAIS_LAB_INSTANCE") else "")


def systemd_cgroup_roots() -> list[Path]:
    """The cgroup hierarchies a container's systemd manages: cgroup2 and v1 ``name=systemd``."""
    roots: list[Path] = []
    for mount in mounts():
        if mount.fstype == "cgroup2" or (mount.fstype == "cgroup" and "name=systemd" in mount.options):
            roots.append(Path(mount.target))
    return roots


def remove_cgroup(path: Path) -> bool:
    """Remove a cgroup directory and its children (empty ones; cgroups hold no files to delete)."""
    if not path.is_dir():
        return False
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                        reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
    return True
