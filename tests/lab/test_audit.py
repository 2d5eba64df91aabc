"""`relais audit` on real lab hosts: every rule passes (or is waived for a documented lab
limit) after a deploy, Lynis' index of every host is reported and reaches the threshold,
and a tampered host is reported with the rule id, then repaired by the next deploy."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from relais.audit import audit_plan
from relais.audit.lynis import DEFAULT_THRESHOLD
from relais.cli import audit as audit_cli
from relais.cli.context import State, default_inventory
from relais.deploy import DeployReport, deploy_plan
from relais.findings import Status
from relais.lab import Lab
from relais.plan import Plan


def test_audit_passes_every_rule_and_lynis_reaches_the_threshold(deployed: DeployReport, plan: Plan) -> None:
    result = audit_plan(plan, inventory=default_inventory())
    assert result.unreachable == []
    failed = [(f.rule, f.subject, f.message) for f in result.report.findings if f.status is Status.FAILED]
    assert failed == []
    indexes = {h.host: h.lynis.hardening_index if h.lynis else None for h in result.hosts}
    print(f"\nLynis hardening index per host: {indexes}")
    assert set(indexes) == {h.name for h in plan.lab_hosts()}
    assert all(i is not None and i >= DEFAULT_THRESHOLD for i in indexes.values()), indexes
    # Lab limits are shown, as waived, with their reason: never hidden.
    waived = {(f.rule, f.subject) for f in result.report.findings if f.status is Status.WAIVED}
    assert ("ANSSI-BP028-R73", plan.lab_hosts()[0].name) in waived
    rules = {f.rule for f in result.report.findings}
    assert {"ANSSI-SSH-01", "ANSSI-FW-02", "ANSSI-BP028-R12", "ANSSI-BP028-R50", "LYNIS-01"} <= rules


def test_tampered_host_is_reported_then_repaired(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    host = plan.lab_hosts()[0].name
    tamper = (
        "sed -i 's/^PermitRootLogin no$/PermitRootLogin yes/' /etc/ssh/sshd_config && "
        "systemctl reload ssh && nft add rule inet relais input tcp dport 8080 accept"
    )
    done = lab.exec(host, ["sh", "-c", tamper])
    assert done.returncode == 0, done.stderr

    tampered = audit_plan(plan, limit=[host], run_lynis=False)
    assert tampered.unreachable == []
    failed = {f.rule: f for f in tampered.report.findings if f.status is Status.FAILED}
    assert {"ANSSI-SSH-01", "ANSSI-FW-02", "ANSSI-FW-03"} <= set(failed), sorted(failed)
    assert failed["ANSSI-SSH-01"].subject == host
    assert failed["ANSSI-SSH-01"].evidence["sshd -T"] == "permitrootlogin yes"
    assert "tcp/8080 from any" in failed["ANSSI-FW-02"].message
    assert tampered.report.exit_code() == 2

    repaired = deploy_plan(plan, default_inventory(), limit=[host])
    assert repaired.ok and repaired.changed > 0
    changed = {o.name for h in repaired.hosts for o in h.operations if o.changed}
    assert any("ANSSI-SSH-01..16: sshd_config" in name for name in changed), changed
    assert any("ANSSI-FW-02: load the firewall (live rules differ" in name for name in changed), changed

    after = audit_plan(plan, limit=[host], run_lynis=False)
    assert [f.rule for f in after.report.findings if f.status is Status.FAILED] == []
    assert deploy_plan(plan, default_inventory(), limit=[host]).changed == 0


def test_audit_cli_formats_and_exit_codes(deployed: DeployReport, plan: Plan) -> None:
    app = typer.Typer()
    app.command()(audit_cli.command)
    host = plan.lab_hosts()[-1].name
    runner = CliRunner()
    state = State(inventory=default_inventory())
    result = runner.invoke(app, ["--no-lynis", "--limit", host, "--format", "json"], obj=state)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["tool"] == "relais audit" and report["ok"] is True
    assert {f["subject"] for f in report["findings"]} >= {host}
    sarif = runner.invoke(app, ["--no-lynis", "--limit", host, "--format", "sarif"], obj=state)
    assert sarif.exit_code == 0
    data = json.loads(sarif.stdout[sarif.stdout.index("{") :])
    suppressed = [r for r in data["runs"][0]["results"] if r.get("suppressions")]
    assert suppressed and all(r["suppressions"][0]["status"] == "accepted" for r in suppressed)
