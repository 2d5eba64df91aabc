"""`relais probe`: each tenant as a client sees it (table or --json), and with --message a test
message from an agent of one commune to an agent of another, with its delivery.

Exit codes: 0 every probed tenant healthy (and the message delivered), 2 otherwise.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.probes import health, select
from relais.probes.net import ProbeContext

STYLE = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "skipped": "[dim]skipped[/]"}


def command(
    ctx: typer.Context,
    communes: list[str] = typer.Argument(None, help="Only these communes (INSEE code or name)."),
    message: bool = typer.Option(False, "--message", help="Also send a test message between two communes."),
    from_: str = typer.Option(None, "--from", help="Sending commune (default: a dedicated homeserver)."),
    to: str = typer.Option(None, "--to", help="Receiving commune (default: one on another host)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for each answer."),
    json_output: bool = typer.Option(False, "--json", help="The results as JSON on stdout."),
) -> None:
    """Health of each tenant (address, flavor, host) and, with --message, a delivered message."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    plan = load_plan(state)
    probe = ProbeContext.for_inventory(plan, state.inventory, timeout=timeout)
    results = health(probe, select(plan, communes))
    payload: dict[str, object] = {"tenants": [r.as_dict() for r in results]}
    healthy = all(r.health != "failed" for r in results)
    delivery = None
    if message:
        from relais.probes import matrix
        from relais.tenant_ops import find_tenant

        if from_ and to:
            sender, recipient = find_tenant(plan, from_), find_tenant(plan, to)
        else:
            sender, recipient = matrix.pick_pair(plan.tenants)
        delivery = matrix.deliver(probe, sender.agents[0], recipient.agents[0])
        payload["message"] = delivery.as_dict()
        healthy = healthy and delivery.delivered
    if json_output:
        console.json({**payload, "ok": healthy})
    else:
        table = Table(title="Tenants")
        for column in ("commune", "INSEE", "flavor", "status", "host", "address", "health", "details"):
            table.add_column(column)
        for r in results:
            failed = [f"{c.name}: {c.detail}" for c in r.checks if not c.ok]
            if r.health == "skipped":
                details = "; ".join(c.detail for c in r.checks)
            else:
                details = "; ".join(failed) if failed else ", ".join(c.name for c in r.checks)
            table.add_row(escape(r.commune), r.tenant, r.flavor, r.status_in_plan, r.host or "—",
                          escape(r.address), STYLE[r.health], escape(details))
        console.print(table)
        if delivery is not None:
            where = "across hosts (federation)" if delivery.federated else "on one homeserver"
            verdict = (f"[green]delivered[/] in {delivery.seconds:.2f} s" if delivery.delivered
                       else "[red]NOT delivered[/]")
            console.print(f"test message {escape(delivery.sender)} → {escape(delivery.recipient)} "
                          f"{where}: {verdict}")
    if not healthy:
        raise typer.Exit(2)
