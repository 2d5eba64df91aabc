"""`relais audit`: read live facts from each host and report, per host and rule id, pass or
fail with the evidence; Lynis runs on each host too (hardening index and warnings).

Facts are read in one SSH round trip per host, as root (sudo through the deploy account
once root login is closed); hosts are audited in parallel. The expectations are those the
hardening deploy writes (relais/audit/baseline.py, policies/anssi.py); waivers come from
the inventory (`waivers:` in hosting.yaml) and show as waived, never hidden.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from relais.audit import checks, facts, lynis
from relais.errors import RelaisError
from relais.findings import Report
from relais.plan import Plan

__all__ = ["AuditResult", "HostAudit", "audit_plan"]

FACTS_TIMEOUT_S = 60
LYNIS_TIMEOUT_S = 600
RETRY_AFTER_S = 2


class AuditError(RelaisError):
    """A host could not be audited at all (unreachable, no sudo)."""


@dataclass
class HostAudit:
    host: str
    user: str = ""
    error: str | None = None
    lynis: lynis.LynisReport | None = None
    lynis_error: str | None = None
    checks: list[checks.Check] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "user": self.user,
            "error": self.error,
            "lynis": self.lynis.as_dict() if self.lynis else None,
            "lynis_error": self.lynis_error,
        }


@dataclass
class AuditResult:
    report: Report
    hosts: list[HostAudit]

    @property
    def unreachable(self) -> list[HostAudit]:
        return [h for h in self.hosts if h.error]


def _run_as_root(target: object, command: str, timeout: int) -> subprocess.CompletedProcess[str]:
    from relais.deploy.targets import Target

    assert isinstance(target, Target)
    wrapped = command if target.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"
    return target.run(wrapped, timeout=timeout)


def audit_host(plan: Plan, name: str, *, run_lynis: bool, threshold: int) -> HostAudit:
    from relais.deploy.targets import TargetError, resolve

    result = HostAudit(name)
    try:
        target = resolve(plan, plan.host(name))
    except TargetError:
        time.sleep(RETRY_AFTER_S)  # sshd may be reloading (a deploy, or a hand edit, just now)
        try:
            target = resolve(plan, plan.host(name))
        except TargetError as error:
            result.error = error.message
            return result
    result.user = target.user
    try:
        out = _run_as_root(target, facts.script(), FACTS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        result.error = f"reading facts took more than {FACTS_TIMEOUT_S} s"
        return result
    if out.returncode == 255 or facts.MARK not in out.stdout:
        result.error = f"cannot read facts as {target.user}: {out.stderr.strip()[:200]}"
        return result
    result.checks = checks.host_checks(facts.parse(name, out.stdout), plan)
    if run_lynis:
        try:
            ran = _run_as_root(target, lynis.COMMAND, LYNIS_TIMEOUT_S)
            if "hardening_index=" in ran.stdout:
                result.lynis = lynis.parse_report(ran.stdout)
            else:
                result.lynis_error = (ran.stdout + ran.stderr).strip()[-200:] or "no report"
        except subprocess.TimeoutExpired:
            result.lynis_error = f"Lynis took more than {LYNIS_TIMEOUT_S} s"
        result.checks += checks.lynis_checks(name, result.lynis, result.lynis_error, threshold)
    return result


def audit_plan(
    plan: Plan,
    *,
    limit: list[str] | None = None,
    run_lynis: bool = True,
    threshold: int = lynis.DEFAULT_THRESHOLD,
    today: date | None = None,
    inventory: Path | None = None,
    progress: Callable[[HostAudit], None] | None = None,
) -> AuditResult:
    """Audit the hosts selected by `limit` (all by default) in parallel."""
    from relais.deploy.targets import select_hosts

    hosts = select_hosts(plan, limit)
    when = (today or date.today()).isoformat()

    def one(name: str) -> HostAudit:
        audited = audit_host(plan, name, run_lynis=run_lynis, threshold=threshold)
        if progress is not None:
            progress(audited)
        return audited

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        audited = list(pool.map(one, [h.name for h in hosts]))
    all_checks = [c for h in audited for c in h.checks]
    findings = checks.to_findings(all_checks, plan, when)
    used = {c.rule for c in all_checks}
    rules = {rule_id: info for rule_id, info in checks.RULES.items() if rule_id in used}
    report = Report(
        tool="relais audit",
        rules=rules,
        findings=findings,
        today=when,
        inventory=str(inventory) if inventory is not None else None,
    )
    return AuditResult(report, audited)
