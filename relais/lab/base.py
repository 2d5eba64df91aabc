"""The Debian 12 base image every lab host starts from.

Built once with debootstrap (through the lab's package proxy, so the packages
land in its cache), customised for booting under systemd-nspawn, and cached
under a name derived from its recipe: it is rebuilt only when the recipe
changes (packages, mirror, apt configuration of this machine, customisation).
Lab hosts never write to it: each host is an overlay on top of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from relais.errors import LabError
from relais.lab import config, system
from relais.lab.progress import Reporter

SUITE = "bookworm"
# Bump when customise() changes: the hash of the recipe names the cached image.
CUSTOMISATION_VERSION = 1
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "iputils-ping",
    "netbase",
    "ca-certificates",
    "procps",
)
BASE_SPACE_MIB = 1500
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
# apt settings of this machine that lab hosts need to use the same mirror.
CARRIED_APT_SETTINGS = ("Acquire::Check-Valid-Until", "Acquire::Check-Date")
SSHD_LAB_CONF = """\
# Relais lab: each host has its own ed25519 host key, recorded by the controller.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
"""


@dataclass(frozen=True)
class BaseRecipe:
    suite: str
    variant: str
    packages: tuple[str, ...]
    mirror: str
    apt_sources: tuple[tuple[str, str], ...]
    apt_settings: str
    customisation: int

    def digest(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


def machine_apt_sources() -> tuple[tuple[str, str], ...]:
    """This machine's apt source files (name, content): lab hosts use the same sources."""
    files: list[tuple[str, str]] = []
    if APT_SOURCES_LIST.is_file():
        files.append(("sources.list", APT_SOURCES_LIST.read_text()))
    if APT_SOURCES_DIR.is_dir():
        for path in sorted(APT_SOURCES_DIR.iterdir()):
            if path.suffix in (".sources", ".list") and path.is_file():
                files.append((f"sources.list.d/{path.name}", path.read_text()))
    return tuple(files)


def parse_sources(files: tuple[tuple[str, str], ...]) -> list[config.AptSource]:
    sources: list[config.AptSource] = []
    for name, text in files:
        if name.endswith(".sources"):
            sources += config.parse_deb822_sources(text)
        else:
            sources += config.parse_one_line_sources(text)
    return sources


def machine_apt_settings() -> str:
    """The few apt settings of this machine that the lab hosts must share."""
    out = system.run(["apt-config", "dump"], check=False).stdout
    kept = [line for line in out.splitlines() if line.split(" ", 1)[0] in CARRIED_APT_SETTINGS]
    return "".join(f"{line}\n" for line in kept)


def current_recipe() -> BaseRecipe:
    files = machine_apt_sources()
    sources = parse_sources(files)
    return BaseRecipe(
        suite=SUITE,
        variant="minbase",
        packages=PACKAGES,
        mirror=config.debian_mirror(sources, SUITE),
        apt_sources=files,
        apt_settings=machine_apt_settings(),
        customisation=CUSTOMISATION_VERSION,
    )


def base_dir(cache_dir: Path, recipe: BaseRecipe) -> Path:
    return cache_dir / f"base-{recipe.digest()}"


def is_built(cache_dir: Path, recipe: BaseRecipe) -> bool:
    path = base_dir(cache_dir, recipe)
    return path.is_dir() and path.with_suffix(".json").is_file()


def ensure_base(
    cache_dir: Path, recipe: BaseRecipe, *, proxy_url: str, reporter: Reporter
) -> tuple[Path, bool]:
    """The cached base image for ``recipe``, built when absent; (path, built now)."""
    target = base_dir(cache_dir, recipe)
    if is_built(cache_dir, recipe):
        return target, False
    system.require_space(cache_dir, BASE_SPACE_MIB, "building the lab's base image")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    system.remove_tree(tmp)
    system.remove_tree(target)
    try:
        _debootstrap(cache_dir, recipe, tmp, proxy_url=proxy_url, reporter=reporter)
        customise(tmp, recipe)
    except OSError as exc:
        system.remove_tree(tmp)
        if system.is_disk_full(exc):
            raise system.disk_full_error(exc, "building the base image") from None
        raise
    except BaseException:
        system.remove_tree(tmp)
        raise
    tmp.rename(target)
    target.with_suffix(".json").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
    return target, True


def _debootstrap(
    cache_dir: Path, recipe: BaseRecipe, tmp: Path, *, proxy_url: str, reporter: Reporter
) -> None:
    argv = [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(tmp),
        recipe.mirror,
    ]
    lines_file = cache_dir / "debootstrap-lines"
    try:
        expected = int(lines_file.read_text())
    except (OSError, ValueError):
        expected = 700
    log = cache_dir / "debootstrap.log"
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        # Through the lab's proxy: the cold build fills the package cache lab hosts use.
        "http_proxy": proxy_url,
    }
    count = 0
    tail: list[str] = []
    with reporter.task(f"base image: debootstrap {recipe.suite}", total=expected) as task, log.open(
        "w"
    ) as out:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            tail = [*tail[-19:], line.rstrip()]
            if line.startswith("I: "):
                count += 1
                words = line[3:].split()
                stage = " ".join(words[:2]) if words else ""
                task.update(completed=min(count, expected - 1), detail=stage)
        code = proc.wait()
        task.update(completed=expected, detail="done")
    if code != 0:
        text = "\n".join(tail)
        if "No space left on device" in text:
            raise LabError(
                "disk full while building the base image",
                hint="free some space (`relais lab down --purge` removes cached images and packages)",
            )
        last = next((line for line in reversed(tail) if line.startswith("E:")), tail[-1] if tail else "")
        raise LabError(
            f"debootstrap failed building the base image: {last}",
            hint=f"see {log}; the package proxy's log is under the lab state directory",
        )
    lines_file.write_text(str(count))


def customise(root: Path, recipe: BaseRecipe) -> None:
    """Turn a debootstrapped tree into an image that boots as a lab host.

    Everything host-specific (host keys, machine id, hostname, network) is
    removed here and written per host before it boots.
    """
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    # debootstrap copies the controller's files; none of them belongs in a lab host.
    for name in ("etc/hostname", "etc/resolv.conf", "etc/hosts"):
        path = root / name
        if path.exists() or path.is_symlink():
            path.unlink()
    units = root / "etc/systemd/system"
    for link, target in (
        ("multi-user.target.wants/systemd-networkd.service", "systemd-networkd.service"),
        ("sockets.target.wants/systemd-networkd.socket", "systemd-networkd.socket"),
        ("dbus-org.freedesktop.network1.service", "systemd-networkd.service"),
    ):
        path = units / link
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(f"/lib/systemd/system/{target}")
    sshd = root / "etc/ssh/sshd_config.d/10-relais-lab.conf"
    sshd.parent.mkdir(parents=True, exist_ok=True)
    sshd.write_text(SSHD_LAB_CONF)
    apt = root / "etc/apt"
    (apt / "sources.list").unlink(missing_ok=True)
    for name, text in recipe.apt_sources:
        path = apt / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if recipe.apt_settings:
        (apt / "apt.conf.d/02relais-lab-machine").write_text(recipe.apt_settings)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(ssh_dir, 0o700)


def remove_unused_bases(cache_dir: Path, keep: Path) -> list[Path]:
    """Delete cached base images other than ``keep`` that no lab host has mounted."""
    if not cache_dir.is_dir():
        return []
    in_use = " ".join(m.options for m in system.mounts() if m.fstype == "overlay")
    removed: list[Path] = []
    for path in sorted(cache_dir.glob("base-*")):
        if not path.is_dir() or path == keep or f"lowerdir={path}" in in_use:
            continue
        system.remove_tree(path)
        path.with_suffix(".json").unlink(missing_ok=True)
        removed.append(path)
    return removed
