"""pyinfra facts of the Matrix deploys (pure `process`, unit-tested)."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api.facts import FactBase

_POSTGRES_QUERY = ("SELECT 'role', rolname, coalesce(rolpassword, '') FROM pg_authid "
                   "UNION ALL SELECT 'db', datname, datcollate FROM pg_database")


class PostgresState(FactBase[dict[str, dict[str, str]]]):
    """Roles (name -> SCRAM verifier) and databases (name -> collation) of the local cluster.
    Empty before PostgreSQL is installed or while it is down."""

    def command(self) -> str:
        return ("if command -v psql >/dev/null 2>&1; then runuser -u postgres -- "
                f"psql -XAtq -F '|' -c \"{_POSTGRES_QUERY}\" 2>/dev/null || true; fi")

    @staticmethod
    def default() -> dict[str, dict[str, str]]:
        return {"roles": {}, "databases": {}}

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        state = self.default()
        for line in output:
            parts = line.split("|", 2)
            if len(parts) != 3:
                continue
            kind, name, value = parts
            state["roles" if kind == "role" else "databases"][name] = value
        return state


class JsonFile(FactBase[dict[str, Any] | None]):
    """A JSON document on the host (root-only state files), or None if absent or unreadable."""

    def command(self, path: str) -> str:
        return f"cat {path} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, Any] | None:
        text = "\n".join(output).strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


class Listing(FactBase[list[str]]):
    """Paths in `path` whose name starts with `prefix` (files or links), sorted."""

    def command(self, path: str, prefix: str) -> str:
        return f"find {path} -maxdepth 1 -name '{prefix}*' 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip())
