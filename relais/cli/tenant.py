"""`relais tenant activate|suspend|resume|offboard COMMUNE`: edit the commune's status, then converge its
hosts; offboarding exports the tenant's data for the commune, then erases it (relais.offboarding)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from relais import tenant_ops
from relais.cli.context import State, load_plan
from relais.console import Console
from relais.plan import Plan, PlannedTenant
from relais.tenant_ops import commune_file, find_tenant, resume_transform, suspend_transform

app = typer.Typer(
    help="Tenant lifecycle: suspend (no logins, data kept), resume, offboard (export, then erase).",
    no_args_is_help=True)

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


def activate_transform(tenant: PlannedTenant) -> Callable[[str], str]:
    if tenant.status == "active":
        return lambda text: text
    if tenant.status != "approved":
        raise tenant_ops.TenantOpError(f"{tenant.commune} is {tenant.status}: "
                                       "only an approved tenant is activated",
                                       hint="approve its request first (`relais requests approve`)")
    return lambda text: tenant_ops.set_status(text, "active")


def _lifecycle(ctx: typer.Context, commune: str, no_deploy: bool, suspend: bool | None) -> None:
    state: State = ctx.obj
    console = Console()
    plan = load_plan(state)
    tenant = find_tenant(plan, commune)
    transform = (activate_transform(tenant) if suspend is None
                 else suspend_transform(tenant) if suspend else resume_transform(tenant))
    edit, plan = tenant_ops.apply_edit(commune_file(state.inventory, tenant), transform,
                                       lambda: load_plan(state))
    tenant = find_tenant(plan, tenant.id)
    verb = "suspended" if suspend else "active"  # resumed and activated tenants are both active
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


@app.command("activate")
def activate(ctx: typer.Context, commune: str = typer.Argument(..., help="INSEE code or name."),
             no_deploy: bool = NO_DEPLOY) -> None:
    """Activate an approved tenant: the deploy creates its service and its agents' accounts."""
    _lifecycle(ctx, commune, no_deploy, suspend=None)


@app.command("offboard")
def offboard(
    ctx: typer.Context,
    commune: str = typer.Argument(..., help="INSEE code or name."),
    yes_erase_data: bool = typer.Option(
        False, "--yes-erase-data", help="Confirm the erasure (with --confirm INSEE, or the code typed)."),
    confirm: str | None = typer.Option(
        None, "--confirm", metavar="INSEE", help="The commune's INSEE code, as a second confirmation."),
    passphrase_file: Path | None = typer.Option(
        None, "--passphrase-file",
        help="File whose first line is the archive's passphrase (else it is typed twice)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Directory of the archive (default <inventory>/offboarding/<insee>/)."),
    operator: str | None = typer.Option(
        None, "--operator", help="Who runs it (default $SUDO_USER or $USER)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be exported and erased; touch nothing."),
    no_deploy: bool = typer.Option(
        False, "--no-deploy", help="Do not converge the other hosts afterwards (run `relais deploy` later)."),
    json_output: bool = typer.Option(
        False, "--json", help="The listing or the evidence record as JSON on stdout."),
) -> None:
    """Export a commune's data into an encrypted archive, then erase the tenant everywhere
    (service, database, media, backups and their keys), with an evidence record."""
    from relais import offboarding as off

    state: State = ctx.obj
    console = Console(json_mode=json_output)
    plan = load_plan(state)
    targets, progress = off.find_offboarding(plan, state.inventory, commune)
    if dry_run:
        listing = off.listing(targets)
        listing["resume"] = sorted(progress["done"]) if progress else []
        if json_output:
            console.json(listing)
            return
        _print_listing(console, listing)
        return
    interactive = sys.stdin.isatty()
    ask = (lambda question: str(typer.prompt(question))) if interactive else None
    if interactive and not json_output:
        _print_listing(console, off.listing(targets))
    off.check_confirmation(targets["insee"], targets["commune"], yes_erase_data=yes_erase_data,
                           confirm=confirm, ask=ask)
    needs_passphrase = not (progress and progress.get("export") and "export" in progress.get("done", []))
    passphrase = (off.read_passphrase(passphrase_file, interactive=interactive) if needs_passphrase else "")

    def replan() -> Plan:
        from relais.lock import write_lock
        from relais.planner import plan_directory

        result = plan_directory(state.inventory)
        write_lock(state.inventory, result.lock)
        return result.plan

    def converge_all(new_plan: Plan) -> None:
        from relais.deploy import deploy_plan

        report = deploy_plan(new_plan, state.inventory)
        if not report.ok:
            failed = [f"{h.host}: {h.error or o.name}" for h in report.hosts for o in h.operations
                      if not o.success][:5]
            raise off.OffboardingError("the deploy after the erasure failed: " + "; ".join(failed),
                                       hint="fix the cause, then run the offboarding again: it resumes")

    from relais.secrets import SecretStore

    run = off.Offboarding(
        targets, progress, off.SshHosts(plan),
        off.Options(state.inventory, off.operator_name(operator), output=output,
                    passphrase=(lambda: passphrase) if needs_passphrase else None, converge=not no_deploy),
        secrets=SecretStore.open(state.inventory), replan=replan, converge=converge_all,
        log=lambda message: console.info(escape(message)))
    started = time.monotonic()
    outcome = run.run()
    if json_output:
        console.json({**outcome.record, "evidence": {"json": str(outcome.evidence_json),
                                                      "md": str(outcome.evidence_md)},
                      "archive": str(outcome.archive), "seconds": round(time.monotonic() - started, 1)})
        return
    export = outcome.record["export"]
    console.print(f"{targets['commune']} ({targets['insee']}) offboarded"
                  + (" (resumed)" if outcome.resumed else "") + f" in {time.monotonic() - started:.0f} s")
    console.print(f"archive: {outcome.archive} ({export['size_bytes']} bytes, sha256 {export['sha256']})")
    console.print(f"evidence: {outcome.evidence_json} and {outcome.evidence_md} (commit them)")
    console.print("send the archive and, by another channel, its passphrase to the commune")


def _print_listing(console: Console, listing: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(listing['commune'])}[/] ({listing['tenant']}), {listing['flavor']} on "
                  f"{listing['host']}")
    if listing.get("resume"):
        console.print(f"resumes an interrupted offboarding (done: {', '.join(listing['resume'])})")
    console.print("[bold]export[/] (encrypted archive for the commune):")
    for item in listing["export"]:
        console.print(f"  • {escape(item)}")
    console.print("[bold]erase[/]:")
    for item in listing["erase"]:
        console.print(f"  • {item['host']}: {escape(item['what'])}: {escape(item['subject'])}")
    console.print("[bold]kept by design[/]:")
    for item in listing["kept"]:
        console.print(f"  • {escape(item)}")
