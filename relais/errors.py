"""The one root exception of Relais and its specific subclasses.

Every error a user can cause is a :class:`RelaisError`; the CLI prints it as
one clear line (or one line per problem) and exits 1, never with a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one place of a user's file."""

    file: str
    line: int | None
    field: str
    message: str
    expected: str | None = None
    hint: str | None = None

    def location(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}" if self.field else where

    def format(self) -> str:
        text = f"{self.location()}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "expected": self.expected,
            "hint": self.hint,
        }


class RelaisError(Exception):
    """Root of every error Relais reports to a user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


class InventoryError(RelaisError):
    """The declarations cannot be loaded: one or more problems, each located."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field))
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the inventory")

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems) + f"\n{self.message}"


@dataclass
class ProblemCollector:
    """Gathers problems so one run reports all of them, not just the first."""

    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        file: str | Path,
        line: int | None,
        field_: str,
        message: str,
        *,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems.append(Problem(str(file), line, field_, message, expected, hint))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InventoryError(self.problems)


class ReferentialError(RelaisError):
    """The official list of communes is missing, corrupt or cannot be fetched."""


class PlanError(RelaisError):
    """The inventory is valid but cannot be turned into a plan."""


class LockError(PlanError):
    """The placement lock file is unreadable or out of date where it must not be."""


class SecretsError(RelaisError):
    """A secret cannot be created, read or rotated."""


class LabError(RelaisError):
    """The local lab cannot be brought up, inspected or taken down."""
