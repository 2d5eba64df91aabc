"""Operations rules: what keeps tenants recoverable and hosts within what they can carry."""

from __future__ import annotations

from collections.abc import Iterator

from policies.engine import Context, Judge, Outcome, rule, tenant_rule
from relais.findings import Severity
from relais.plan import Plan, PlannedTenant
from relais.units import format_mib

FAMILY = "operations"
SOURCE = "Relais operations baseline"


@tenant_rule("OPS-01", title="Every tenant is backed up to another site",
             source=SOURCE + " (ANSSI, guide d'hygiène informatique: politique de sauvegarde, "
                             "copies hors site)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant",),
             hint="declare a host with role backup on another site than the tenant's host in hosting.yaml")
def backup_off_site(plan: Plan, ctx: Context) -> Judge:
    """A site lost to fire or flood must not take the backups with it: each placed tenant's
    backup target is a backup host on another site."""
    hosts = {h.name: h for h in plan.hosts}

    def judge(t: PlannedTenant) -> Outcome | None:
        if t.host is None:
            return None
        home = hosts.get(t.host)
        target = hosts.get(t.backup.target_host or "")
        if target is None:
            return Outcome(t.id, f"{t.commune}: no backup target", {"host": t.host})
        if home is not None and target.site == home.site:
            return Outcome(t.id, f"{t.commune}: backed up on {target.name}, on the same site ({home.site}) "
                                 f"as its host {home.name}", {"host": home.name, "target": target.name,
                                                              "site": home.site})
        return Outcome(t.id, evidence={"target": target.name, "site": target.site})
    return judge


@rule("OPS-02", title="No host is over capacity",
      source=SOURCE, severity=Severity.ERROR, family=FAMILY, subject="host", field=("capacity",),
      hint="raise the host's capacity in hosting.yaml, or move tenants to another host on purpose")
def host_capacity(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """What the Plan puts on a host (reserved, tenants, backups) fits its declared memory and disk."""
    for h in plan.hosts:
        over = {}
        if h.used.ram_mib > h.capacity.ram_mib:
            over["memory"] = f"{format_mib(h.used.ram_mib)} of {format_mib(h.capacity.ram_mib)}"
        if h.used.disk_mib > h.capacity.disk_mib:
            over["disk"] = f"{format_mib(h.used.disk_mib)} of {format_mib(h.capacity.disk_mib)}"
        evidence = {"used": h.used.model_dump(), "capacity": h.capacity.model_dump()}
        if over:
            yield Outcome(h.name, f"host {h.name} is over capacity: "
                                  + ", ".join(f"{k} {v}" for k, v in over.items()), evidence)
        else:
            yield Outcome(h.name, evidence=evidence)


@tenant_rule("OPS-03", title="Every tenant that holds capacity is placed",
             source=SOURCE, severity=Severity.ERROR, family=FAMILY, field=("tenant",),
             hint="add capacity (a host or a larger one) in hosting.yaml, then `relais plan`")
def tenants_placed(plan: Plan, ctx: Context) -> Judge:
    """Approved, active and suspended tenants have a host; one that does not fit is a finding."""
    unplaced = {u.tenant: u for u in plan.unplaced}

    def judge(t: PlannedTenant) -> Outcome:
        u = unplaced.get(t.id)
        if u is not None:
            return Outcome(t.id, f"{t.commune}: not placed: {u.reason}",
                           {"missing_ram": format_mib(u.missing_ram_mib),
                            "missing_disk": format_mib(u.missing_disk_mib)})
        if t.host is None:
            return Outcome(t.id, f"{t.commune}: not placed", {"status": t.status})
        return Outcome(t.id, evidence={"host": t.host})
    return judge


RULES = (backup_off_site, host_capacity, tenants_placed)
