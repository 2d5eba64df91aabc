"""`relais backup`: run, list, verify, restore and drill the tenants' borg backups.

Exit codes: 0 ok, 1 error (a run, check, restore or drill failed; bad input).
Nothing live is ever overwritten without a confirmation (`--yes` for scripts), and the
previous state is kept until `restore --confirm-swap` (or put back by `--rollback`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from relais.backup import service
from relais.backup.jobs import BackupError
from relais.backup.remote import Runner, ssh_runner
from relais.cli.context import State, default_inventory, load_plan
from relais.console import Console
from relais.plan import Plan
from relais.units import format_mib

app = typer.Typer(help="Tenants' backups (borg, encrypted, on another site): run, list, verify, "
                       "restore, drill.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output on stdout.")
ALL_OPTION = typer.Option(False, "--all", help="Every backup job of the Plan.")
COMMUNES_ARG = typer.Argument(None, help="Communes (INSEE code or name), or `shared` for the shared "
                                         "homeserver.")


def _plan(ctx: typer.Context) -> Plan:
    state = ctx.obj if isinstance(ctx.obj, State) else State(inventory=default_inventory())
    return load_plan(state)


def _runner(plan: Plan) -> Runner:
    return ssh_runner(plan)


def _size(value: Any) -> str:
    size = int(value or 0)
    if not size:
        return "-"
    if size < 1024 * 1024:
        return f"{max(1, size // 1024)}KiB"
    return format_mib(size // (1024 * 1024))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _outcomes_table(title: str, outcomes: list[service.JobOutcome], columns: dict[str, str]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in ("job", "communes", "host → backup host", "result", *columns):
        table.add_column(header)
    for outcome in outcomes:
        data = outcome.as_dict()
        result = "[green]ok[/]" if outcome.ok else f"[red]failed[/]: {escape(str(data.get('error')))}"
        table.add_row(outcome.job.id, escape(", ".join(outcome.job.communes)),
                      f"{outcome.job.host} → {outcome.job.target_host}", result,
                      *(escape(str(data.get(key) if data.get(key) is not None else "-"))
                        for key in columns.values()))
    return table


def _finish(outcomes: list[service.JobOutcome], console: Console, json_: bool, title: str,
            columns: dict[str, str]) -> None:
    if json_:
        console.json([o.as_dict() for o in outcomes])
    else:
        console.print(_outcomes_table(title, outcomes, columns))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("run")
def run(ctx: typer.Context, communes: list[str] = COMMUNES_ARG, all_: bool = ALL_OPTION,
        json_: bool = JSON_OPTION) -> None:
    """Back up now (what the daily timer does): dump, archive, prune. Exit 1 if any run fails."""
    console = Console(json_mode=json_)
    plan = _plan(ctx)
    jobs = service.select_jobs(plan, communes or [], all_)
    console.info(f"backing up {len(jobs)} job(s)…")
    outcomes = service.run_backups(jobs, _runner(plan))
    _finish(outcomes, console, json_, "Backups", {"archive": "archive", "seconds": "duration_seconds",
                                                  "messages": "message_count"})


@app.command("verify")
def verify(ctx: typer.Context, communes: list[str] = COMMUNES_ARG, all_: bool = ALL_OPTION,
           quick: bool = typer.Option(False, "--quick", help="Repository and archive metadata only "
                                                             "(no --verify-data)."),
           json_: bool = JSON_OPTION) -> None:
    """borg check --verify-data now (the weekly timer does it in rotation). Exit 1 on damage."""
    console = Console(json_mode=json_)
    plan = _plan(ctx)
    jobs = service.select_jobs(plan, communes or [], all_)
    outcomes = service.verify_backups(jobs, _runner(plan), verify_data=not quick)
    _finish(outcomes, console, json_, "Verification", {"finished": "finished"})


@app.command("list")
def list_(ctx: typer.Context, communes: list[str] = COMMUNES_ARG,
          archives: bool = typer.Option(False, "--archives", help="List each named job's archives too."),
          check: bool = typer.Option(False, "--check", help="Report as policy findings (BACKUP-02 recent "
                                                            "success off-site, BACKUP-03 retention); "
                                                            "exit 2 on violations."),
          fmt: str = typer.Option("table", "--format", "-f", help="With --check: table, json, junit, sarif."),
          json_: bool = JSON_OPTION) -> None:
    """Every backup job: last success (its age is the recovery point), last run, last check."""
    console = Console(json_mode=json_)
    plan = _plan(ctx)
    runner = _runner(plan)
    jobs = service.select_jobs(plan, communes or [], not communes)
    found = service.statuses(plan, runner, jobs)
    now = datetime.now(UTC)
    if check:
        _check(plan, [s.as_dict(now) for s in found], now, "json" if json_ else fmt)
    listed: dict[str, list[dict[str, Any]]] = {}
    if archives:
        for job in jobs:
            listed[job.id] = service.archives(job, runner)
    if json_:
        console.json([{**s.as_dict(now), **({"archives": listed[s.job.id]} if archives else {})}
                      for s in found])
        return
    table = Table(title="Backups", title_justify="left")
    for header in ("job", "communes", "host → backup host", "last success", "size", "last run", "last check",
                   "restore"):
        table.add_column(header)
    for s in found:
        status = s.status or {}
        last = status.get("last_run") or {}
        run_text = "-"
        if last:
            failed = f"[red]failed[/]: {escape(str(last.get('error')))}"
            run_text = "[green]ok[/]" if last.get("ok") else failed
        if not s.reachable or s.error:
            run_text = f"[red]{escape(str(s.error))}[/]"
        verified = status.get("last_check") or {}
        check_text = "-"
        if verified:
            check_text = ("ok " if verified.get("ok") else "[red]failed[/] ") + str(verified.get("finished"))
        age = s.age_seconds(now)
        table.add_row(s.job.id, escape(", ".join(s.job.communes)), f"{s.job.host} → {s.job.target_host}",
                      _age(age) + " ago" if age is not None else "[red]never[/]",
                      _size((status.get("last_success") or {}).get("size_bytes")), run_text, check_text,
                      "[yellow]awaits confirmation[/]" if s.pending_restore else "")
    console.print(table)
    for job_id, items in listed.items():
        console.print(f"[bold]{job_id}[/]: " + (", ".join(a["name"] for a in items) or "no archive"))


@app.command("restore")
def restore(
    ctx: typer.Context,
    commune: str = typer.Argument(..., help="Commune (INSEE code or name), or `shared`."),
    at: str = typer.Option(None, "--at", metavar="ARCHIVE",
                           help="Archive to restore (default: the latest)."),
    to: str = typer.Option(None, "--to", metavar="HOST",
                           help="Restore on this host (default: the tenant's)."),
    yes: bool = typer.Option(False, "--yes", help="Swap without asking (scripts)."),
    confirm_swap: bool = typer.Option(False, "--confirm-swap", help="Keep the restored state and erase the "
                                                                    "previous one kept by the last restore."),
    rollback: bool = typer.Option(False, "--rollback", help="Put back the state the last restore set aside."),
    json_: bool = JSON_OPTION,
) -> None:
    """Restore into a fresh database and data directory, then swap (after confirmation).

    The live state is set aside (database renamed `<db>_before_<stamp>`, directories
    `<dir>.before-<stamp>`) until `--confirm-swap` erases it or `--rollback` puts it back.
    """
    console = Console(json_mode=json_)
    plan = _plan(ctx)
    job = service.select_jobs(plan, [commune], False)[0]
    runner = _runner(plan)
    if confirm_swap and rollback:
        raise BackupError("--confirm-swap and --rollback exclude each other")
    if confirm_swap or rollback:
        pending = service.pending_restore(job, runner, to)
        if pending is None:
            raise BackupError(f"no restore of {job.label} awaits confirmation")
        what = ("erase the previous state (" + ", ".join(_aside(pending)) + ")") if confirm_swap else \
            "put back the previous state and discard the restored one"
        if not yes and not typer.confirm(f"{job.label}: {what}?", default=False):
            raise typer.Exit(1)
        result = service.finish_restore(job, runner, keep="restored" if confirm_swap else "previous", host=to)
        if json_:
            console.json(result)
        else:
            done = "previous state erased" if confirm_swap else "previous state back"
            console.info(f"{job.label}: {done}")
        return
    console.info(f"{job.label}: restoring {at or 'the latest archive'} into a fresh database and directory…")
    staged = service.stage_restore(job, runner, archive=at, host=to)
    counts = ""
    if staged.get("message_count") is not None:
        counts = (f"; {staged.get('restored_message_count')} messages restored "
                  f"(the backup recorded {staged.get('message_count')})")
    console.info(f"staged archive {staged['archive']} of {staged['created']}{counts}")
    question = (f"Swap {job.label} on {to or job.host} to archive {staged['archive']}? The live state is "
                f"kept aside until `relais backup restore {job.id} --confirm-swap`")
    if not yes and not typer.confirm(question, default=False):
        service.abort_restore(job, runner, staged, to)
        console.info("nothing swapped; the staged copy was thrown away")
        raise typer.Exit(1)
    swapped = service.swap_restore(job, runner, staged, to)
    if json_:
        console.json({"staged": staged, "swapped": swapped})
        return
    serving = swapped.get("serving")
    console.print(f"{escape(job.label)}: restored from [bold]{staged['archive']}[/]"
                  + (f", serving again after {swapped.get('seconds_to_serving')} s" if serving else "")
                  + ("" if serving is None or serving else " — [red]not serving yet[/]"))
    console.print("previous state kept: " + ", ".join(_aside(swapped)))
    console.print(f"when satisfied: relais backup restore {job.id} --confirm-swap "
                  f"(or --rollback to put the previous state back)")
    if serving is False:
        raise typer.Exit(1)


def _check(plan: Plan, statuses: list[dict[str, Any]], now: datetime, fmt: str) -> None:
    from relais.cli.check import emit, import_policies
    from relais.findings import FORMATS, ReportFormat

    if fmt not in FORMATS:
        raise BackupError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    report_format: ReportFormat = fmt
    report = import_policies("policies.backups").live_report(plan, statuses, now=now)
    emit(report, report_format, None, Console(json_mode=report_format != "table"), strict=False)
    raise typer.Exit(report.exit_code())


def _aside(pending: dict[str, Any]) -> list[str]:
    kept = [f"database {pending['previous_database']}"] if pending.get("previous_database") else []
    kept += [aside for _live, aside in pending.get("moved", []) if aside]
    return kept or ["nothing (there was no live state)"]


@app.command("drill")
def drill(ctx: typer.Context, communes: list[str] = COMMUNES_ARG, all_: bool = ALL_OPTION,
          json_: bool = JSON_OPTION) -> None:
    """Restore the latest archive into a scratch instance, check it serves and holds the backup's
    messages, then throw it away. Reports recovery point (RPO) and recovery time (RTO)."""
    console = Console(json_mode=json_)
    plan = _plan(ctx)
    jobs = service.select_jobs(plan, communes or [], all_)
    console.info(f"drilling {len(jobs)} job(s)…")
    outcomes = service.drill(jobs, _runner(plan))
    _finish(outcomes, console, json_, "Restore drill",
            {"archive": "archive", "RPO (s)": "rpo_seconds", "RTO (s)": "rto_seconds",
             "messages": "restored_message_count", "expected": "expected_message_count",
             "serving": "serving"})
