"""`relais onboarding COMMUNE`: the printable French sheet for a mairie."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.errors import RelaisError
from relais.onboarding import find_tenant, render_onboarding


def command(
    ctx: typer.Context,
    commune: str = typer.Argument(..., help="INSEE code or name of the commune"),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False,
                                help="Write the HTML page here (default: stdout)."),
    web_client: str = typer.Option(None, "--web-client",
                                   help="Web client URL shown to Matrix users (default: the syndicate's)."),
) -> None:
    """Write the onboarding sheet (HTML, printable) of a commune's tenant."""
    state: State = ctx.obj
    plan = load_plan(state)
    tenant = find_tenant(plan, commune)
    page = render_onboarding(plan, tenant, web_client=web_client or None)
    if output is None:
        sys.stdout.write(page)
        return
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RelaisError(f"cannot write {output}: {exc.strerror}") from None
    Console().info(f"onboarding sheet of {tenant.commune} ({tenant.insee}) written to {output}")
