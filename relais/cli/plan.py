"""`relais plan`: the desired state, per host; records new placements in placements.lock."""

from __future__ import annotations

import typer
from rich.table import Table

from relais.cli.context import State
from relais.console import Console
from relais.errors import LockError
from relais.lock import LOCK_FILE, read_lock, write_lock
from relais.plan import Plan
from relais.planner import plan_directory
from relais.units import format_mib


def command(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="The Plan as JSON (schema relais.plan/v1)."),
    locked: bool = typer.Option(
        False, "--locked", help="Fail instead of recording new placements (for CI)."
    ),
    schema: bool = typer.Option(False, "--schema", help="Print the Plan's JSON schema and exit."),
) -> None:
    """Compute the Plan. Exit 2 when some tenants do not fit the declared capacity."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    if schema:
        console.json(Plan.model_json_schema(by_alias=True))
        return
    result = plan_directory(state.inventory)
    plan = result.plan
    if result.lock != read_lock(state.inventory):
        if locked:
            raise LockError(
                f"{state.inventory / LOCK_FILE} is out of date: the plan places or releases tenants",
                hint="run `relais plan` and commit the updated placements.lock",
            )
        write_lock(state.inventory, result.lock)
        new = sum(1 for t in plan.tenants if t.placement == "new")
        console.info(f"{LOCK_FILE}: recorded {new} new placement{'s' if new != 1 else ''}")
    for warning in result.inventory.warnings:
        console.warn(warning.format())
    if json_output:
        console.json(plan.to_json())
    else:
        render(plan, console)
    if plan.unplaced:
        raise typer.Exit(2)


def render(plan: Plan, console: Console) -> None:
    tenants = {t.id: t for t in plan.tenants}
    for host in plan.hosts:
        title = (f"{host.name} ({host.site}, {', '.join(host.roles)}) — memory "
                 f"{format_mib(host.used.ram_mib)} / {format_mib(host.capacity.ram_mib)}, disk "
                 f"{format_mib(host.used.disk_mib)} / {format_mib(host.capacity.disk_mib)}")
        if not host.tenants:
            console.print(f"[bold]{title}[/]: no tenant; services: {', '.join(host.services)}\n")
            continue
        table = Table(title=title, title_justify="left", title_style="bold")
        for column in ("INSEE", "commune", "flavor", "status", "server", "accounts", "memory",
                       "backup to", "placement"):
            table.add_column(column)
        for tenant_id in host.tenants:
            t = tenants[tenant_id]
            table.add_row(t.insee, t.commune, t.flavor, t.status, t.server_name, str(t.accounts),
                          format_mib(t.memory_mib), t.backup.target_host or "[red]none[/]",
                          t.placement)
        console.print(table)
        console.print()
    waiting = [t for t in plan.tenants if t.host is None and t.id not in {u.tenant for u in plan.unplaced}]
    if waiting:
        console.print("Not placed (requested or offboarded): "
                      + ", ".join(f"{t.commune} ({t.insee}, {t.status})" for t in waiting))
    if plan.unplaced:
        table = Table(title="Tenants that do not fit", title_justify="left", title_style="bold red")
        for column in ("INSEE", "commune", "reason", "missing memory", "missing disk"):
            table.add_column(column)
        for item in plan.unplaced:
            table.add_row(item.tenant, tenants[item.tenant].commune, item.reason,
                          format_mib(item.missing_ram_mib) if item.missing_ram_mib else "-",
                          format_mib(item.missing_disk_mib) if item.missing_disk_mib else "-")
        console.print(table)
    console.print(f"{len(plan.tenants)} tenants, {sum(1 for t in plan.tenants if t.host)} placed, "
                  f"{len(plan.unplaced)} not fitting, on {len(plan.hosts)} hosts")
