"""`inventory/placements.lock`: the placements already decided, so they never move.

The planner is pure: it reads this lock and returns a new one. Only
`relais plan` writes it (and `relais plan --locked` refuses to, for CI). A
tenant leaves the lock when it is offboarded or its file is removed; moving a
tenant on purpose is an operator's edit of this file (and a data migration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from relais.errors import LockError
from relais.yamlsafe import read_bounded

LOCK_FILE = "placements.lock"
MAX_LOCK_BYTES = 64_000_000
"""A line per tenant: all of France writes 1.7 MB. A larger file (or one that never ends) is refused."""
LOCK_VERSION = 1
_HEADER = (
    "# Placements decided by `relais plan`. Commit this file: it keeps every tenant on\n"
    "# its host when communes are added or removed. Edit a line only to move a tenant on\n"
    "# purpose (its data must be migrated).\n"
)


@dataclass(frozen=True, slots=True)
class Placement:
    host: str
    slot: int | None = None
    backup: str | None = None


Lock = dict[str, Placement]


def read_lock(inventory: Path) -> Lock:
    path = inventory / LOCK_FILE
    try:
        with path.open("rb") as stream:
            raw = read_bounded(stream, MAX_LOCK_BYTES)
        if len(raw) > MAX_LOCK_BYTES:
            raise LockError(f"{path}: larger than {MAX_LOCK_BYTES // 1_000_000} MB, not a lock",
                            hint="restore it from version control (git checkout -- it)")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: unreadable ({exc})") from None
    written = _as_written(text)
    if written is not None:
        return written
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise LockError(f"{path}: not valid YAML ({exc})",
                        hint="restore it from version control (git checkout -- it)") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(
        data.get("tenants", {}), dict
    ):
        raise LockError(f"{path}: expected `version: {LOCK_VERSION}` and a `tenants:` mapping",
                        hint="restore it from version control")
    lock: Lock = {}
    for key, value in (data.get("tenants") or {}).items():
        if not isinstance(value, dict) or not isinstance(value.get("host"), str):
            raise LockError(f"{path}: tenants.{key}: expected {{host: NAME, slot: N, backup: NAME}}",
                            hint="restore it from version control")
        slot = value.get("slot")
        backup = value.get("backup")
        lock[str(key)] = Placement(
            value["host"],
            slot if isinstance(slot, int) and not isinstance(slot, bool) else None,
            backup if isinstance(backup, str) else None,
        )
    return lock


# One tenant's line as `render_lock` writes it.
_LINE = re.compile(r'  "([0-9A-Z]+)": \{host: ([a-z][a-z0-9-]*)(?:, slot: (0|[1-9][0-9]*))?'
                   r'(?:, backup: ([a-z][a-z0-9-]*))?\}\n')
# Words YAML reads as something other than text: a host so named takes the YAML path (and fails).
_NOT_TEXT = frozenset(("y", "n", "yes", "no", "true", "false", "on", "off", "null"))


def _as_written(text: str) -> Lock | None:
    """The lock, if `text` is exactly what `render_lock` writes (None otherwise: read it as YAML).

    A region's lock has a line per tenant, and PyYAML takes 1.7 s to read 35,000 of them
    (all of France); this reads them with one regular expression. It is only a shortcut:
    the result counts only if rendering it gives back the same text, byte for byte, so a
    file edited by hand in any other way is read by the YAML path, which also reports errors.
    """
    start = text.find("tenants:\n")
    if start < 0:
        return None
    lock: Lock = {}
    for key, host, slot, backup in _LINE.findall(text, start + len("tenants:\n")):
        if host in _NOT_TEXT or backup in _NOT_TEXT:
            return None
        lock[key] = Placement(host, int(slot) if slot else None, backup or None)
    return lock if render_lock(lock) == text else None


def render_lock(lock: Lock) -> str:
    lines = [_HEADER, f"version: {LOCK_VERSION}\n", "tenants:\n" if lock else "tenants: {}\n"]
    for key in sorted(lock):
        placement = lock[key]
        fields = [f"host: {placement.host}"]
        if placement.slot is not None:
            fields.append(f"slot: {placement.slot}")
        if placement.backup is not None:
            fields.append(f"backup: {placement.backup}")
        lines.append(f'  "{key}": {{{", ".join(fields)}}}\n')
    return "".join(lines)


def write_lock(inventory: Path, lock: Lock) -> bool:
    """Write the lock if it changed; return whether it did."""
    path = inventory / LOCK_FILE
    text = render_lock(lock)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    tmp = path.with_suffix(".lock.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise LockError(f"cannot write {path}: {exc.strerror}") from None
    return True
