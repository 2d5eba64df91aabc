"""`relais check`: evaluate the policies (RGPD/CNIL, ANSSI, messaging, operations) on the Plan.

No host, no root, no network: seconds for a whole region. Exit 0 clean, 2 violations
(errors; warnings too with --strict), 1 error (bad inventory, bad option).
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import typer

from relais.cli.context import State
from relais.console import Console
from relais.errors import RelaisError
from relais.findings import (
    FORMATS,
    ReportFormat,
    print_table,
    render,
    rule_dict,
    rules_table,
    write_report,
)

if TYPE_CHECKING:
    from relais.findings import Report


def import_policies(name: str) -> ModuleType:
    """Import a module of the `policies` package.

    Installed distributions ship it next to `relais`; an editable install made before
    `policies*` joined the packages maps only `relais`, so fall back to the source checkout.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        checkout = Path(__file__).resolve().parents[2]
        if error.name not in ("policies", name) or not (checkout / "policies" / "__init__.py").is_file():
            raise RelaisError(f"cannot import {name}: the policies package is not installed",
                              hint="reinstall Relais: pip install -e .") from None
        sys.path.append(str(checkout))
        return importlib.import_module(name)


def parse_today(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RelaisError(f"--today {value!r} is not a date",
                          hint="use an ISO date such as 2025-06-30") from None


def command(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, junit or sarif."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False,
                                help="Write the report to FILE (a summary still goes to stderr)."),
    rules: list[str] = typer.Option([], "--rule", "-r",
                                    help="Only this rule (repeatable; patterns such as 'RGPD-*')."),
    list_rules: bool = typer.Option(False, "--list-rules", help="List the rules and exit."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail the check too."),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
    today: str = typer.Option(None, "--today", metavar="DATE",
                              help="Evaluate waivers as of this ISO date (default: today)."),
    show_passed: bool = typer.Option(False, "--passed", help="In the table, list passed checks too."),
) -> None:
    """Check the Plan against the policies. Exit 2 on violations, 1 on errors."""
    state: State = ctx.obj
    if json_output:
        fmt = "json"
    if fmt not in FORMATS:
        raise RelaisError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    report_format: ReportFormat = fmt
    console = Console(json_mode=report_format != "table" and output is None)
    catalog = import_policies("policies.catalog")
    if list_rules:
        selected = catalog.select(catalog.RULES, rules)
        infos = {r.id: r.info for r in selected}
        if report_format == "json":
            Console(json_mode=True).json([rule_dict(i) for i in infos.values()])
        else:
            rules_table(infos, Console())
        return
    when = parse_today(today)
    from relais.planner import plan_directory

    # = load_plan(state), the inventory kept, and only the parts of the Plan the policies read;
    # the committed register of processing is read meanwhile, by a child in the idle time.
    registers = catalog.read_registers(state.inventory)
    try:
        plan = plan_directory(state.inventory, operational=False).plan
        report: Report = catalog.check_plan(plan, today=when, inventory=state.inventory, only=rules,
                                            registers=registers.result)
    finally:
        registers.close()
    emit(report, report_format, output, console, strict=strict, show_passed=show_passed)
    code = report.exit_code(strict=strict)
    if len(report.findings) >= QUICK_EXIT_FINDINGS:
        leave(code)
    raise typer.Exit(code)


QUICK_EXIT_FINDINGS = 100_000
"""From this many findings on (a region of thousands of communes), `check` leaves at once."""


def leave(code: int) -> NoReturn:
    """Exit now, without freeing the inventory, the Plan and the findings one object at a time:
    for all of France that is a gigabyte of small objects and 0.3 s, a twentieth of the whole
    command, spent on memory the system takes back anyway. The report is written (and
    flushed) and nothing else is left to clean up: no temporary file, thread or child.
    """
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader gone (`| head`), a closed stream
            stream.flush()
    os._exit(code)


def emit(report: Report, fmt: ReportFormat, output: Path | None, console: Console, *,
         strict: bool, show_passed: bool = False) -> None:
    """Print or write `report` in `fmt`; shared by check, and later audit and drift."""
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            write_report(report, fmt, output, strict=strict)
        except OSError as error:
            raise RelaisError(f"cannot write {output}: {error.strerror}") from None
        console.err.print(f"{report.summary(strict=strict)} — report in {output}")
        return
    if fmt == "table":
        print_table(report, console, strict=strict, show_passed=show_passed)
        return
    sys.stdout.write(render(report, fmt, strict=strict))
    sys.stdout.flush()
