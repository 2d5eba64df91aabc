"""`relais deploy`: converge hosts to the Plan (pyinfra), with progress and a summary."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.deploy import deploy_plan
from relais.deploy.runner import DeployReport, Reporter
from relais.deploy.targets import select_hosts


class RichReporter(Reporter):
    """Progress bars on a terminal; on a log (CI, redirected output) one line per step, per
    changed or failed operation, as Ansible's and pyinfra's own outputs do."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.log = not progress.console.is_terminal
        self.tasks: dict[str, TaskID] = {}
        self.changed: dict[str, int] = {}

    def preparing(self, host: str, step: str) -> None:
        if self.log:
            self.progress.console.print(f"{host}: reading facts for {step}", highlight=False)
        else:
            if host not in self.tasks:
                self.tasks[host] = self.progress.add_task(host, total=None)
            self.progress.update(self.tasks[host], description=f"{host}: reading facts for {step}"[:90])

    def host_started(self, host: str, operations: int) -> None:
        if self.log:
            self.progress.console.print(f"{host}: {operations} operation(s) to run", highlight=False)
        if host in self.tasks:
            self.progress.update(self.tasks[host], total=operations, completed=0, description=host)
        else:
            self.tasks[host] = self.progress.add_task(host, total=operations)
        self.changed[host] = 0

    def operation_done(self, host: str, name: str, changed: bool, success: bool) -> None:
        if host in self.tasks:
            self.changed[host] += int(changed)
            mark = "[red]failed[/] " if not success else ("[yellow]changed[/] " if changed else "")
            if self.log and mark:
                self.progress.console.print(f"{host}: {mark}{escape(name)}", highlight=False)
            self.progress.update(self.tasks[host], advance=1,
                                 description=f"{host}: {mark}{escape(name)}"[:90])

    def message(self, text: str) -> None:
        self.progress.console.print(text)


def command(
    ctx: typer.Context,
    limit: list[str] = typer.Option(None, "--limit", "-l",
                                    help="Only these hosts, roles or communes (repeatable)."),
    dry: bool = typer.Option(False, "--dry", help="Show what would change; change nothing."),
    json_output: bool = typer.Option(False, "--json", help="The report as JSON on stdout."),
) -> None:
    """Converge hosts to the Plan. Exit 1 if any operation fails."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    plan = load_plan(state)
    hosts = select_hosts(plan, limit)
    console.info(f"{'dry run: ' if dry else ''}connecting to {len(hosts)} host(s)…")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console.err, transient=True, disable=json_output) as progress:
        report = deploy_plan(plan, state.inventory, limit=limit, dry=dry, reporter=RichReporter(progress))
    if json_output:
        console.json(report.as_dict())
    else:
        render(report, console)
    if not report.ok:
        raise typer.Exit(1)


def render(report: DeployReport, console: Console) -> None:
    if report.dry:
        for host in report.hosts:
            pending = [op.name for op in host.operations if op.changed]
            if host.error:
                console.print(f"[red]{host.host}[/]: {host.error}")
            elif pending:
                console.print(f"[bold]{host.host}[/]: {len(pending)} operation(s) would change")
                for name in pending:
                    console.print(f"  ~ {name}")
            else:
                console.print(f"[bold]{host.host}[/]: up to date")
    table = Table(title="Deploy summary" + (" (dry run: nothing changed)" if report.dry else ""),
                  title_justify="left")
    for column in ("host", "as", "changed" if not report.dry else "would change", "unchanged", "failed"):
        table.add_column(column)
    for host in report.hosts:
        table.add_row(host.host, host.user, str(host.changed), str(host.unchanged),
                      f"[red]{host.failed}[/]" if host.failed else "0")
    console.print(table)
    for host in report.hosts:
        if host.error:
            console.print(f"[red]{host.host}[/]: {host.error}")
        for op in host.operations:
            if not op.success:
                console.print(f"[red]{host.host}[/]: {op.name}: {op.error}")
