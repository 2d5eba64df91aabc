"""Facts the xmpp deploy reads on a host (pure `process()`: tested without a host)."""

from __future__ import annotations

from pyinfra.api.facts import FactBase

from relais.xmpp.accounts import MARKER_DIR, parse_markers
from relais.xmpp.config import TENANTS_DIR


class AccountMarkers(FactBase[tuple[dict[str, str], set[str]]]):
    """Accounts Relais manages on this host: (JID -> hash of the password set, disabled JIDs)."""

    @staticmethod
    def default() -> tuple[dict[str, str], set[str]]:
        return {}, set()

    def command(self) -> str:
        return f"grep -H . {MARKER_DIR}/* 2>/dev/null || true"

    def process(self, output: list[str]) -> tuple[dict[str, str], set[str]]:
        return parse_markers(output)


class TenantFiles(FactBase[list[str]]):
    """Names of the per-commune files in Prosody's relais.d directory."""

    @staticmethod
    def default() -> list[str]:
        return []

    def command(self) -> str:
        return f"ls -1 {TENANTS_DIR} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip().endswith(".cfg.lua"))


class RelaisFiles(FactBase[list[str]]):
    """Names of files matching relais-xmpp-* in a directory (nginx sites)."""

    @staticmethod
    def default() -> list[str]:
        return []

    def command(self, directory: str) -> str:
        return f"ls -1 {directory} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip().startswith("relais-xmpp-"))
