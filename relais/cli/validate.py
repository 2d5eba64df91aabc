"""`relais validate`: check every declaration against the schema and the official referential."""

from __future__ import annotations

import typer

from relais import referential
from relais.cli.context import State
from relais.console import Console
from relais.errors import InventoryError
from relais.inventory import load_inventory


def command(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable result on stdout."),
) -> None:
    """Check the inventory; list every problem with its file, line and field."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    try:  # the referential is loaded while the first files are read
        inventory = load_inventory(state.inventory, referential.load_or_fetch)
    except InventoryError as error:
        if json_output:
            console.json({"ok": False, "problems": [p.as_dict() for p in error.problems], "warnings": []})
            raise typer.Exit(1) from None
        raise
    warnings = [w.as_dict() for w in inventory.warnings]
    if json_output:
        console.json({"ok": True, "communes": len(inventory.communes),
                      "hosts": len(inventory.hosting.hosts), "referential": inventory.referential_version,
                      "problems": [], "warnings": warnings})
        return
    for warning in inventory.warnings:
        console.warn(warning.format())
    console.print(
        f"[green]ok[/]: {len(inventory.communes)} communes, {len(inventory.hosting.hosts)} hosts "
        f"in {state.inventory} (official list of communes {inventory.referential_version})"
    )
