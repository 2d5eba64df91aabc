"""Monitoring generated from the Plan: targets, configuration files checked by the real
Prometheus tools (promtool, amtool, blackbox exporter from the Debian packages of
scripts/monitoring-prereqs.sh), rule unit tests for every alert, settings and status."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from relais.monitoring import (
    alert_rules,
    alertmanager_config,
    blackbox_config,
    probe_targets,
    prometheus_config,
    render,
    rules_file,
    scrape_targets,
    tenant_info,
)
from relais.monitoring import rules as R
from relais.monitoring.settings import MonitoringSettings, MonitoringSettingsError, load_settings
from relais.monitoring.status import collect
from relais.monitoring.textfile import tls_expiry_script
from relais.plan import Plan
from relais.planner import plan_directory
from relais.referential import Referential

from .inventories import write_commune

PREREQS = "scripts/monitoring-prereqs.sh"


def tool(name: str) -> str:
    """A Prometheus tool from the Debian packages; missing is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run `sudo {PREREQS}` (Debian packages prometheus, "
                    "prometheus-alertmanager, prometheus-blackbox-exporter)")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False, timeout=60)


@pytest.fixture
def plan(inventory_dir: Path, ref: Referential) -> Plan:
    return plan_directory(inventory_dir).plan


SETTINGS = MonitoringSettings()


# --- targets from the Plan -------------------------------------------------------------------


def test_every_host_and_every_service_listener_is_scraped(plan: Plan) -> None:
    monitor = plan.host("mon-caen")
    targets = {(t.job, t.address) for t in scrape_targets(plan, monitor)}
    for host in plan.hosts:
        assert ("node", f"{host.address}:9100") in targets
    for tenant in plan.tenants:
        if tenant.flavor == "matrix-dedicated" and tenant.probes:
            assert ("synapse", f"{plan.host(tenant.host or '').address}:{tenant.metrics_port}") in targets
    shared = plan.shared_homeserver
    assert shared is not None
    assert ("synapse", f"{plan.host(shared.host).address}:{shared.metrics_port}") in targets
    for xmpp in plan.xmpp_services:
        assert ("prosody", f"{plan.host(xmpp.host).address}:{xmpp.metrics_port}") in targets
    # The stack itself, and nothing on a public address.
    assert {"prometheus", "alertmanager", "blackbox"} <= {job for job, _ in targets}
    assert all(address.startswith(("10.", "127.0.0.1")) for _, address in targets)


def test_every_public_endpoint_of_every_probed_tenant_is_probed_once(plan: Plan) -> None:
    probes = probe_targets(plan)
    urls = [p.target for p in probes]
    assert len(urls) == len(set(urls))
    for tenant in plan.tenants:
        for probe in tenant.probes:
            if probe.kind in ("matrix-client", "xmpp-c2s", "xmpp-s2s"):
                assert probe.target in urls, (tenant.id, probe)
            if probe.kind == "matrix-federation":
                assert f"https://{probe.target}/_matrix/federation/v1/version" in urls
    shared = [p for p in probes if p.tenant == "shared"]
    assert [p.kind for p in shared] == ["matrix-client"]  # one probe for all matrix-shared tenants
    assert not any(p.tenant == "61169" for p in probes)  # requested, not placed: not probed


def test_a_new_commune_is_monitored_without_hand_edits(inventory_dir: Path, ref: Referential) -> None:
    before = plan_directory(inventory_dir).plan
    write_commune(inventory_dir, ref, "14341", flavor="matrix-dedicated")  # Ifs
    after = plan_directory(inventory_dir).plan
    tenant = after.tenant("14341")
    assert tenant.host and tenant.metrics_port
    monitor = after.host("mon-caen")
    new_scrapes = {t.key for t in scrape_targets(after, monitor)} - {
        t.key for t in scrape_targets(before, before.host("mon-caen"))}
    assert new_scrapes == {("synapse", f"{after.host(tenant.host).address}:{tenant.metrics_port}")}
    new_probes = {p.target for p in probe_targets(after)} - {p.target for p in probe_targets(before)}
    assert new_probes == {f"https://{tenant.server_name}/_matrix/client/versions",
                          f"https://{tenant.server_name}:8448/_matrix/federation/v1/version"}
    assert 'tenant="14341"' in tenant_info(after, after.host(tenant.host))


# --- generated files, checked by the real tools ------------------------------------------------


def write_stack(plan: Plan, directory: Path, settings: MonitoringSettings) -> None:
    monitor = plan.host("mon-caen")
    (directory / "rules.yml").write_text(render(rules_file(settings)))
    (directory / "prometheus.yml").write_text(
        render(prometheus_config(plan, monitor, settings, rules_path="rules.yml")))
    (directory / "blackbox.yml").write_text(render(blackbox_config(plan, settings)))


@pytest.mark.parametrize("settings", [SETTINGS, MonitoringSettings.model_validate(
    {"intervals": {"scrape": "5s", "evaluation": "5s", "probe_timeout": "10s"}})], ids=["prod", "lab"])
def test_promtool_check_config_and_rules(plan: Plan, tmp_path: Path, settings: MonitoringSettings) -> None:
    promtool = tool("promtool")
    write_stack(plan, tmp_path, settings)
    config = run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(promtool, "check", "rules", "rules.yml", cwd=tmp_path)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 10 rules found" in rules.stdout


def test_blackbox_configuration_is_accepted(plan: Plan, tmp_path: Path) -> None:
    blackbox = tool("prometheus-blackbox-exporter")
    write_stack(plan, tmp_path, SETTINGS)
    check = run(blackbox, "--config.check", f"--config.file={tmp_path / 'blackbox.yml'}")
    assert check.returncode == 0, check.stdout + check.stderr
    modules = yaml.safe_load((tmp_path / "blackbox.yml").read_text())["modules"]
    assert {p.module for p in probe_targets(plan)} <= set(modules)
    assert modules["matrix_client"]["http"]["tls_config"]["ca_file"] == "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.parametrize("webhook", [None, "https://alertes.normandie.example/hook"])
def test_alertmanager_configuration_is_accepted(plan: Plan, tmp_path: Path, webhook: str | None) -> None:
    amtool = tool("amtool")
    settings = MonitoringSettings.model_validate({
        "smtp": {"host": "smtp.normandie.example", "port": 587, "username": "alertes",
                 "to": ["exploitation@normandie.example", "astreinte@normandie.example"]},
        "webhook": webhook})
    path = tmp_path / "alertmanager.yml"
    path.write_text(render(alertmanager_config(plan, settings, "s3cret")))
    check = run(amtool, "check-config", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(path.read_text())
    assert config["global"]["smtp_smarthost"] == "smtp.normandie.example:587"
    assert config["global"]["smtp_from"] == f"alertes@{plan.syndicate.domain}"
    receivers = {r["name"] for r in config["receivers"]}
    assert receivers == ({"syndicate-email", "syndicate-webhook"} if webhook else {"syndicate-email"})
    # Routing as Alertmanager itself sees it: every alert reaches the e-mail (and the webhook).
    routes = run(amtool, "config", "routes", "test", f"--config.file={path}", "alertname=HostDown",
                 "host=msg-caen-1")
    assert routes.returncode == 0, routes.stderr
    assert set(routes.stdout.strip().split(",")) == receivers


def test_defaults_send_to_the_syndicate_contact(plan: Plan) -> None:
    config = alertmanager_config(plan, SETTINGS, None)
    assert config["receivers"][0]["email_configs"][0]["to"] == plan.syndicate.contact
    assert config["global"]["smtp_smarthost"] == "localhost:25"
    assert "smtp_auth_password" not in config["global"]


# --- every alert, under promtool test rules -----------------------------------------------------

HOST = 'host="msg-caen-1",instance="10.0.0.1:9100",job="node"'
NOW_EPOCH = 0  # promtool evaluates from t=0: time() is the evaluation time
UNIT_SETTINGS = MonitoringSettings.model_validate({"for": {
    "host_down": "2m", "disk": "5m", "memory": "5m", "certificate": "5m", "backup": "5m",
    "endpoint_down": "2m", "service_down": "2m", "federation": "5m", "monitoring": "2m"}})


def case(series: list[tuple[str, str]], alert: str, at: str, expected: list[dict[str, str]]) -> dict[str, Any]:
    return {"interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                 "exp_alerts": [{"exp_labels": e} for e in expected]}]}


PROBE = ('job="tenant_probe",instance="https://caen.fr/_matrix/client/versions",kind="matrix-client",'
         'tenant="14118",host="msg-caen-1",server_name="caen.fr"')
FED = ('job="tenant_probe",instance="xmpp.lesloges.fr:5269",kind="xmpp-s2s",tenant="76390",'
       'host="msg-caen-1",server_name="xmpp.lesloges.fr"')


def labels(text: str, **extra: str) -> dict[str, str]:
    pairs = dict(item.split("=", 1) for item in text.split(","))
    return {k: v.strip('"') for k, v in pairs.items()} | extra


DAY = 86400
RULE_CASES: dict[str, list[dict[str, Any]]] = {
    R.HOST_DOWN: [
        case([(f"up{{{HOST}}}", "1 1 0 0 0 0")], R.HOST_DOWN, "5m",
             [labels(HOST, severity="critical")]),
        case([(f"up{{{HOST}}}", "1 1 0 1 1 1")], R.HOST_DOWN, "5m", []),  # a blip is not an outage
    ],
    R.DISK_FILLING: [
        case([(f'node_filesystem_avail_bytes{{{HOST},fstype="ext4",mountpoint="/"}}', "10x10"),
              (f'node_filesystem_size_bytes{{{HOST},fstype="ext4",mountpoint="/"}}', "100x10")],
             R.DISK_FILLING, "8m", [labels(HOST, fstype="ext4", mountpoint="/", severity="warning")]),
        case([(f'node_filesystem_avail_bytes{{{HOST},fstype="ext4",mountpoint="/"}}', "20x10"),
              (f'node_filesystem_size_bytes{{{HOST},fstype="ext4",mountpoint="/"}}', "100x10"),
              (f'node_filesystem_avail_bytes{{{HOST},fstype="tmpfs",mountpoint="/run"}}', "1x10"),
              (f'node_filesystem_size_bytes{{{HOST},fstype="tmpfs",mountpoint="/run"}}', "100x10")],
             R.DISK_FILLING, "8m", []),  # 80 % used; tmpfs never counts
    ],
    R.MEMORY_PRESSURE: [
        case([(f"node_memory_MemAvailable_bytes{{{HOST}}}", "5x10"),
              (f"node_memory_MemTotal_bytes{{{HOST}}}", "100x10")],
             R.MEMORY_PRESSURE, "8m", [labels(HOST, severity="warning")]),
        case([(f"node_memory_MemAvailable_bytes{{{HOST}}}", "30x10"),
              (f"node_memory_MemTotal_bytes{{{HOST}}}", "100x10")], R.MEMORY_PRESSURE, "8m", []),
    ],
    R.CERTIFICATE_EXPIRING: [
        case([(f"probe_ssl_earliest_cert_expiry{{{PROBE}}}", f"{10 * DAY}x10")],
             R.CERTIFICATE_EXPIRING, "8m", [labels(PROBE, severity="warning")]),
        case([('relais_tls_certificate_expiry_timestamp_seconds{job="node",host="msg-caen-1",'
               'instance="10.0.0.1:9100",name="xmpp.lesloges.fr"}', f"{5 * DAY}x10")],
             R.CERTIFICATE_EXPIRING, "8m",
             [{"job": "node", "host": "msg-caen-1", "instance": "10.0.0.1:9100", "name": "xmpp.lesloges.fr",
               "server_name": "xmpp.lesloges.fr", "severity": "warning"}]),
        case([(f"probe_ssl_earliest_cert_expiry{{{PROBE}}}", f"{60 * DAY}x10")],
             R.CERTIFICATE_EXPIRING, "8m", []),
    ],
    R.BACKUP_TOO_OLD: [
        # time() is 30 h at evaluation; last success at t=0: 30 h old.
        case([('relais_backup_last_success_timestamp_seconds{tenant="14118",host="backup-rouen",job="node"}',
               "0+0x2000")], R.BACKUP_TOO_OLD, "30h", [{"tenant": "14118", "severity": "warning"}]),
        case([('relais_backup_last_success_timestamp_seconds{tenant="14118",host="backup-rouen",job="node"}',
               "0+60x2000")], R.BACKUP_TOO_OLD, "30h", []),  # refreshed every minute
    ],
    R.BACKUP_MISSING: [
        case([('relais_tenant_info{tenant="14118",commune="Caen",backup="backup-rouen",host="msg-caen-1"}',
               "1x2000")], R.BACKUP_MISSING, "27h",
             [{"tenant": "14118", "commune": "Caen", "host": "msg-caen-1", "severity": "warning"}]),
        case([('relais_tenant_info{tenant="14118",commune="Caen",backup="backup-rouen",host="msg-caen-1"}',
               "1x2000"),
              ('relais_backup_last_success_timestamp_seconds{tenant="14118",host="msg-caen-1"}', "0x2000")],
             R.BACKUP_MISSING, "27h", []),
    ],
    R.TENANT_ENDPOINT_DOWN: [
        case([(f"probe_success{{{PROBE}}}", "1 0 0 0 0 0")], R.TENANT_ENDPOINT_DOWN, "5m",
             [labels(PROBE, severity="critical")]),
        case([(f"probe_success{{{PROBE}}}", "1 0 0 0 1 1")], R.TENANT_ENDPOINT_DOWN, "5m", []),
    ],
    R.SERVICE_DOWN: [
        case([('up{job="synapse",host="msg-caen-1",instance="10.0.0.1:8600",service="synapse-14118",'
               'tenant="14118"}', "1 0 0 0 0 0")], R.SERVICE_DOWN, "5m",
             [{"job": "synapse", "host": "msg-caen-1", "instance": "10.0.0.1:8600",
               "service": "synapse-14118", "tenant": "14118", "severity": "critical"}]),
        case([('up{job="prosody",host="msg-caen-1",instance="10.0.0.1:5280",service="prosody"}',
               "1 0 0 0 0 0")], R.SERVICE_DOWN, "5m",
             [{"job": "prosody", "host": "msg-caen-1", "instance": "10.0.0.1:5280", "service": "prosody",
               "severity": "critical"}]),
        case([(f"up{{{HOST}}}", "0x5")], R.SERVICE_DOWN, "5m", []),  # a host is not a service
    ],
    R.FEDERATION_FAILING: [
        case([(f"probe_success{{{FED}}}", "0x10")], R.FEDERATION_FAILING, "8m",
             [labels(FED, severity="warning")]),
        case([(f"probe_success{{{PROBE}}}", "0x10")], R.FEDERATION_FAILING, "8m", []),  # client ≠ federation
    ],
    R.MONITORING_DOWN: [
        case([('up{job="tenant_probe",instance="caen.fr:8448",host="mon-caen"}', "0x5")],
             R.MONITORING_DOWN, "5m",
             [{"job": "tenant_probe", "instance": "caen.fr:8448", "host": "mon-caen", "severity": "critical"}]),
    ],
}


def test_rule_unit_tests_cover_every_alert() -> None:
    assert set(RULE_CASES) == {r.name for r in alert_rules(SETTINGS)}


def test_promtool_rule_unit_tests(tmp_path: Path) -> None:
    """Every alert fires when it should and stays quiet otherwise (expressions, thresholds, for:).
    Annotations are compared for HostDown only (below); the others are stripped here."""
    promtool = tool("promtool")
    document = rules_file(UNIT_SETTINGS)
    for rule in document["groups"][0]["rules"]:
        if rule["alert"] != R.HOST_DOWN:
            rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(render(document))
    tests: list[dict[str, Any]] = [c for cases in RULE_CASES.values() for c in cases]
    host_down = tests[0]["alert_rule_test"][0]["exp_alerts"][0]
    host_down["exp_annotations"] = {
        "summary_fr": "Serveur injoignable : msg-caen-1",
        "summary_en": "Host down: msg-caen-1",
        "description_fr": "Le serveur msg-caen-1 ne répond plus à la supervision depuis 2m : "
                          "les communes qu'il héberge sont probablement sans messagerie.",
        "description_en": "Host msg-caen-1 has not answered monitoring for 2m: the communes it hosts "
                          "probably have no messaging.",
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, allow_unicode=True))
    result = run(promtool, "test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_the_thresholds_and_durations_of_the_settings() -> None:
    settings = MonitoringSettings.model_validate(
        {"thresholds": {"disk_used_percent": 70, "certificate_days": 30, "backup_age_hours": 48},
         "for": {"host_down": "1m"}})
    rules = {r.name: r for r in alert_rules(settings)}
    assert rules[R.DISK_FILLING].expr.endswith("> 70")
    assert "< 30" in rules[R.CERTIFICATE_EXPIRING].expr
    assert rules[R.BACKUP_TOO_OLD].expr.endswith(f"> {48 * 3600}")
    assert rules[R.HOST_DOWN].duration == "1m"
    assert all(r.summary_fr and r.summary_en and r.description_fr and r.description_en
               for r in rules.values())


# --- settings, textfiles, status ---------------------------------------------------------------


def test_settings_from_a_monitoring_section(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("monitoring:\n  smtp: {host: relais.example, from: a@b.example, to: [x@y.example]}\n"
                    "  for: {host_down: 30s}\n  webhook: https://hook.example/x\n")
    settings = load_settings(path)
    assert settings.smtp.sender == "a@b.example" and settings.for_.host_down == "30s"
    assert settings.thresholds.disk_used_percent == 85  # defaults kept
    path.write_text("monitoring:\n  for: {host_down: soon}\n")
    with pytest.raises(MonitoringSettingsError, match=r"monitoring\.for\.host_down"):
        load_settings(path)


def test_certificate_expiry_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from relais.pki import Pki
    from relais.secrets import SecretStore

    monkeypatch.setenv("RELAIS_VAULT_PASSWORD", "test-vault-password-for-pki")
    store = SecretStore.open(tmp_path / "inventory")
    chain, _ = Pki(tmp_path / "inventory", store, "Test").certificate("caen.fr", ["caen.fr"])
    certificate = tmp_path / "caen.fr.crt"
    certificate.write_text(chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    (tmp_path / "tls" / "caen.fr").mkdir(parents=True)
    shutil.copy(certificate, tmp_path / "tls" / "caen.fr" / "fullchain.pem")
    (tmp_path / "out").mkdir()
    script = tmp_path / "job.sh"
    script.write_text(tls_expiry_script())
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "RELAIS_TLS_DIR": str(tmp_path / "tls"),
                                 "RELAIS_TEXTFILE_DIR": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr
    end = run("openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", str(certificate))
    from datetime import datetime

    expected = int(datetime.fromisoformat(end.stdout.strip().split("=", 1)[1].replace("Z", "+00:00"))
                   .timestamp())
    text = (tmp_path / "out" / "relais_tls.prom").read_text()
    assert f'relais_tls_certificate_expiry_timestamp_seconds{{name="caen.fr"}} {expected}' in text


class FakeApi:
    def __init__(self, values: dict[str, list[tuple[dict[str, str], float]]],
                 alerts: list[dict[str, Any]]) -> None:
        self.values, self.alerts = values, alerts

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        for needle, samples in self.values.items():
            if needle in expr:
                return samples
        return []

    def firing_alerts(self) -> list[dict[str, Any]]:
        return self.alerts


def test_status_maps_prometheus_values_onto_the_plan(plan: Plan) -> None:
    api = FakeApi({
        "max by (host) (up{": [({"host": "msg-caen-1"}, 1.0), ({"host": "msg-rouen-1"}, 0.0)],
        "probe_success": [({"tenant": "14118"}, 0.0), ({"tenant": "shared"}, 1.0)],
        "relais_backup_last_success": [({"tenant": "14118"}, 30.0)],
    }, [{"labels": {"alertname": "TenantEndpointDown", "tenant": "14118", "host": "msg-caen-1",
                    "severity": "critical"}, "annotations": {"summary_fr": "injoignable"},
         "state": "firing", "activeAt": "2026-01-01T00:00:00Z"}])
    report = collect(plan, api, "http://x")
    hosts = {h.name: h for h in report.hosts}
    assert hosts["msg-caen-1"].up is True and hosts["msg-rouen-1"].up is False
    assert hosts["backup-rouen"].up is None  # no data is not "up"
    tenants = {t.id: t for t in report.tenants}
    assert tenants["14118"].up is False and tenants["14118"].alerts == ["TenantEndpointDown"]
    assert tenants["14118"].backup_age_hours == 30.0
    assert tenants["14047"].up is True  # matrix-shared: the regional homeserver's probe
    assert "61169" not in tenants  # requested: not monitored
    assert report.firing and report.as_dict()["alerts"][0]["summary"] == "injoignable"
