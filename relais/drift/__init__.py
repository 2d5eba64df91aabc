"""Drift: does what runs still match what we declare?

Three sources, one report (relais.findings): the deploys run in dry mode through
pyinfra (every operation that would change something is drift on that host),
probes of every tenant's endpoints (registered by each flavor in relais.probes,
when present), and `pulumi preview` of configured stacks (when the pulumi CLI
is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

from relais.deploy.runner import DeployReport
from relais.findings import Finding, Location, Report, RuleInfo, Severity, Status
from relais.plan import Plan

DRIFT_OP = RuleInfo(
    id="DRIFT-01",
    title="Host configuration matches the Plan",
    source="relais deploy --dry",
    severity=Severity.ERROR,
    hint="review the change, then run `relais deploy --limit HOST` to converge (or update the inventory)",
    family="drift",
    description="Every deploy operation, run in dry mode, finds the host as the Plan wants it.",
)
DRIFT_REACH = RuleInfo(
    id="DRIFT-02",
    title="Host reachable for comparison",
    source="relais deploy --dry",
    severity=Severity.ERROR,
    hint="check the host is up and the controller can log in (`relais lab status`, SSH keys)",
    family="drift",
    description="The controller can reach the host to compare it with the Plan.",
)
DRIFT_STACK = RuleInfo(
    id="DRIFT-03",
    title="Provisioned infrastructure matches the Plan",
    source="pulumi preview",
    severity=Severity.ERROR,
    hint="review `relais provision preview --stack NAME`, then `relais provision up --stack NAME`",
    family="drift",
    description="Each provisioned stack's preview shows no change to make.",
)
RULES = {r.id: r for r in (DRIFT_OP, DRIFT_REACH, DRIFT_STACK)}

ProbeSource = Callable[[Plan], Iterable[tuple[RuleInfo, Finding]]]


def findings_from_deploy(report: DeployReport, hosting_file: str) -> list[Finding]:
    findings: list[Finding] = []
    for host in report.hosts:
        subject = f"host:{host.host}"
        location = Location(hosting_file)
        if host.error:
            findings.append(Finding(DRIFT_REACH.id, subject, DRIFT_REACH.severity, Status.FAILED,
                                    host.error, {}, DRIFT_REACH.hint, location))
            continue
        findings.append(Finding(DRIFT_REACH.id, subject, DRIFT_REACH.severity, Status.PASSED,
                                f"compared as {host.user}", {}, DRIFT_REACH.hint, location))
        drifted = [op.name for op in host.operations if op.changed]
        if drifted:
            findings.append(Finding(
                DRIFT_OP.id, subject, DRIFT_OP.severity, Status.FAILED,
                f"{len(drifted)} operation(s) would change: " + "; ".join(drifted),
                {"operations": drifted}, DRIFT_OP.hint, location))
        else:
            findings.append(Finding(DRIFT_OP.id, subject, DRIFT_OP.severity, Status.PASSED,
                                    f"{len(host.operations)} operations, none would change",
                                    {}, DRIFT_OP.hint, location))
    return findings


def findings_from_stacks(plan: Plan, inventory: Path) -> list[Finding]:
    """`pulumi preview` of every stack that was provisioned (inventory/provisioned/<stack>.yaml)."""
    from relais.provision import default_state_dir, stack_options
    from relais.provision.automation import run_operation
    from relais.provision.errors import ProvisionError, PulumiMissing
    from relais.provision.outputs import PROVISIONED_DIR

    findings: list[Finding] = []
    for path in sorted((inventory / PROVISIONED_DIR).glob("*.yaml")):
        stack = path.stem
        subject = f"stack:{stack}"
        location = Location(str(Path(inventory.name) / PROVISIONED_DIR / path.name))
        try:
            run = run_operation(plan, stack_options(stack), "preview", inventory=inventory,
                                state_dir=default_state_dir())
        except PulumiMissing as error:
            findings.append(Finding(DRIFT_STACK.id, subject, Severity.INFO, Status.FAILED,
                                    f"not compared: {error.message}", {}, error.hint or "", location))
            continue
        except ProvisionError as error:
            findings.append(Finding(DRIFT_STACK.id, subject, DRIFT_STACK.severity, Status.FAILED,
                                    f"preview failed: {error.message}", {}, error.hint or "", location))
            continue
        changes = {k: v for k, v in run.summary.items() if k != "same" and v}
        status = Status.FAILED if changes else Status.PASSED
        message = (f"preview would change: {changes}" if changes else "preview shows no change")
        findings.append(Finding(DRIFT_STACK.id, subject, DRIFT_STACK.severity, status, message,
                                {"summary": dict(run.summary)}, DRIFT_STACK.hint, location))
    return findings


def drift_report(plan: Plan, inventory: Path, deploy: DeployReport,
                 probes: Iterable[tuple[RuleInfo, Finding]] = (), today: date | None = None) -> Report:
    hosting = str(Path(inventory.name) / "hosting.yaml")
    findings = findings_from_deploy(deploy, hosting) + findings_from_stacks(plan, inventory)
    rules = dict(RULES)
    for rule, finding in probes:
        rules[rule.id] = rule
        findings.append(finding)
    return Report(tool="relais drift", rules=rules, findings=findings,
                  today=(today or date.today()).isoformat(), inventory=str(inventory))
