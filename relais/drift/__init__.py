"""Drift: does what runs still match what we declare?

Three sources, one report (relais.findings): the deploys run in dry mode through
pyinfra (every operation that would change something is drift on that host),
probes of every served tenant's endpoints (registered by each flavor in relais.probes:
certificate trusted and not expiring soon, service answering, registration closed, admin
API hidden), and `pulumi preview` of configured stacks (when the pulumi CLI is installed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from relais.deploy.runner import DeployReport
from relais.findings import Finding, Location, Report, RuleInfo, Severity, Status
from relais.plan import Plan, PlannedTenant
from relais.probes import Aspect, TenantHealth
from relais.probes.tls import EXPIRY_MARGIN_DAYS

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
DRIFT_TLS = RuleInfo(
    id="DRIFT-04",
    title="Tenant certificate trusted for its domain",
    source="relais probe (TLS); ANSSI guide TLS R8",
    severity=Severity.ERROR,
    hint="redeploy the certificates and reload the service: `relais deploy --limit COMMUNE` "
         "(the chain must lead to <inventory>/pki/ca.crt or a CA of the system's trust store)",
    family="drift",
    description="Each served endpoint presents a certificate that verifies for the tenant's name.",
)
DRIFT_EXPIRY = RuleInfo(
    id="DRIFT-05",
    title=f"Tenant certificate valid for more than {EXPIRY_MARGIN_DAYS} days",
    source="relais probe (TLS)",
    severity=Severity.ERROR,
    hint="`relais deploy --limit COMMUNE` renews certificates of the syndicate's CA 30 days before "
         "they expire; a certificate of another CA must be renewed where it was issued",
    family="drift",
    description=f"No served certificate expires within {EXPIRY_MARGIN_DAYS} days.",
)
DRIFT_SERVICE = RuleInfo(
    id="DRIFT-06",
    title="Tenant service answering",
    source="relais probe",
    severity=Severity.ERROR,
    hint="look at the service on its host (`systemctl status`, the journal), then "
         "`relais deploy --limit HOST` starts what the Plan runs",
    family="drift",
    description="The homeserver or XMPP service of each served tenant answers clients and servers.",
)
DRIFT_REGISTRATION = RuleInfo(
    id="DRIFT-07",
    title="Registration still closed",
    source="relais probe; policy MSG-01",
    severity=Severity.ERROR,
    hint="someone opened registration by hand: `relais deploy --limit HOST` writes the declared "
         "configuration back (accounts come from the commune's agents list)",
    family="drift",
    description="Matrix refuses /_matrix/client/v3/register; XMPP does not offer in-band registration.",
)
DRIFT_ADMIN = RuleInfo(
    id="DRIFT-08",
    title="Admin API still hidden from the public side",
    source="relais probe; policy MSG-03",
    severity=Severity.ERROR,
    hint="the proxy must not forward /_synapse/admin: `relais deploy --limit HOST` writes its "
         "declared configuration back",
    family="drift",
    description="The homeserver's admin API is not reachable through the public proxy.",
)
RULES = {r.id: r for r in (DRIFT_OP, DRIFT_REACH, DRIFT_STACK, DRIFT_TLS, DRIFT_EXPIRY, DRIFT_SERVICE,
                           DRIFT_REGISTRATION, DRIFT_ADMIN)}
PROBE_RULES: dict[Aspect, RuleInfo] = {
    "tls": DRIFT_TLS, "expiry": DRIFT_EXPIRY, "service": DRIFT_SERVICE,
    "registration": DRIFT_REGISTRATION, "admin": DRIFT_ADMIN,
}
SERVING_CONCERNS: dict[str, tuple[str, ...]] = {
    "matrix-dedicated": ("tls", "matrix", "proxy"),
    "matrix-shared": ("tls", "matrix", "proxy"),
    "xmpp": ("tls", "xmpp"),
}
"""The deploy concerns that serve each flavor: a tenant is probed only when the deploy
converges all of them (while concerns are being integrated, RELAIS_DEPLOY_STEPS may leave
some out, and then nothing serves the tenant on purpose)."""


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


def deploy_concerns() -> tuple[str, ...]:
    """The concerns `relais deploy` converges (deploys.ORDER, after RELAIS_DEPLOY_STEPS)."""
    from relais.deploy.hosts import load_deploys

    load_deploys()  # puts the checkout's deploys/ on the import path
    import deploys

    return tuple(deploys.ORDER)


def probed_tenants(plan: Plan, hosts: Iterable[str] | None = None) -> list[PlannedTenant]:
    """Tenants that must be served: active and placed (on `hosts` when given). Suspended
    tenants are stopped on purpose; requested or offboarded ones are not served."""
    wanted = None if hosts is None else set(hosts)
    return [t for t in plan.tenants if t.status == "active" and t.host is not None
            and (wanted is None or t.host in wanted)]


def missing_concerns(tenant: PlannedTenant, concerns: Sequence[str]) -> list[str]:
    return [c for c in SERVING_CONCERNS.get(tenant.flavor, ()) if c not in concerns]


def _probe_subject(tenant: PlannedTenant) -> str:
    return f"tenant:{tenant.id}"


def findings_from_probes(plan: Plan, inventory: Path, results: Iterable[TenantHealth],
                         not_probed: Iterable[tuple[PlannedTenant, str]] = ()) -> list[Finding]:
    """One finding per tenant and aspect probed (certificate, expiry, service, registration,
    admin API); a tenant that could not be probed is a note, not drift."""
    tenants = {t.id: t for t in plan.tenants}
    findings: list[Finding] = []
    for health in results:
        tenant = tenants[health.tenant]
        location = Location(str(Path(inventory.name) / tenant.source))
        where = f"{health.commune} ({tenant.server_name}) on {health.host}"
        if health.health == "skipped":
            reason = "; ".join(c.detail for c in health.checks)
            findings.append(Finding(DRIFT_SERVICE.id, _probe_subject(tenant), Severity.INFO, Status.FAILED,
                                    f"{where}: not probed ({reason})", {"host": health.host},
                                    DRIFT_SERVICE.hint, location))
            continue
        for aspect, rule in PROBE_RULES.items():
            checks = [c for c in health.checks if c.aspect == aspect]
            if not checks:
                continue
            failed = [c for c in checks if not c.ok]
            declared_open = ((aspect == "registration" and tenant.messaging.registration_open)
                             or (aspect == "admin" and tenant.messaging.admin_api_exposed))
            evidence: dict[str, Any] = {"host": health.host, "address": health.address,
                                        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail}
                                                   for c in checks]}
            if failed and not declared_open:
                message = f"{where}: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
                status = Status.FAILED
            elif failed:
                message = f"{where}: open as the inventory declares (policy findings cover it)"
                status = Status.PASSED
            else:
                message = f"{where}: " + "; ".join(f"{c.name}: {c.detail}" for c in checks)
                status = Status.PASSED
            findings.append(Finding(rule.id, _probe_subject(tenant), rule.severity, status, message,
                                    evidence, rule.hint, location))
    for tenant, reason in not_probed:
        where = f"{tenant.commune} ({tenant.server_name}) on {tenant.host}"
        findings.append(Finding(DRIFT_SERVICE.id, _probe_subject(tenant), Severity.INFO, Status.FAILED,
                                f"{where}: not probed ({reason})",
                                {"host": tenant.host}, DRIFT_SERVICE.hint,
                                Location(str(Path(inventory.name) / tenant.source))))
    return findings


def probe_tenants(plan: Plan, inventory: Path, concerns: Sequence[str], *, hosts: Iterable[str] | None = None,
                  timeout: float = 15.0) -> list[Finding]:
    """Probe every tenant that the deploy concerns `concerns` serve (on `hosts` when given)."""
    from relais.probes import ProbeContext, health

    ctx = ProbeContext.for_inventory(plan, inventory, timeout=timeout)
    served, not_probed = [], []
    for tenant in probed_tenants(plan, hosts):
        missing = missing_concerns(tenant, concerns)
        if missing:
            not_probed.append((tenant, "the deploy does not converge " + ", ".join(missing)
                               + " (RELAIS_DEPLOY_STEPS)"))
        else:
            served.append(tenant)
    return findings_from_probes(plan, inventory, health(ctx, served), not_probed)


def drift_report(plan: Plan, inventory: Path, deploy: DeployReport | None,
                 probes: Iterable[Finding] = (), today: date | None = None) -> Report:
    """Every source in one report; `deploy` is None when the dry run was not asked for."""
    hosting = str(Path(inventory.name) / "hosting.yaml")
    findings = findings_from_deploy(deploy, hosting) if deploy is not None else []
    findings += findings_from_stacks(plan, inventory)
    findings += probes
    return Report(tool="relais drift", rules=dict(RULES), findings=findings,
                  today=(today or date.today()).isoformat(), inventory=str(inventory))
