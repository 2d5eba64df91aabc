"""The official list of communes (Etalab's `@etalab/decoupage-administratif`).

The dataset is published on the npm registry. Relais fetches the pinned
version by package name with the machine's own npm client (so mirrors and
proxies configured for npm apply), checks it against the pinned integrity
hash, and keeps a compact copy in the XDG cache. Syndicates without registry
access import the package's `communes.json` (or the tarball) by hand with
`relais communes import`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from relais.errors import ReferentialError

PACKAGE = "@etalab/decoupage-administratif"
PINNED_VERSION = "6.0.0"
PINNED_INTEGRITY = (
    "sha512-XavYsFlbcM/prKr8hNHPKER94IHw/dsxNM4nxjWMYk6PLFACpEedvn/7wK8Baozm0dCYhWWcf+7bcWpA5pmCaQ=="
)
COMMUNES_MEMBER = "package/data/communes.json"
CACHE_FORMAT = 1

CURRENT = "commune-actuelle"
KIND_LABELS = {
    "commune-deleguee": "a delegated commune (commune déléguée)",
    "commune-associee": "an associated commune (commune associée)",
    "arrondissement-municipal": "a municipal arrondissement",
}


@dataclass(frozen=True, slots=True)
class OfficialCommune:
    insee: str
    name: str
    kind: str
    siren: str | None
    departement: str
    region: str
    population: int | None
    postal_codes: tuple[str, ...]
    parent: str | None  # for delegated/associated communes and arrondissements

    @property
    def is_current(self) -> bool:
        return self.kind == CURRENT

    def as_dict(self) -> dict[str, Any]:
        return {
            "insee": self.insee,
            "name": self.name,
            "type": self.kind,
            "siren": self.siren,
            "departement": self.departement,
            "region": self.region,
            "population": self.population,
            "postal_codes": list(self.postal_codes),
            "parent": self.parent,
        }


_FOLD = str.maketrans({"œ": "oe", "æ": "ae", "-": " ", "'": " ", "’": " ", "`": " ",
                       ".": " ", ",": " ", "_": " "})
_COMBINING = dict.fromkeys(range(0x300, 0x370))


def normalize(text: str) -> str:
    """Fold accents, case, apostrophes and dashes: `Saint-Lô` == `saint lo`."""
    if text.isascii():
        lowered = text.casefold()
    else:
        lowered = unicodedata.normalize("NFKD", text).translate(_COMBINING).casefold()
    return " ".join(lowered.translate(_FOLD).split())


# ASCII text: every character but a-z and 0-9 separates words (what `normalize`
# then the regular expression below do, in one translation).
_ASCII_SEPARATORS = {c: " " for c in range(128) if chr(c) not in "abcdefghijklmnopqrstuvwxyz0123456789"}
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """A DNS label and file-name part: `Château-Chinon (Ville)` -> `chateau-chinon-ville`."""
    if text.isascii():
        return "-".join(text.lower().translate(_ASCII_SEPARATORS).split())[:63].rstrip("-")
    return _NOT_SLUG.sub("-", normalize(text)).strip("-")[:63].rstrip("-")


class Referential:
    """Lookups over the official communes; built once, read many times."""

    def __init__(self, communes: Iterable[OfficialCommune], version: str) -> None:
        self.version = version
        self._current: dict[str, OfficialCommune] = {}
        self._other: dict[str, list[OfficialCommune]] = {}
        for commune in communes:
            if commune.is_current:
                self._current[commune.insee] = commune
            else:
                self._other.setdefault(commune.insee, []).append(commune)
        self._by_name: dict[str, list[OfficialCommune]] | None = None

    def __len__(self) -> int:
        return len(self._current)

    def current(self, insee: str) -> OfficialCommune | None:
        return self._current.get(insee)

    def non_current(self, insee: str) -> list[OfficialCommune]:
        return list(self._other.get(insee, ()))

    def all_current(self) -> list[OfficialCommune]:
        return list(self._current.values())

    def _names(self) -> dict[str, list[OfficialCommune]]:
        if self._by_name is None:
            index: dict[str, list[OfficialCommune]] = {}
            for commune in self._current.values():
                index.setdefault(normalize(commune.name), []).append(commune)
            self._by_name = index
        return self._by_name

    def search(self, query: str, limit: int = 10) -> list[OfficialCommune]:
        """By INSEE code, postal code or name (exact, prefix, then fuzzy)."""
        query = query.strip()
        if not query:
            return []
        upper = query.upper()
        if upper in self._current:
            return [self._current[upper]]
        if query.isdigit() and len(query) == 5:
            by_postal = [c for c in self._current.values() if query in c.postal_codes]
            if by_postal:
                return sorted(by_postal, key=lambda c: (-(c.population or 0), c.insee))[:limit]
        wanted = normalize(query)
        names = self._names()
        exact = list(names.get(wanted, []))
        prefix = [c for n, cs in names.items() if n.startswith(wanted) and n != wanted for c in cs]
        found = exact + sorted(prefix, key=lambda c: (-(c.population or 0), c.insee))
        if len(found) < limit:
            for name in get_close_matches(wanted, list(names), n=limit, cutoff=0.75):
                found.extend(c for c in names[name] if c not in found)
        return found[:limit]

    def closest_name(self, name: str, departement: str | None = None) -> list[str]:
        wanted = normalize(name)
        pool = [
            c.name for c in self._current.values() if departement is None or c.departement == departement
        ]
        normalized = {normalize(n): n for n in pool}
        return [normalized[m] for m in get_close_matches(wanted, list(normalized), n=3, cutoff=0.6)]


# --------------------------------------------------------------------------- parsing


def _from_etalab(entry: dict[str, Any]) -> OfficialCommune:
    return OfficialCommune(
        insee=str(entry["code"]),
        name=str(entry["nom"]),
        kind=str(entry.get("type", CURRENT)),
        siren=entry.get("siren"),
        departement=str(entry.get("departement", "")),
        region=str(entry.get("region", "")),
        population=entry.get("population"),
        postal_codes=tuple(entry.get("codesPostaux", ())),
        parent=entry.get("commune") or entry.get("chefLieu"),
    )


def parse_etalab(raw: bytes, source: str) -> list[OfficialCommune]:
    try:
        entries = json.loads(raw)
        if not isinstance(entries, list) or not entries:
            raise ValueError("not a non-empty list")
        communes = [_from_etalab(e) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReferentialError(
            f"{source} is not Etalab's communes.json ({exc})",
            hint=f"use data/communes.json from the npm package {PACKAGE}",
        ) from None
    if not any(c.is_current for c in communes):
        raise ReferentialError(f"{source} holds no current commune ('{CURRENT}')")
    return communes


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "relais"


def cache_path(version: str = PINNED_VERSION) -> Path:
    override = os.environ.get("RELAIS_REFERENTIAL")
    if override:
        return Path(override)
    return cache_dir() / f"communes-{version}.json"


def _write_cache(communes: list[OfficialCommune], version: str, origin: str) -> Path:
    path = cache_path(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        [c.insee, c.name, c.kind, c.siren, c.departement, c.region, c.population,
         list(c.postal_codes), c.parent]
        for c in communes
    ]
    payload = {"format": CACHE_FORMAT, "version": version, "origin": origin, "communes": rows}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)
    return path


def load(version: str = PINNED_VERSION) -> Referential:
    """The referential from the cache; a clear error when it has never been fetched."""
    path = cache_path(version)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferentialError(
            f"the official list of communes is not cached ({path})",
            hint="run `relais communes fetch` (uses npm), or `relais communes import FILE` "
            f"with data/communes.json from the npm package {PACKAGE}@{version}",
        ) from None
    except (OSError, ValueError) as exc:
        raise ReferentialError(
            f"the cached list of communes {path} is unreadable ({exc})",
            hint="run `relais communes fetch` again to rebuild it",
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise ReferentialError(
            f"the cached list of communes {path} has an old format",
            hint="run `relais communes fetch` again to rebuild it",
        )
    communes = [
        OfficialCommune(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7]), r[8])
        for r in payload["communes"]
    ]
    return Referential(communes, str(payload.get("version", version)))


def _check_integrity(tarball: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if digest != expected:
        raise ReferentialError(
            f"{PACKAGE} tarball does not match the pinned integrity hash",
            hint="the registry or a mirror served another file; do not use it, report it",
        )


def _communes_from_tarball(tarball: bytes, source: str) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            member = archive.extractfile(COMMUNES_MEMBER)
            if member is None:
                raise KeyError(COMMUNES_MEMBER)
            return member.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise ReferentialError(f"{source} holds no {COMMUNES_MEMBER} ({exc})") from None


def fetch(version: str = PINNED_VERSION, integrity: str = PINNED_INTEGRITY) -> Path:
    """Fetch the pinned package with npm, verify it, and cache its communes."""
    npm = shutil.which("npm")
    if npm is None:
        raise ReferentialError(
            "npm is not installed, so the official list of communes cannot be fetched",
            hint="install it (apt-get install npm) or use `relais communes import FILE`",
        )
    with tempfile.TemporaryDirectory(prefix="relais-npm-") as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", f"{PACKAGE}@{version}", "--json", "--silent",
                 "--pack-destination", tmp],
                capture_output=True, text=True, timeout=300, check=False, cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            raise ReferentialError(
                "npm did not answer within 5 minutes",
                hint="check npm's registry configuration (npm config get registry), "
                "or use `relais communes import FILE`",
            ) from None
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReferentialError(
                f"npm could not fetch {PACKAGE}@{version}: {last}",
                hint="check the network and npm's registry configuration, "
                "or use `relais communes import FILE` with a copy of the package",
            )
        tarball = tarballs[0].read_bytes()
    _check_integrity(tarball, integrity)
    communes = parse_etalab(_communes_from_tarball(tarball, PACKAGE), PACKAGE)
    return _write_cache(communes, version, f"npm:{PACKAGE}@{version}")


def import_file(path: Path, version: str = PINNED_VERSION) -> Path:
    """Import communes.json, or the package tarball (verified against the pin)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReferentialError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        _check_integrity(raw, PINNED_INTEGRITY)
        raw = _communes_from_tarball(raw, str(path))
    communes = parse_etalab(raw, str(path))
    return _write_cache(communes, version, f"file:{path.name}")


def load_or_fetch(version: str = PINNED_VERSION) -> Referential:
    """Load the cache; on first use, fetch it (the CLI's default behaviour)."""
    try:
        return load(version)
    except ReferentialError:
        if not cache_path(version).exists():
            fetch(version)
            return load(version)
        raise
