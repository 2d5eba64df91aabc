"""`relais status`: hosts, tenants and firing alerts, read from Prometheus.

Exit 2 while an alert is firing (for scripts), 1 when Prometheus cannot be read.
"""

from __future__ import annotations

import time

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.monitoring.status import PrometheusApi, StatusReport, collect, default_prometheus_url


def command(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="The status as JSON."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until interrupted."),
    interval: float = typer.Option(5.0, "--interval", min=1.0, help="Seconds between refreshes (--watch)."),
    prometheus: str = typer.Option(None, "--prometheus", envvar="RELAIS_PROMETHEUS_URL",
                                   help="Prometheus URL (default: the Plan's first monitor host)."),
) -> None:
    """Live state of the hosts and tenants of the Plan. Exit 2 while an alert is firing."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    plan = load_plan(state)
    api = PrometheusApi(prometheus or default_prometheus_url(plan))

    def read() -> StatusReport:
        return collect(plan, api, api.url)

    if watch and not json_output:
        report = read()
        with Live(render(report), console=console.out, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    report = read()
                    live.update(render(report), refresh=True)
            except KeyboardInterrupt:
                pass
    else:
        report = read()
        if json_output:
            console.json(report.as_dict())
        else:
            console.print(render(report))
    if report.firing:
        raise typer.Exit(2)


def _flag(up: bool | None) -> Text:
    if up is None:
        return Text("?", style="yellow")
    return Text("up", style="green") if up else Text("DOWN", style="bold red")


def _num(value: float | None, unit: str = "", warn: float | None = None, low: bool = False) -> Text:
    if value is None:
        return Text("—", style="dim")
    bad = warn is not None and (value < warn if low else value > warn)
    return Text(f"{value:.0f}{unit}", style="bold red" if bad else "")


def render(report: StatusReport) -> Group:
    hosts = Table(title="Serveurs / hosts", title_justify="left")
    for column in ("host", "state", "CPU", "memory", "disk", "tenants", "alerts"):
        hosts.add_column(column)
    for h in report.hosts:
        hosts.add_row(h.name, _flag(h.up), _num(h.cpu_percent, " %"), _num(h.memory_percent, " %", 90),
                      _num(h.disk_percent, " %", 85), str(len(h.tenants)),
                      Text(str(h.alerts), style="bold red") if h.alerts else Text("0"))
    tenants = Table(title="Communes / tenants", title_justify="left")
    for column in ("tenant", "commune", "flavor", "host", "state", "TLS days", "last backup", "alerts"):
        tenants.add_column(column)
    for t in report.tenants:
        tenants.add_row(t.id, t.commune, t.flavor, t.host or "—", _flag(t.up),
                        _num(t.tls_days_left, "", 21, low=True), _num(t.backup_age_hours, " h", 26),
                        Text(", ".join(t.alerts), style="bold red") if t.alerts else Text(""))
    parts: list[Table | Text] = [hosts, tenants]
    if report.alerts:
        alerts = Table(title="Alertes en cours / firing alerts", title_justify="left")
        for column in ("alert", "severity", "host", "tenant", "summary", "since"):
            alerts.add_column(column)
        for a in report.alerts:
            alerts.add_row(a.name, a.severity, a.host or "", a.tenant or "", a.summary, a.since[:19])
        parts.append(alerts)
    else:
        parts.append(Text("Aucune alerte / no alert firing", style="green"))
    parts.append(Text(f"Prometheus: {report.prometheus}", style="dim"))
    return Group(*parts)
