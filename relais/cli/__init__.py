"""The `relais` command: one module per verb, wired here.

Exit codes: 0 ok, 1 error (bad input, failed operation), 2 findings
(policy violations, drift, tenants that do not fit).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from relais.cli.context import State, default_inventory
from relais.console import Console
from relais.errors import RelaisError

if TYPE_CHECKING:
    from types import ModuleType

# Verb -> (module of relais.cli, attribute, kind), in the order `relais --help` lists them.
# The modules are imported only when their verb is wired: `relais check` in CI does not pay
# for the deploy, drift, lab or provisioning stacks (pyinfra, aiohttp, pulumi...).
VERBS: dict[str, tuple[str, str, str]] = {
    "validate": ("validate", "command", "command"),
    "plan": ("plan", "command", "command"),
    "deploy": ("deploy", "command", "command"),
    "backup": ("backup", "app", "typer"),
    "check": ("check", "command", "command"),
    "drift": ("drift", "command", "command"),
    "audit": ("audit", "command", "command"),
    "status": ("status", "command", "command"),
    "probe": ("probe", "command", "command"),
    "agents": ("agents", "app", "typer"),
    "tenant": ("tenant", "app", "typer"),
    "register": ("register", "command", "command"),
    "communes": ("communes", "app", "typer"),
    "secrets": ("secrets", "app", "typer"),
    "lab": ("lab", "app", "typer"),
    "request": ("requests", "request_app", "typer"),
    "requests": ("requests", "app", "typer"),
    "onboarding": ("onboarding", "command", "command"),
    "portal": ("portal", "command", "command"),
    "provision": ("provision", "app", "typer"),
}


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="relais",
        help="Sovereign messaging for French communes: declare, plan, deploy, check.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _root(
    ctx: typer.Context,
    inventory: Path = typer.Option(
        None,
        "--inventory",
        "-i",
        envvar="RELAIS_INVENTORY",
        help="Inventory directory (hosting.yaml + communes/). Default: ./inventory, "
        "else the shipped example region.",
        file_okay=False,
    ),
) -> None:
    ctx.obj = State(inventory=inventory or default_inventory())


def _wire(target: typer.Typer, verbs: list[str]) -> typer.Typer:
    target.callback()(_root)
    for verb in verbs:
        module_name, attribute, kind = VERBS[verb]
        module: ModuleType = importlib.import_module(f"relais.cli.{module_name}")
        if kind == "command":
            target.command(verb)(getattr(module, attribute))
        else:
            target.add_typer(getattr(module, attribute), name=verb)
    return target


_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    """`relais.cli.app`, every verb wired, built on first use (tests, other tools)."""
    global _app
    if name == "app":
        if _app is None:
            _app = _wire(_new_app(), list(VERBS))
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _verb_of(args: list[str]) -> str | None:
    """The verb of a command line (`relais [-i DIR] VERB ...`), None for anything else."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-i", "--inventory"):
            index += 2
        elif arg.startswith("--inventory=") or (arg.startswith("-i") and not arg.startswith("--")):
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg if arg in VERBS else None
    return None


def _app_for(args: list[str]) -> typer.Typer:
    """The app a command line needs: only its verb wired when the verb is known (the same
    command, options and help), else every verb (`relais --help`, a mistyped verb)."""
    if _app is not None:
        return _app
    verb = _verb_of(args)
    return _wire(_new_app(), [verb]) if verb is not None else __getattr__("app")


def main() -> None:
    """Console-script entry point: the only place that turns errors into exit codes.

    Click (in standalone mode) owns usage errors (exit 2), --help and exit codes
    raised with typer.Exit; every RelaisError becomes one clear message and exit 1.
    """
    try:
        _app_for(sys.argv[1:])()
    except RelaisError as error:
        Console().error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        Console().err.print("interrupted")
        sys.exit(130)
