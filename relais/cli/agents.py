"""`relais agents list|add|reset COMMUNE`: the agents of a tenant, from its declaration.

Passwords are generated into the vault (never printed unless asked with --show, never logged);
the deploy sets them on the homeserver.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from relais import tenant_ops
from relais.cli.context import State, load_plan
from relais.cli.tenant import NO_DEPLOY, converge
from relais.console import Console

app = typer.Typer(help="Agents of a commune: list, add, reset a password.", no_args_is_help=True)

COMMUNE = typer.Argument(..., help="INSEE code or name of the commune.")


@app.command("list")
def list_(ctx: typer.Context, commune: str = COMMUNE,
          json_output: bool = typer.Option(False, "--json", help="As JSON on stdout.")) -> None:
    """The agents of a commune: name, e-mail, address, where their password is kept."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    tenant = tenant_ops.find_tenant(load_plan(state), commune)
    rows = [{"name": a.name, "email": a.email, "login": a.login, "address": a.address,
             "password": a.password.ref} for a in tenant.agents]
    if json_output:
        console.json({"tenant": tenant.id, "commune": tenant.commune, "flavor": tenant.flavor,
                      "status": tenant.status, "agents": rows})
        return
    table = Table(title=f"{tenant.commune} ({tenant.id}, {tenant.flavor}, {tenant.status})")
    for column in ("name", "email", "address", "password (vault)"):
        table.add_column(column)
    for row in rows:
        table.add_row(escape(row["name"]), escape(row["email"]), escape(row["address"]),
                      escape(row["password"]))
    console.print(table)


@app.command("add")
def add(ctx: typer.Context, commune: str = COMMUNE,
        name: str = typer.Option(..., "--name", help="Full name, e.g. 'Camille Martin'."),
        email: str = typer.Option(..., "--email", help="Professional e-mail address."),
        login: str = typer.Option(None, "--login", help="Login (default: from the name)."),
        no_deploy: bool = NO_DEPLOY) -> None:
    """Declare a new agent, generate their password into the vault, and create the account."""
    state: State = ctx.obj
    console = Console()
    tenant = tenant_ops.find_tenant(load_plan(state), commune)
    edit, plan = tenant_ops.apply_edit(tenant_ops.commune_file(state.inventory, tenant),
                                       lambda text: tenant_ops.add_agent(text, name, email, login),
                                       lambda: load_plan(state))
    tenant = tenant_ops.find_tenant(plan, tenant.id)
    agent = tenant_ops.find_agent(tenant, email)
    console.info(f"{agent.address} added to {edit.path}; password kept in the vault as {agent.password.ref} "
                 f"(`relais secrets show {agent.password.ref}` to hand it over)")
    if no_deploy:
        from relais.secrets import SecretStore

        SecretStore.open(state.inventory).ensure_plan(plan)
        return
    converge(state, plan, tenant, console)


@app.command("reset")
def reset(ctx: typer.Context, commune: str = COMMUNE,
          agent: str = typer.Argument(..., help="Login, address or e-mail of the agent."),
          show: bool = typer.Option(False, "--show", help="Print the new password (to hand it over)."),
          no_deploy: bool = NO_DEPLOY) -> None:
    """Replace an agent's password with a new generated one (their sessions are closed)."""
    from relais.secrets import SecretStore

    state: State = ctx.obj
    console = Console()
    plan = load_plan(state)
    tenant = tenant_ops.find_tenant(plan, commune)
    found = tenant_ops.find_agent(tenant, agent)
    store = SecretStore.open(state.inventory)
    store.rotate(found.password)
    console.info(f"new password for {found.address} in the vault ({found.password.ref}); "
                 "commit the vault file")
    if show:
        typer.echo(store.get(found.password))
    if not no_deploy:
        converge(state, plan, tenant, console)
