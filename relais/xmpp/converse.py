"""Converse.js, the browser client of the xmpp communes: fetched on the controller with the
ordinary npm client (`npm pack`, by package name and pinned version, through whatever
registry the machine's npm is configured for), its integrity checked against the pinned
hash, and repacked as a small deterministic tarball of the files a browser needs (no
source maps, no unminified copies) that the deploy pushes to hosts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from relais.xmpp import XmppError

PACKAGE = "converse.js"
VERSION = "14.0.0"
# `npm view converse.js@14.0.0 dist.integrity`
INTEGRITY = ("sha512-LFUg030jDalV47vI/vyVPqYPZfJYXFbubq8v0cFDe2zXNeeGEk3Up0Fj/WTzT6t+6do+"
             "cAIToy73eAj7RNDj2Q==")
ENV_CACHE = "RELAIS_CONVERSE_CACHE"
_SKIPPED_SUFFIXES = (".map",)
_SKIPPED_NAMES = {"converse.js", "converse.css", "website.css", "website.min.css"}


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    from relais.referential import cache_dir as relais_cache

    return relais_cache() / "converse"


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def wanted(member_name: str) -> str | None:
    """Path under dist/ of a tarball member the browser needs, or None."""
    prefix = "package/dist/"
    if not member_name.startswith(prefix):
        return None
    relative = member_name[len(prefix):]
    name = relative.rsplit("/", 1)[-1]
    if not relative or name in _SKIPPED_NAMES or name.endswith(_SKIPPED_SUFFIXES):
        return None
    return relative


def repack(npm_tarball: bytes) -> bytes:
    """The browser's files of the npm tarball as an uncompressed tar (dist/...), byte-for-byte
    reproducible: sorted, owned by root, fixed times and modes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(npm_tarball), mode="r:gz") as source, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target:
        members = sorted((m for m in source.getmembers() if m.isfile() and wanted(m.name)),
                         key=lambda m: m.name)
        for member in members:
            handle = source.extractfile(member)
            if handle is None:
                continue
            data = handle.read()
            info = tarfile.TarInfo("dist/" + (wanted(member.name) or ""))
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = "root"
            target.addfile(info, io.BytesIO(data))
    return out.getvalue()


def fetch(version: str = VERSION, integrity: str = INTEGRITY) -> Path:
    """Path of the repacked tarball for `version`, fetched with `npm pack` once and cached."""
    directory = cache_dir()
    bundle = directory / f"converse-{version}.tar"
    if bundle.is_file():
        return bundle
    npm = shutil.which("npm")
    if npm is None:
        raise XmppError("npm is not installed on the controller",
                        hint="install Debian's npm: the web client is fetched with `npm pack`")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as work:
        done = subprocess.run([npm, "pack", f"{PACKAGE}@{version}", "--silent"], cwd=work,
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise XmppError(f"npm pack {PACKAGE}@{version} failed: {done.stderr.strip()[-300:]}",
                            hint="check the controller's npm configuration (registry, proxy)")
        tarballs = list(Path(work).glob("*.tgz"))
        if len(tarballs) != 1:
            raise XmppError(f"npm pack {PACKAGE}@{version} did not produce one tarball")
        data = tarballs[0].read_bytes()
    found = integrity_of(data)
    if found != integrity:
        raise XmppError(f"{PACKAGE}@{version} does not match its pinned integrity ({found})",
                        hint="the registry served something else than the pinned release: do not deploy it")
    partial = bundle.with_suffix(".tmp")
    partial.write_bytes(repack(data))
    partial.replace(bundle)
    return bundle
