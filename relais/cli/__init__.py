"""The `relais` command: one module per verb, wired here.

Exit codes: 0 ok, 1 error (bad input, failed operation), 2 findings
(policy violations, drift, tenants that do not fit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from relais.cli import (
    agents,
    audit,
    backup,
    check,
    communes,
    deploy,
    drift,
    lab,
    onboarding,
    plan,
    portal,
    probe,
    provision,
    register,
    requests,
    secrets,
    status,
    tenant,
    validate,
)
from relais.cli.context import State, default_inventory
from relais.console import Console
from relais.errors import RelaisError

app = typer.Typer(
    name="relais",
    help="Sovereign messaging for French communes: declare, plan, deploy, check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
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


app.command("validate")(validate.command)
app.command("plan")(plan.command)
app.command("deploy")(deploy.command)
app.add_typer(backup.app, name="backup")
app.command("check")(check.command)
app.command("drift")(drift.command)
app.command("audit")(audit.command)
app.command("status")(status.command)
app.command("probe")(probe.command)
app.add_typer(agents.app, name="agents")
app.add_typer(tenant.app, name="tenant")
app.command("register")(register.command)
app.add_typer(communes.app, name="communes")
app.add_typer(secrets.app, name="secrets")
app.add_typer(lab.app, name="lab")
app.add_typer(requests.request_app, name="request")
app.add_typer(requests.app, name="requests")
app.command("onboarding")(onboarding.command)
app.command("portal")(portal.command)
app.add_typer(provision.app, name="provision")


def main() -> None:
    """Console-script entry point: the only place that turns errors into exit codes.

    Click (in standalone mode) owns usage errors (exit 2), --help and exit codes
    raised with typer.Exit; every RelaisError becomes one clear message and exit 1.
    """
    try:
        app()
    except RelaisError as error:
        Console().error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        Console().err.print("interrupted")
        sys.exit(130)
