"""How the lab reports what it does: one line per change, a progress bar per long step.

The library takes a :class:`Reporter`; the CLI passes a :class:`RichReporter`
drawing on stderr, tests and tools pass the silent default.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Task:
    """A long step: ``update`` is safe from several threads."""

    def update(self, *, completed: float | None = None, detail: str | None = None) -> None:
        """Record progress (no-op by default)."""

    def advance(self, amount: float = 1, detail: str | None = None) -> None:
        """Advance by ``amount`` (no-op by default)."""


class Reporter:
    """Silent reporter: the default for library users and tests."""

    def step(self, message: str) -> None:
        """One change made to the machine (no-op by default)."""

    def warn(self, message: str) -> None:
        """Something the operator should know (no-op by default)."""

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator[Task]:
        yield Task()


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id
        self._lock = threading.Lock()

    def update(self, *, completed: float | None = None, detail: str | None = None) -> None:
        with self._lock:
            fields: dict[str, Any] = {} if detail is None else {"detail": escape(detail)}
            self._progress.update(self._id, completed=completed, **fields)

    def advance(self, amount: float = 1, detail: str | None = None) -> None:
        with self._lock:
            fields: dict[str, Any] = {} if detail is None else {"detail": escape(detail)}
            self._progress.update(self._id, advance=amount, **fields)


class RichReporter(Reporter):
    """Changes as lines and long steps as progress bars, on stderr."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet

    def step(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[green]•[/] {escape(message)}")

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}")

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator[Task]:
        if self.quiet:
            yield Task()
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=self.console,
        )
        with progress:
            task_id = progress.add_task(escape(description), total=total, detail="")
            yield _RichTask(progress, task_id)
