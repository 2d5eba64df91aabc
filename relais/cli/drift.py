"""`relais drift`: compare what runs with the Plan. Exit 0 clean, 2 drift, 1 error."""

from __future__ import annotations

from pathlib import Path

import typer

from relais.cli.check import emit
from relais.cli.context import State, load_plan
from relais.console import Console
from relais.deploy import deploy_plan
from relais.deploy.targets import select_hosts
from relais.drift import deploy_concerns, drift_report, probe_tenants
from relais.errors import RelaisError
from relais.findings import FORMATS, ReportFormat


def command(
    ctx: typer.Context,
    limit: list[str] = typer.Option(None, "--limit", "-l", help="Only these hosts, roles or communes."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, junit or sarif."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False, help="Write the report to FILE."),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    show_passed: bool = typer.Option(False, "--passed", help="In the table, list passed checks too."),
    no_deploy: bool = typer.Option(False, "--no-deploy", help="Skip the dry-run deploy (probes only)."),
    no_probes: bool = typer.Option(False, "--no-probes", help="Skip the probes of tenants' endpoints."),
    probe_timeout: float = typer.Option(15.0, "--probe-timeout", min=1.0,
                                        help="Seconds to wait for each endpoint."),
) -> None:
    """Compare live hosts with the Plan: deploys in dry mode, probes of every served tenant
    (TLS, service, registration closed, admin API hidden) and provisioned stacks. Exit 2 on drift."""
    state: State = ctx.obj
    if json_output:
        fmt = "json"
    if fmt not in FORMATS:
        raise RelaisError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    report_format: ReportFormat = fmt
    console = Console(json_mode=report_format != "table" and output is None)
    plan = load_plan(state)
    hosts = [h.name for h in select_hosts(plan, limit)]
    deploy = None
    if not no_deploy:
        console.info("comparing hosts with the Plan (deploys in dry mode)…")
        deploy = deploy_plan(plan, state.inventory, limit=limit, dry=True)
    probes = []
    if not no_probes:
        console.info("probing the tenants' endpoints…")
        probes = probe_tenants(plan, state.inventory, deploy_concerns(), hosts=hosts, timeout=probe_timeout)
    report = drift_report(plan, state.inventory, deploy, probes)
    emit(report, report_format, output, console, strict=False, show_passed=show_passed)
    raise typer.Exit(report.exit_code())
