"""Monitoring on real lab hosts: Prometheus scrapes what the Plan declares, alerts fire
and resolve, reach Alertmanager's e-mail (a lab-local SMTP sink on the monitor host)
and `relais status`, and a new commune is monitored after its deploy, by hand edit of nothing.

Services of other concerns: where the Plan's unit of a tenant (synapse-<id>) is
deployed, the outage test stops and starts that unit. In a lab without the matrix
and proxy deploys, it runs a declared stand-in instead: a few lines of Python
serving the tenant's HTTPS endpoint (with the tenant's certificate from deploys/tls)
and its metrics port, as a transient unit. The monitoring side (blackbox with
certificate verification, scrape, rules, Alertmanager, status) is real either way.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import typer
from typer.testing import CliRunner

from relais.cli.context import State, default_inventory
from relais.deploy import DeployReport, deploy_plan
from relais.lab import Lab
from relais.monitoring.metrics import BACKUP_TEXTFILE
from relais.monitoring.rules import BACKUP_TOO_OLD, SERVICE_DOWN, TENANT_ENDPOINT_DOWN
from relais.monitoring.status import PrometheusApi, collect, default_prometheus_url
from relais.monitoring.targets import probe_targets, scrape_targets
from relais.plan import Plan, PlannedTenant
from relais.planner import plan_directory

# Short durations and the SMTP sink come from the example region's `monitoring:` section
# (inventory/hosting.yaml).
SINK_UNIT = "relais-test-smtp-sink"
POLL_SECONDS = 150


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = POLL_SECONDS) -> Any:
    """Poll until `predicate` returns something truthy (bounded; no timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s: {what}")
        time.sleep(2)


@pytest.fixture(scope="module")
def monitor(plan: Plan) -> str:
    return next(h.name for h in plan.hosts if "monitor" in h.roles)


@pytest.fixture(scope="module")
def prometheus(deployed: DeployReport, plan: Plan) -> PrometheusApi:
    api = PrometheusApi(default_prometheus_url(plan))
    wait_for("Prometheus answers", lambda: _answers(api))
    return api


def _answers(api: PrometheusApi) -> bool:
    try:
        return requests.get(f"{api.url}/-/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def targets(api: PrometheusApi) -> list[dict[str, Any]]:
    response = requests.get(f"{api.url}/api/v1/targets", params={"state": "active"}, timeout=10)
    return list(response.json()["data"]["activeTargets"])


def firing(api: PrometheusApi, alert: str, **labels: str) -> bool:
    return any(a["labels"].get("alertname") == alert
               and all(a["labels"].get(k) == v for k, v in labels.items())
               for a in api.firing_alerts())


def unit_active(lab: Lab, host: str, unit: str) -> bool:
    return lab.exec(host, ["systemctl", "is-active", "--quiet", unit]).returncode == 0


# --- the Plan's targets, up ---------------------------------------------------------------------


def test_prometheus_scrapes_exactly_the_plan_and_every_running_target_is_up(
        prometheus: PrometheusApi, plan: Plan, lab: Lab, monitor: str) -> None:
    expected = {(t.job, t.address) for t in scrape_targets(plan, plan.host(monitor))}
    expected |= {("tenant_probe", p.target) for p in probe_targets(plan)}

    def scraped() -> list[dict[str, Any]]:
        found = targets(prometheus)
        # Every target has been scraped at least once.
        return found if all(t["health"] != "unknown" for t in found) else []

    found = wait_for("every target scraped once", scraped)
    actual = {(t["labels"]["job"], t["labels"]["instance"]) for t in found}
    assert actual == expected

    down = {(t["labels"]["job"], t["labels"]["instance"]): t["lastError"]
            for t in found if t["health"] != "up"}
    # The node exporter of every host, the stack itself and the blackbox probes' scrapes are up.
    assert not {k: v for k, v in down.items() if k[0] not in ("synapse", "prosody")}, down
    # Homeservers' and Prosody's listeners are up wherever their unit runs.
    for target in scrape_targets(plan, plan.host(monitor)):
        if target.job in ("synapse", "prosody"):
            running = unit_active(lab, target.labels["host"], target.labels["service"])
            assert ((target.job, target.address) not in down) == running, (target, down)


def test_exporters_listen_on_private_addresses_only(prometheus: PrometheusApi, plan: Plan, lab: Lab,
                                                    monitor: str) -> None:
    for host in plan.lab_hosts():
        listening = lab.exec(host.name, ["ss", "-Htln"]).stdout
        assert f"{host.address}:9100 " in listening
        assert "*:9100" not in listening and "0.0.0.0:9100" not in listening
    stack = lab.exec(monitor, ["ss", "-Htln"]).stdout
    address = plan.host(monitor).address
    assert f"{address}:9090 " in stack and f"{address}:9093 " in stack and "127.0.0.1:9115 " in stack
    assert ":9094 " not in stack  # no Alertmanager cluster port


# --- an outage of a commune: fires, reaches e-mail and status, resolves --------------------------


STANDIN = r"""
import http.server, json, ssl, sys, threading
cert_dir, address, metrics_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (json.dumps({"versions": ["v1.11"]}) if self.path.startswith("/_matrix")
                else "# stand-in\nstandin_up 1\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{cert_dir}/fullchain.pem", f"{cert_dir}/privkey.pem")
tls.socket = context.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer((address, metrics_port), H).serve_forever()
"""


def _dedicated(plan: Plan) -> PlannedTenant:
    return next(t for t in plan.tenants
                if t.flavor == "matrix-dedicated" and t.host and t.metrics_port and t.probes)


@pytest.fixture(scope="module")
def tenant_service(deployed: DeployReport, lab: Lab, plan: Plan) -> Iterator[tuple[PlannedTenant, str]]:
    """(tenant, unit to stop and start): the Plan's homeserver unit if deployed, else a stand-in."""
    tenant = _dedicated(plan)
    assert tenant.host and tenant.domain
    unit = tenant.unix_user or f"synapse-{tenant.id}"
    if lab.exec(tenant.host, ["systemctl", "cat", f"{unit}.service"]).returncode == 0:
        yield tenant, unit
        lab.exec(tenant.host, ["systemctl", "start", unit])
        return
    unit = f"relais-test-standin-{tenant.id}"
    lab.exec(tenant.host, ["sh", "-c", "cat > /root/relais-standin.py"], input_text=STANDIN)
    address = plan.host(tenant.host).address or ""
    started = lab.exec(tenant.host, [
        "systemd-run", f"--unit={unit}",
        "python3", "/root/relais-standin.py", f"/etc/relais/tls/{tenant.domain}", address,
        str(tenant.metrics_port)])
    assert started.returncode == 0, started.stderr
    yield tenant, unit
    lab.exec(tenant.host, ["systemctl", "stop", unit])
    lab.exec(tenant.host, ["rm", "-f", "/root/relais-standin.py"])


SINK = r"""
import asyncore, email, email.policy, smtpd
class Sink(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        message = email.message_from_bytes(data, policy=email.policy.default)
        body = message.get_body(("plain",))
        print(f"TO: {', '.join(rcpttos)}\nSUBJECT: {message['subject']}\n{body.get_content() if body else ''}")
Sink(("127.0.0.1", 2525), None)
asyncore.loop()
"""


@pytest.fixture(scope="module")
def smtp_sink(deployed: DeployReport, lab: Lab, monitor: str) -> Iterator[Callable[[], str]]:
    """An SMTP sink on the monitor host's loopback (Python's smtpd); returns the decoded mails."""
    lab.exec(monitor, ["systemctl", "stop", SINK_UNIT])
    lab.exec(monitor, ["systemctl", "reset-failed", SINK_UNIT])
    lab.exec(monitor, ["sh", "-c", "cat > /root/relais-smtp-sink.py"], input_text=SINK)
    started = lab.exec(monitor, ["systemd-run", f"--unit={SINK_UNIT}", "--setenv=PYTHONUNBUFFERED=1",
                                 "python3", "-W", "ignore", "/root/relais-smtp-sink.py"])
    assert started.returncode == 0, started.stderr
    yield lambda: lab.exec(monitor, ["journalctl", "-u", SINK_UNIT, "--no-pager", "-o", "cat"]).stdout
    lab.exec(monitor, ["systemctl", "stop", SINK_UNIT])
    lab.exec(monitor, ["rm", "-f", "/root/relais-smtp-sink.py"])


def _status(plan: Plan) -> tuple[int, dict[str, Any]]:
    """`relais status --json` (its exit code and its JSON)."""
    from relais.cli.status import command

    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = State(inventory=default_inventory())

    app.command("status")(command)
    result = CliRunner().invoke(app, ["status", "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_a_stopped_homeserver_fires_the_tenant_alerts_and_starting_it_resolves_them(
        prometheus: PrometheusApi, plan: Plan, lab: Lab, tenant_service: tuple[PlannedTenant, str],
        smtp_sink: Callable[[], str]) -> None:
    tenant, unit = tenant_service
    host = tenant.host or ""
    wait_for(f"{tenant.id} answers", lambda: not firing(prometheus, TENANT_ENDPOINT_DOWN, tenant=tenant.id)
             and any(t.id == tenant.id and t.up for t in collect(plan, prometheus, prometheus.url).tenants))

    lab.exec(host, ["systemctl", "stop", unit])
    wait_for("tenant endpoint down alert", lambda: firing(prometheus, TENANT_ENDPOINT_DOWN, tenant=tenant.id))
    wait_for("service down alert", lambda: firing(prometheus, SERVICE_DOWN, tenant=tenant.id))
    code, status = _status(plan)
    assert code == 2
    row = next(t for t in status["tenants"] if t["id"] == tenant.id)
    assert row["up"] is False and TENANT_ENDPOINT_DOWN in row["alerts"]
    assert row["tls_days_left"] is not None and row["tls_days_left"] > 21
    assert any(a["name"] == TENANT_ENDPOINT_DOWN and a["tenant"] == tenant.id for a in status["alerts"])
    mail = wait_for("alert e-mail", lambda: (lambda m: m if f"commune {tenant.id}" in m else "")(smtp_sink()))
    assert "EN COURS : Service de messagerie injoignable" in mail and "FIRING: Tenant endpoint down" in mail
    assert f"TO: {plan.syndicate.contact}" in mail

    if unit.startswith("relais-test-standin"):
        _restart_standin(lab, plan, tenant, unit)
    else:
        lab.exec(host, ["systemctl", "start", unit])
    wait_for("alerts resolved", lambda: not firing(prometheus, TENANT_ENDPOINT_DOWN, tenant=tenant.id)
             and not firing(prometheus, SERVICE_DOWN, tenant=tenant.id))
    row = next(t for t in _status(plan)[1]["tenants"] if t["id"] == tenant.id)
    # (FederationFailing may remain where nothing serves federation, as with the stand-in.)
    assert row["up"] is True and not {TENANT_ENDPOINT_DOWN, SERVICE_DOWN} & set(row["alerts"])
    wait_for("resolution e-mail", lambda: "RÉSOLUE" in smtp_sink())


def _restart_standin(lab: Lab, plan: Plan, tenant: PlannedTenant, unit: str) -> None:
    lab.exec(tenant.host or "", ["systemctl", "reset-failed", unit])
    started = lab.exec(tenant.host or "", [
        "systemd-run", f"--unit={unit}", "python3", "/root/relais-standin.py",
        f"/etc/relais/tls/{tenant.domain}", plan.host(tenant.host or "").address or "",
        str(tenant.metrics_port)])
    assert started.returncode == 0, started.stderr


# --- backups ------------------------------------------------------------------------------------


def test_an_old_backup_fires_the_backup_alert(prometheus: PrometheusApi, plan: Plan, lab: Lab) -> None:
    tenant = _dedicated(plan)
    host = tenant.host or ""
    old = int(time.time()) - 30 * 3600
    text = (f'relais_backup_last_success_timestamp_seconds{{tenant="{tenant.id}"}} {old}\n'
            f'relais_backup_last_size_bytes{{tenant="{tenant.id}"}} 1048576\n')
    lab.exec(host, ["sh", "-c", f"cat > {BACKUP_TEXTFILE}.tmp && mv {BACKUP_TEXTFILE}.tmp {BACKUP_TEXTFILE}"],
             input_text=text)
    try:
        wait_for("backup alert", lambda: firing(prometheus, BACKUP_TOO_OLD, tenant=tenant.id))
        row = next(t for t in collect(plan, prometheus, prometheus.url).tenants if t.id == tenant.id)
        assert row.backup_age_hours is not None and 29.9 < row.backup_age_hours < 31
    finally:
        lab.exec(host, ["rm", "-f", BACKUP_TEXTFILE])
    wait_for("backup alert resolved", lambda: not firing(prometheus, BACKUP_TOO_OLD, tenant=tenant.id))


# --- a new commune ------------------------------------------------------------------------------

NEW_COMMUNE = """version: 1
commune:
  insee: "14341"
  name: Ifs
  siren: "211403415"
contacts:
  mairie: mairie@ifs.example.fr
  dpo: {name: Centre de gestion du Calvados, email: dpo@cdg14.example.fr}
tenant:
  flavor: matrix-dedicated
  seats: 5
  status: active
"""


def test_a_new_commune_appears_in_prometheus_after_its_deploy(
        prometheus: PrometheusApi, plan: Plan, monitor: str, tmp_path: Path) -> None:
    inventory = shutil.copytree(default_inventory(), tmp_path / "inventory")
    (inventory / "communes" / "14341-ifs.yaml").write_text(NEW_COMMUNE, encoding="utf-8")
    grown = plan_directory(inventory).plan
    tenant = grown.tenant("14341")
    assert tenant.host and tenant.metrics_port
    new_address = f"{grown.host(tenant.host).address}:{tenant.metrics_port}"
    new_probe = f"https://{tenant.server_name}/_matrix/client/versions"

    def instances() -> set[str]:
        return {t["labels"]["instance"] for t in targets(prometheus)}

    assert new_address not in instances() and new_probe not in instances()
    try:
        # The monitor host alone: monitoring follows from the Plan, not from the tenant's own deploy.
        report = deploy_plan(grown, inventory, limit=[monitor])
        assert report.ok, [(h.host, h.error) for h in report.hosts if h.failed]
        wait_for("the new commune's targets", lambda: {new_address, new_probe} <= instances())
    finally:
        restored = deploy_plan(plan, default_inventory(), limit=[monitor])
        assert restored.ok
    wait_for("the new commune's targets gone", lambda: not {new_address, new_probe} & instances())
