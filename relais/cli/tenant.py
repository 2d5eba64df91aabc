"""`relais tenant suspend|resume COMMUNE`: edit the commune's status, then converge its hosts."""

from __future__ import annotations

import typer

from relais import tenant_ops
from relais.cli.context import State, load_plan
from relais.console import Console
from relais.plan import Plan, PlannedTenant
from relais.tenant_ops import commune_file, find_tenant, resume_transform, suspend_transform

app = typer.Typer(help="Tenant lifecycle: suspend (no logins, data kept) and resume.", no_args_is_help=True)

NO_DEPLOY = typer.Option(False, "--no-deploy", help="Only edit the declaration; deploy later.")


def converge(state: State, plan: Plan, tenant: PlannedTenant, console: Console) -> None:
    """Create the secrets the Plan now needs, then deploy the tenant's hosts only."""
    from relais.deploy import deploy_plan
    from relais.secrets import SecretStore

    SecretStore.open(state.inventory).ensure_plan(plan)
    console.info(f"deploying {tenant.commune} ({tenant.id}) on {tenant.host}…")
    report = deploy_plan(plan, state.inventory, limit=[tenant.id])
    if not report.ok:
        failed = [f"{h.host}: {h.error or o.name}" for h in report.hosts for o in h.operations
                  if not o.success][:5]
        raise tenant_ops.TenantOpError("the deploy failed: " + "; ".join(failed),
                                       hint="fix the cause, then run `relais deploy --limit "
                                       f"{tenant.id}`; the declaration is already changed")
    console.info(f"done: {report.changed} change(s)")


def _lifecycle(ctx: typer.Context, commune: str, no_deploy: bool, suspend: bool) -> None:
    state: State = ctx.obj
    console = Console()
    plan = load_plan(state)
    tenant = find_tenant(plan, commune)
    transform = suspend_transform(tenant) if suspend else resume_transform(tenant)
    edit, plan = tenant_ops.apply_edit(commune_file(state.inventory, tenant), transform,
                                       lambda: load_plan(state))
    tenant = find_tenant(plan, tenant.id)
    verb = "suspended" if suspend else "active"
    console.info(f"{tenant.commune}: status {verb} in {edit.path}" if edit.changed
                 else f"{tenant.commune} is already {verb}")
    if not no_deploy:
        converge(state, plan, tenant, console)


@app.command("suspend")
def suspend(ctx: typer.Context, commune: str = typer.Argument(..., help="INSEE code or name."),
            no_deploy: bool = NO_DEPLOY) -> None:
    """Suspend a tenant: its agents can no longer log in; messages and accounts are kept."""
    _lifecycle(ctx, commune, no_deploy, suspend=True)


@app.command("resume")
def resume(ctx: typer.Context, commune: str = typer.Argument(..., help="INSEE code or name."),
           no_deploy: bool = NO_DEPLOY) -> None:
    """Resume a suspended tenant."""
    _lifecycle(ctx, commune, no_deploy, suspend=False)
