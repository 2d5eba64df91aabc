"""Facts the hardening deploy reads from the live host (pure `process()`, unit-tested)."""

from __future__ import annotations

import shlex

from pyinfra.api.facts import FactBase


class LiveSysctls(FactBase[dict[str, str]]):
    """Every sysctl as text (`sysctl -a`), values with their spacing normalised."""

    def command(self) -> str:
        return "sysctl -a 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in output:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = " ".join(value.split())
        return values


class NftablesDrift(FactBase[bool]):
    """True when the live table differs from what the last deploy loaded (or was never loaded)."""

    def command(self, table: str) -> str:
        return (
            f"if nft list table inet {shlex.quote(table)} 2>/dev/null | "
            "cmp -s - /var/lib/relais/nftables.applied; then echo same; else echo drift; fi"
        )

    def process(self, output: list[str]) -> bool:
        return "same" not in output


class EnabledUnits(FactBase[list[str]]):
    """Which of `units` are enabled or active."""

    def command(self, units: tuple[str, ...]) -> str:
        names = " ".join(shlex.quote(u) for u in units)
        return (
            f'for u in {names}; do if systemctl is-enabled -q "$u" 2>/dev/null || '
            'systemctl is-active -q "$u" 2>/dev/null; then echo "$u"; fi; done'
        )

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class StatOverrides(FactBase[dict[str, str]]):
    """dpkg-statoverride entries: path -> 'owner group mode'."""

    def command(self) -> str:
        return "dpkg-statoverride --list 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, str]:
        entries: dict[str, str] = {}
        for line in output:
            parts = line.split()
            if len(parts) == 4:
                entries[parts[3]] = " ".join(parts[:3])
        return entries


class PendingUpgrades(FactBase[int]):
    """How many installed packages an upgrade would change.

    The package lists are refreshed first when older than an hour (what unattended-upgrades
    does daily anyway): facts are read before any operation runs, so on a fresh host the
    base deploy's own `apt update` would come too late for this count.
    """

    def command(self) -> str:
        return (
            'if [ -z "$(find /var/cache/apt/pkgcache.bin -mmin -60 2>/dev/null)" ]; then '
            "apt-get -qq update >/dev/null 2>&1; fi; "
            "apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | grep -c '^Inst ' || true"
        )

    def process(self, output: list[str]) -> int:
        text = "".join(output).strip()
        return int(text) if text.isdigit() else 0


class MountOptions(FactBase[str]):
    """The mount options of `path` (findmnt), empty when not a mount point."""

    def command(self, path: str) -> str:
        return f"findmnt -no OPTIONS {shlex.quote(path)} || true"

    def process(self, output: list[str]) -> str:
        return ",".join(line.strip() for line in output if line.strip())


class FileModes(FactBase[dict[str, tuple[int, str, str] | None]]):
    """Mode, owner and group of each path (None: missing), in one command."""

    def command(self, paths: tuple[str, ...]) -> str:
        names = " ".join(shlex.quote(p) for p in paths)
        return f'for f in {names}; do stat -c \'%n|%a|%U|%G\' "$f" 2>/dev/null || echo "$f|missing"; done'

    def process(self, output: list[str]) -> dict[str, tuple[int, str, str] | None]:
        from relais.audit.facts import parse_stat

        return {
            path: (s.mode, s.owner, s.group) if s.exists else None for path, s in parse_stat(output).items()
        }


class LoginDefs(FactBase[dict[str, str]]):
    """The values of `keys` set in /etc/login.defs (the first line of each wins, as for login)."""

    def command(self, keys: tuple[str, ...]) -> str:
        return f"grep -E '^({'|'.join(keys)})[[:space:]]' /etc/login.defs || true"

    def process(self, output: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in output:
            parts = line.split()
            if len(parts) >= 2:
                values.setdefault(parts[0], parts[1])
        return values


class FileDigests(FactBase[dict[str, tuple[str, str, str, str] | None]]):
    """SHA-1, mode, owner and group of each regular file (None: missing), in one command."""

    def command(self, paths: tuple[str, ...]) -> str:
        names = " ".join(shlex.quote(p) for p in paths)
        return (
            f'for f in {names}; do if [ -f "$f" ]; then '
            'echo "$f|$(sha1sum < "$f" | cut -d\' \' -f1)|$(stat -c \'%a|%U|%G\' "$f")"; '
            'else echo "$f|missing"; fi; done'
        )

    def process(self, output: list[str]) -> dict[str, tuple[str, str, str, str] | None]:
        found: dict[str, tuple[str, str, str, str] | None] = {}
        for line in output:
            parts = line.split("|")
            if len(parts) == 5:
                found[parts[0]] = (parts[1], parts[2], parts[3], parts[4])
            elif len(parts) == 2:
                found[parts[0]] = None
        return found
