"""Backup rules: what the Plan declares (`relais check`), and what the hosts recorded
(`relais backup list --check`, later `relais audit`).

`relais check` is pure: it can only check declarations (BACKUP-01; off-site is OPS-01,
encryption RGPD-04, retention within the messages' RGPD-03). Whether a backup actually
succeeded recently, on the declared host, with the declared retention, is live state: the
agent's status records on each host, read over SSH, checked by :func:`live_report`
(BACKUP-02, BACKUP-03) — the same records the monitoring metrics come from.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from policies.engine import Context, Judge, Outcome, tenant_rule
from relais.findings import Finding, Report, RuleInfo, Severity, Status
from relais.plan import Plan, PlannedTenant
from relais.planner import BACKUP_ROOT

FAMILY = "backups"
SOURCE = "Relais backups (ANSSI, guide d'hygiène informatique, mesure 37: sauvegardes; Synapse: backups)"
MAX_AGE_HOURS = 26.0
"""A daily backup plus slack: the monitoring alert's default threshold (relais/monitoring/settings)."""
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@tenant_rule("BACKUP-01", title="Backups are declared completely: schedule, retention, repository",
             source=SOURCE, severity=Severity.ERROR, family=FAMILY, field=("tenant",),
             hint="set defaults.backup (time HH:MM, keep daily ≥ 1) in hosting.yaml and give the backup host "
                  "the role backup")
def backup_declared(plan: Plan, ctx: Context) -> Judge:
    """Each placed tenant has a daily schedule (HH:MM), keeps at least its last daily backup,
    and its repository is `/srv/borg/<id in lower case>` on a host with the role backup."""
    hosts = {h.name: h for h in plan.hosts}

    def judge(t: PlannedTenant) -> Outcome | None:
        if t.host is None:
            return None
        b = t.backup
        problems = []
        if not _TIME.match(b.time):
            problems.append(f"time {b.time!r} is not HH:MM")
        if b.keep_daily < 1:
            problems.append("keep_daily is 0: not even the last backup is kept")
        target = hosts.get(b.target_host or "")
        if target is not None and "backup" not in target.roles:
            problems.append(f"target {target.name} has no role backup")
        expected = f"{BACKUP_ROOT}/{t.id.lower()}"  # the planner's name: Corsica's 2A/2B in lower case
        if b.repository is not None and b.repository != expected:
            problems.append(f"repository {b.repository} is not {expected}")
        evidence = {"time": b.time, "keep_daily": b.keep_daily, "target": b.target_host,
                    "repository": b.repository}
        return Outcome(t.id, f"{t.commune}: " + "; ".join(problems) if problems else None, evidence)
    return judge


RULES = (backup_declared,)

RECENT = RuleInfo(
    id="BACKUP-02", title="Every tenant has a recent successful backup on another site",
    source=SOURCE, severity=Severity.ERROR, family=FAMILY,
    hint="look at `relais backup list`, fix the cause, then `relais backup run COMMUNE`",
    description=f"The last successful borg archive of each backed-up tenant is less than {MAX_AGE_HOURS:g} h "
                "old and sits on its declared backup host, on another site than its data.")
RETENTION = RuleInfo(
    id="BACKUP-03", title="Retention applied on the host matches the declaration",
    source=SOURCE, severity=Severity.ERROR, family=FAMILY,
    hint="run `relais deploy --limit HOST` so that the host's backup job prunes as the Plan says",
    description="The keep daily/weekly/monthly the host's backup job prunes with are the Plan's.")
LIVE_RULES = {r.id: r for r in (RECENT, RETENTION)}


def live_report(plan: Plan, statuses: list[dict[str, object]], *, now: datetime,
                max_age_hours: float = MAX_AGE_HOURS) -> Report:
    """Findings from the status records `relais backup list --json` shows (one per job)."""
    findings: list[Finding] = []
    sites = {h.name: h.site for h in plan.hosts}
    for status in statuses:
        job = str(status["job"])
        subject = f"backup:{job}"
        age = status.get("age_seconds")
        host, target = str(status.get("host")), str(status.get("target"))
        evidence = {"host": host, "target": target, "age_seconds": age}
        if status.get("error") and not status.get("reachable", True):
            findings.append(Finding(RECENT.id, subject, RECENT.severity, Status.FAILED,
                                    f"{job}: cannot read its status: {status.get('error')}", evidence,
                                    RECENT.hint))
        elif not isinstance(age, int | float):
            findings.append(Finding(RECENT.id, subject, RECENT.severity, Status.FAILED,
                                    f"{job}: no successful backup recorded", evidence, RECENT.hint))
        elif age > max_age_hours * 3600:
            findings.append(Finding(RECENT.id, subject, RECENT.severity, Status.FAILED,
                                    f"{job}: last successful backup is {age / 3600:.1f} h old", evidence,
                                    RECENT.hint))
        elif sites.get(host) == sites.get(target):
            findings.append(Finding(RECENT.id, subject, RECENT.severity, Status.FAILED,
                                    f"{job}: backed up on the same site as its data", evidence, RECENT.hint))
        else:
            findings.append(Finding(RECENT.id, subject, RECENT.severity, Status.PASSED,
                                    f"{job}: last success {age / 3600:.1f} h ago", evidence, RECENT.hint))
        declared, applied = status.get("keep"), status.get("applied_keep")
        if applied is None:
            continue
        if applied != declared:
            findings.append(Finding(RETENTION.id, subject, RETENTION.severity, Status.FAILED,
                                    f"{job}: the host prunes with {applied}, the Plan declares {declared}",
                                    {"declared": declared, "applied": applied}, RETENTION.hint))
        else:
            findings.append(Finding(RETENTION.id, subject, RETENTION.severity, Status.PASSED,
                                    f"{job}: keeps {declared}", {"declared": declared}, RETENTION.hint))
    return Report(tool="relais backup list --check", rules=dict(LIVE_RULES), findings=findings,
                  today=date.fromtimestamp(now.timestamp()).isoformat())
