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
