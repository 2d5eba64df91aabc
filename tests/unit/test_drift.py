"""Drift findings from a dry-run deploy and from provisioned stacks (pure parts; the lab
tests run the real thing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais.deploy.runner import DeployReport, HostReport, OperationResult
from relais.drift import drift_report
from relais.findings import Severity, Status, to_junit
from relais.planner import plan_directory
from relais.provision.outputs import ProvisionedHost, write_provisioned
from relais.referential import Referential


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
