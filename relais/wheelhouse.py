"""The wheelhouse of Synapse: built on the controller with pip, pushed to hosts (no internet there).

Hosts run Debian 12 (CPython 3.11, glibc 2.36, x86_64). Every wheel is downloaded as a binary
for that platform, except psycopg2: it publishes no manylinux wheel (psycopg2-binary bundles
its own libpq and OpenSSL, which its authors advise against in production), so the controller
builds it with gcc against Debian's libpq (packages gcc, python3-dev, libpq-dev) and hosts
install Debian's libpq5. The controller must therefore run the hosts' Debian release and Python
minor version (checked). The result is cached under the XDG cache directory, keyed by the pins,
and packed into one reproducible tar file (fixed order, owners and times) that a deploy pushes
and unpacks only when it changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from relais.errors import RelaisError

SYNAPSE_VERSION = "1.163.2"
PSYCOPG2_VERSION = "2.9.11"
PYTHON_VERSION = "3.11"
PLATFORMS = ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")


class WheelhouseError(RelaisError):
    """The wheelhouse cannot be built."""


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    archive: Path

    @property
    def key(self) -> str:
        return self.directory.name

    def wheels(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.whl"))

    def requirements(self) -> list[str]:
        """What a host installs from it (exact pins)."""
        return [f"matrix-synapse=={SYNAPSE_VERSION}", f"psycopg2=={PSYCOPG2_VERSION}"]


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "relais" / "wheelhouse"


def cache_key(synapse: str = SYNAPSE_VERSION, psycopg2: str = PSYCOPG2_VERSION,
              python: str = PYTHON_VERSION) -> str:
    return f"synapse-{synapse}-psycopg2-{psycopg2}-cp{python.replace('.', '')}"


def download_command(dest: Path, synapse: str = SYNAPSE_VERSION) -> list[str]:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--implementation", "cp", "--dest", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return [*command, f"matrix-synapse=={synapse}"]


def build_psycopg2_command(dest: Path, psycopg2: str = PSYCOPG2_VERSION) -> list[str]:
    return [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary", "psycopg2",
            "--wheel-dir", str(dest), f"psycopg2=={psycopg2}"]


def pack(directory: Path, archive: Path) -> None:
    """A tar of the wheels whose bytes depend only on the wheels (a deploy compares checksums)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(directory.glob("*.whl")):
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    archive.write_bytes(buffer.getvalue())


def _check_controller() -> None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" != PYTHON_VERSION:
        raise WheelhouseError(
            f"the controller runs Python {sys.version_info.major}.{sys.version_info.minor}, hosts "
            f"Python {PYTHON_VERSION}: psycopg2 is built here for the hosts",
            hint=f"run Relais with Python {PYTHON_VERSION} (Debian 12)")
    if shutil.which("pg_config") is None or shutil.which("gcc") is None:
        raise WheelhouseError("building psycopg2 for the hosts needs gcc and libpq's pg_config",
                              hint="apt-get install gcc python3-dev libpq-dev")


def ensure(environ: Mapping[str, str] | None = None) -> Wheelhouse:
    """The cached wheelhouse for the pins, built once (concurrent builders wait on a lock)."""
    root = cache_root(environ)
    root.mkdir(parents=True, exist_ok=True)
    directory = root / cache_key()
    archive = root / f"{cache_key()}.tar"
    house = Wheelhouse(directory, archive)
    if archive.is_file() and directory.is_dir():
        return house
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and directory.is_dir():
            return house
        _check_controller()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            for command in (download_command(work), build_psycopg2_command(work)):
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                    raise WheelhouseError(f"building the wheelhouse failed: {' '.join(tail)}",
                                          hint="the controller needs PyPI (or a mirror) to build it")
            shutil.rmtree(directory, ignore_errors=True)
            work.rename(directory)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        partial = archive.with_suffix(".tar.part")
        pack(directory, partial)
        partial.rename(archive)
    return house


def digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
