"""`relais audit`: live facts of every host against the hardening baseline, and Lynis.

Exit 0 clean, 2 violations (errors; warnings too with --strict), 1 error (a host could not
be audited, bad option).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from relais.audit import HostAudit, audit_plan
from relais.audit.lynis import DEFAULT_THRESHOLD
from relais.cli.check import emit, parse_today
from relais.cli.context import State, load_plan
from relais.console import Console
from relais.errors import RelaisError
from relais.findings import FORMATS, ReportFormat


def command(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, junit or sarif."),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        dir_okay=False,
        help="Write the report to FILE (a summary still goes to stderr).",
    ),
    limit: list[str] = typer.Option(None, "--limit", "-l", help="Only these hosts, roles or communes."),
    no_lynis: bool = typer.Option(False, "--no-lynis", help="Skip Lynis (about a minute per host)."),
    threshold: int = typer.Option(
        DEFAULT_THRESHOLD,
        "--lynis-threshold",
        min=0,
        max=100,
        help="Lowest acceptable Lynis hardening index.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail the audit too."),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    today: str = typer.Option(None, "--today", metavar="DATE", help="Evaluate waivers as of this ISO date."),
    show_passed: bool = typer.Option(False, "--passed", help="In the table, list passed checks too."),
) -> None:
    """Audit the live hosts (sshd -T, sysctl, nftables, files, packages, services, sudo,
    fail2ban, auditd) and run Lynis. Exit 2 on violations, 1 when a host cannot be audited."""
    state: State = ctx.obj
    if json_output:
        fmt = "json"
    if fmt not in FORMATS:
        raise RelaisError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    report_format: ReportFormat = fmt
    console = Console(json_mode=report_format != "table" and output is None)
    plan = load_plan(state)

    def progress(host: HostAudit) -> None:
        console.info(f"{host.host}: {'[red]' + host.error + '[/]' if host.error else 'audited'}")

    console.info("reading live facts" + ("" if no_lynis else " and running Lynis (about a minute)") + "…")
    result = audit_plan(
        plan,
        limit=limit,
        run_lynis=not no_lynis,
        threshold=threshold,
        today=parse_today(today),
        inventory=state.inventory,
        progress=progress,
    )
    if not no_lynis:
        lynis_table(result.hosts, console, threshold)
    emit(result.report, report_format, output, console, strict=strict, show_passed=show_passed)
    for host in result.unreachable:
        console.err.print(f"[red]{host.host}: not audited: {host.error}[/]")
    if result.unreachable:
        raise typer.Exit(1)
    raise typer.Exit(result.report.exit_code(strict=strict))


def lynis_table(hosts: list[HostAudit], console: Console, threshold: int) -> None:
    table = Table(title="Lynis", title_justify="left")
    for column in ("host", "hardening index", "warnings", "suggestions"):
        table.add_column(column)
    for host in hosts:
        if host.lynis is None or host.lynis.hardening_index is None:
            table.add_row(host.host, f"[red]{host.lynis_error or host.error or 'not run'}[/]", "-", "-")
            continue
        index = host.lynis.hardening_index
        style = "green" if index >= threshold else "red"
        table.add_row(
            host.host,
            f"[{style}]{index}[/]",
            ", ".join(w.test for w in host.lynis.warnings) or "0",
            str(len(host.lynis.suggestions)),
        )
    console.err.print(table)
