"""Drift findings from a dry-run deploy, from provisioned stacks and from probe results (pure
parts, fake probe results; the lab tests run the real thing)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from deploys import ALL
from relais.deploy.runner import DeployReport, HostReport, OperationResult
from relais.drift import RULES, drift_report, findings_from_probes, missing_concerns, probed_tenants
from relais.findings import Severity, Status, to_junit, to_sarif
from relais.plan import Plan, PlannedTenant
from relais.planner import plan_directory
from relais.probes import Check, TenantHealth
from relais.provision.outputs import ProvisionedHost, write_provisioned
from relais.referential import Referential

from ..conftest import FIXTURES


def _report() -> DeployReport:
    clean = HostReport("mon-caen", "relais", True, None,
                       [OperationResult("Base system | Set the timezone", False, True)])
    drifted = HostReport("msg-caen-1", "relais", True, None,
                         [OperationResult("Hardening | sshd", True, True),
                          OperationResult("Base system | Set the timezone", False, True)])
    down = HostReport("backup-rouen", "relais", False, "cannot connect over SSH as relais@10.77.0.21")
    return DeployReport(True, [clean, drifted, down])


def test_drift_findings_name_host_and_operation(inventory_dir: Path, ref: Referential,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no pulumi CLI
    plan = plan_directory(inventory_dir, referential=ref).plan
    report = drift_report(plan, inventory_dir, _report())
    failed = {(f.rule, f.subject): f for f in report.findings if f.status is Status.FAILED}
    assert set(failed) == {("DRIFT-01", "host:msg-caen-1"), ("DRIFT-02", "host:backup-rouen")}
    assert "Hardening | sshd" in failed[("DRIFT-01", "host:msg-caen-1")].message
    assert report.exit_code() == 2
    assert "msg-caen-1" in to_junit(report)


def test_clean_hosts_exit_0(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    clean = DeployReport(True, [HostReport("mon-caen", "relais", True, None,
                                           [OperationResult("x", False, True)])])
    assert drift_report(plan, inventory_dir, clean).exit_code() == 0


def test_provisioned_stack_without_pulumi_is_reported_not_failed(
    inventory_dir: Path, ref: Referential, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("RELAIS_PULUMI", raising=False)
    plan = plan_directory(inventory_dir, referential=ref).plan
    write_provisioned(inventory_dir, "openstack", {"msg-caen-1": ProvisionedHost("10.0.0.5", None, "openstack")})
    report = drift_report(plan, inventory_dir, DeployReport(True, []))
    [stack] = [f for f in report.findings if f.rule == "DRIFT-03"]
    assert stack.subject == "stack:openstack" and stack.severity is Severity.INFO
    assert "pulumi" in stack.message and report.exit_code() == 0


# --------------------------------------------------------------------------- probes


def _health(tenant: PlannedTenant, checks: list[Check]) -> TenantHealth:
    return TenantHealth(tenant.id, tenant.commune, tenant.flavor, tenant.status, tenant.host,
                        tenant.server_name, "ok" if all(c.ok for c in checks) else "failed", checks)


def _tenant(plan: Plan, flavor: str) -> PlannedTenant:
    return next(t for t in plan.tenants if t.flavor == flavor and t.status == "active")


HEALTHY_MATRIX = [
    Check("TLS certificate", True, "TLSv1.3, valid", "tls"),
    Check("certificate expiry", True, "valid until 2027-01-01 (90 days)", "expiry"),
    Check("client API", True, "HTTP 200"),
    Check("registration closed", True, "HTTP 403 M_FORBIDDEN", "registration"),
    Check("admin API closed", True, "HTTP 404", "admin"),
]


def test_probe_results_become_one_finding_per_tenant_and_aspect(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    matrix, xmpp = _tenant(plan, "matrix-dedicated"), _tenant(plan, "xmpp")
    broken_xmpp = [
        Check("client port 5222", True, "stream opened"),
        Check("client TLS certificate", True, "TLSv1.3", "tls"),
        Check("certificate expiry", False, f"{xmpp.server_name}: expires on 2026-12-05, in 5 day(s) (< 21)",
              "expiry"),
        Check("registration closed", False, "in-band registration offered", "registration"),
        Check("federation port 5269", False, "ConnectionRefusedError: [Errno 111] Connection refused"),
    ]
    findings = findings_from_probes(plan, inventory_dir, [_health(matrix, HEALTHY_MATRIX),
                                                          _health(xmpp, broken_xmpp)])
    by_key = {(f.rule, f.subject): f for f in findings}
    assert set(by_key) == {(r, f"tenant:{t.id}") for r, t in [
        ("DRIFT-04", matrix), ("DRIFT-05", matrix), ("DRIFT-06", matrix), ("DRIFT-07", matrix),
        ("DRIFT-08", matrix), ("DRIFT-04", xmpp), ("DRIFT-05", xmpp), ("DRIFT-06", xmpp), ("DRIFT-07", xmpp)]}
    failed = {rule for (rule, subject), f in by_key.items() if f.status is Status.FAILED}
    assert failed == {"DRIFT-05", "DRIFT-06", "DRIFT-07"}
    expiry = by_key[("DRIFT-05", f"tenant:{xmpp.id}")]
    assert f"on {xmpp.host}" in expiry.message and "in 5 day(s)" in expiry.message
    assert expiry.evidence["host"] == xmpp.host and expiry.hint == RULES["DRIFT-05"].hint
    assert expiry.location is not None and expiry.location.file == f"inventory/{xmpp.source}"
    service = by_key[("DRIFT-06", f"tenant:{xmpp.id}")]
    assert "federation port 5269" in service.message and "client port" not in service.message

    report = drift_report(plan, inventory_dir, None, findings)
    assert report.exit_code() == 2
    assert {r for r in report.rules} >= {"DRIFT-04", "DRIFT-05", "DRIFT-06", "DRIFT-07", "DRIFT-08"}
    sarif = to_sarif(report)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"DRIFT-05", "DRIFT-06", "DRIFT-07"}


def test_healthy_probes_and_unprobed_tenants_do_not_fail(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    matrix, xmpp = _tenant(plan, "matrix-dedicated"), _tenant(plan, "xmpp")
    findings = findings_from_probes(plan, inventory_dir, [_health(matrix, HEALTHY_MATRIX)],
                                    [(xmpp, "the deploy does not converge xmpp (RELAIS_DEPLOY_STEPS)")])
    note = next(f for f in findings if f.subject == f"tenant:{xmpp.id}")
    assert note.severity is Severity.INFO and "not probed" in note.message
    assert drift_report(plan, inventory_dir, None, findings).exit_code() == 0


def test_registration_open_as_declared_is_not_drift(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    matrix = _tenant(plan, "matrix-dedicated")
    declared_open = matrix.model_copy(update={"messaging": matrix.messaging.model_copy(
        update={"registration_open": True})})
    plan = plan.model_copy(update={"tenants": [declared_open if t.id == matrix.id else t for t in plan.tenants]})
    checks = [*HEALTHY_MATRIX[:3], Check("registration closed", False, "HTTP 401: registration open", "registration")]
    [registration] = [f for f in findings_from_probes(plan, inventory_dir, [_health(declared_open, checks)])
                      if f.rule == "DRIFT-07"]
    assert registration.status is Status.PASSED and "as the inventory declares" in registration.message


def test_only_active_tenants_served_by_the_deployed_concerns_are_probed(inventory_dir: Path,
                                                                       ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    probed = probed_tenants(plan)
    assert probed and all(t.status == "active" and t.host for t in probed)
    assert {t.id for t in plan.tenants if t.status != "active"}.isdisjoint({t.id for t in probed})
    host = probed[0].host
    assert {t.host for t in probed_tenants(plan, [host or ""])} == {host}
    matrix, xmpp = _tenant(plan, "matrix-shared"), _tenant(plan, "xmpp")
    assert missing_concerns(matrix, ("base", "tls")) == ["matrix", "proxy"]
    assert missing_concerns(xmpp, ("base", "tls", "xmpp")) == []
    assert missing_concerns(xmpp, ALL) == [] and missing_concerns(matrix, ALL) == []


def test_drift_without_deploy_reports_probes_only(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    report = drift_report(plan, inventory_dir, None)
    assert report.findings == [] and report.exit_code() == 0


def test_drift_reports_validate_against_the_junit_and_sarif_schemas(inventory_dir: Path, ref: Referential,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no pulumi CLI
    plan = plan_directory(inventory_dir, referential=ref).plan
    matrix, xmpp = _tenant(plan, "matrix-dedicated"), _tenant(plan, "xmpp")
    probes = findings_from_probes(
        plan, inventory_dir,
        [_health(matrix, [*HEALTHY_MATRIX[:4], Check("admin API closed", False, "HTTP 200", "admin")])],
        [(xmpp, "the deploy does not converge xmpp")])
    report = drift_report(plan, inventory_dir, _report(), probes)
    schemas = FIXTURES / "schemas"
    xmlschema.XMLSchema(str(schemas / "junit-10.xsd")).validate(to_junit(report))
    jsonschema.validate(to_sarif(report), json.loads((schemas / "sarif-2.1.0.json").read_text()),
                        cls=jsonschema.Draft4Validator)
    assert {f.rule for f in report.findings if f.status is Status.FAILED and f.severity is Severity.ERROR} == {
        "DRIFT-01", "DRIFT-02", "DRIFT-08"}
