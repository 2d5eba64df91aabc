"""The one object that owns output: data on stdout, messages and progress on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console as RichConsole
from rich.markup import escape

from relais.errors import RelaisError


class Console:
    """Output for one CLI invocation.

    Tables and JSON go to stdout so they can be piped; progress, warnings and
    errors go to stderr so they never corrupt machine-readable output.
    """

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        # Piped output keeps whole lines: tables are read by people in CI logs too.
        width = None if sys.stdout.isatty() else 200
        self.out = RichConsole(highlight=False, soft_wrap=True, width=width)
        self.err = RichConsole(stderr=True, highlight=False, soft_wrap=True)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.json_mode:
            self.out.print(*objects, **kwargs)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {escape(message)}")

    def error(self, error: RelaisError) -> None:
        self.err.print(f"[bold red]error:[/] {escape(error.format())}")

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=False))
        sys.stdout.write("\n")
        sys.stdout.flush()
