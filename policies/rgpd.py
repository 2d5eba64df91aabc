"""RGPD and CNIL rules: what the regulation asks of a controller (the commune) and of its
processor (the syndicate), as far as the Plan can show it."""

from __future__ import annotations

from collections.abc import Iterator

from policies.engine import Context, Judge, Outcome, rule, tenant_rule
from relais.findings import Severity
from relais.model import EMAIL_RE, EU_EEA_COUNTRIES
from relais.plan import Plan, PlannedBackup, PlannedTenant

FAMILY = "rgpd"
LOG_MIN_DAYS = 180
LOG_MAX_DAYS = 365


DAYS_PER_WEEK = 7
DAYS_PER_MONTH = 30
"""The month of the declarations (`6m` is 180 days, relais.units), so that `messages: 6m` and
`keep: {monthly: 6}` compare equal. Borg counts calendar months and does not count an archive
twice across rules, so its oldest archive may reach a few days further; the rule compares
declarations, the audit will compare the real archives."""


def backup_window_days(backup: PlannedBackup) -> int:
    """How far back the oldest kept backup reaches, in days (borg prune keep policy)."""
    return max(backup.keep_daily, backup.keep_weekly * DAYS_PER_WEEK, backup.keep_monthly * DAYS_PER_MONTH)


@tenant_rule("RGPD-01", title="Every commune declares its data protection officer",
             source="RGPD art. 37 (désignation obligatoire du DPO pour une autorité publique) "
                    "and art. 30(1)(a)",
             severity=Severity.ERROR, family=FAMILY, field=("contacts", "dpo"),
             hint="set contacts.dpo {name, email} in the commune file (often the centre de gestion's DPO)")
def dpo_declared(plan: Plan, ctx: Context) -> Judge:
    """A commune is a public authority: it must designate a DPO, whose contact goes into the
    register of processing and into the information given to agents."""
    def judge(t: PlannedTenant) -> Outcome:
        if not t.dpo_name.strip() or not EMAIL_RE.match(t.dpo_email or ""):
            return Outcome(t.id, f"{t.commune}: no usable DPO contact",
                           {"dpo_name": t.dpo_name, "dpo_email": t.dpo_email})
        return Outcome(t.id)
    return judge


@tenant_rule("RGPD-02", title="Message retention is declared",
             source="RGPD art. 5(1)(e) (limitation de la conservation) and art. 30(1)(f)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "retention"),
             hint="declare tenant.retention.messages in the commune file, or defaults.retention.messages "
                  "in hosting.yaml (e.g. 1y)")
def message_retention_declared(plan: Plan, ctx: Context) -> Judge:
    """Messages are deleted after a declared period; a retention of zero or less means none
    was set and the homeserver would keep messages forever."""
    def judge(t: PlannedTenant) -> Outcome:
        days = t.retention.messages_days
        if days <= 0:
            return Outcome(t.id, f"{t.commune}: no message retention ({days} days)", {"messages_days": days})
        return Outcome(t.id, evidence={"messages_days": days})
    return judge


@tenant_rule("CNIL-01", title="Logs are kept 6 to 12 months, or the difference is justified",
             source="CNIL, recommandation relative aux mesures de journalisation (délibération n° 2021-122)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "retention"),
             hint="set tenant.retention.logs between 180d and 365d, or state why in "
                  "tenant.retention.logs_justification")
def log_retention(plan: Plan, ctx: Context) -> Judge:
    """The CNIL recommends keeping access logs between six months and one year; a shorter or
    longer period needs a documented justification (a legal obligation, a specific risk)."""
    def judge(t: PlannedTenant) -> Outcome:
        r = t.retention
        evidence = {"logs_days": r.logs_days, "logs_justification": r.logs_justification}
        if LOG_MIN_DAYS <= r.logs_days <= LOG_MAX_DAYS or r.logs_justification:
            return Outcome(t.id, evidence=evidence)
        side = "shorter" if r.logs_days < LOG_MIN_DAYS else "longer"
        return Outcome(t.id, f"{t.commune}: logs kept {r.logs_days} days, {side} than the CNIL's "
                             f"{LOG_MIN_DAYS}–{LOG_MAX_DAYS} days, without justification", evidence)
    return judge


@tenant_rule("RGPD-03", title="Backups are kept no longer than the messages they contain",
             source="RGPD art. 5(1)(e) (limitation de la conservation)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "retention"),
             hint="shorten defaults.backup.keep (daily/weekly/monthly) in hosting.yaml, or lengthen the "
                  "tenant's retention.messages if that is the commune's decision")
def backup_retention(plan: Plan, ctx: Context) -> Judge:
    """A message deleted at the end of its retention survives in backups until the oldest
    backup is pruned: the backup window (max of keep_daily days, keep_weekly weeks,
    keep_monthly months) must be declared and must not exceed the message retention."""
    def judge(t: PlannedTenant) -> Outcome:
        b = t.backup
        window = backup_window_days(b)
        evidence = {"backup_window_days": window, "messages_days": t.retention.messages_days,
                    "keep": {"daily": b.keep_daily, "weekly": b.keep_weekly, "monthly": b.keep_monthly}}
        if window <= 0:
            return Outcome(t.id, f"{t.commune}: no backup retention declared (every keep_* is 0)", evidence)
        if window > t.retention.messages_days:
            return Outcome(t.id, f"{t.commune}: backups reach back {window} days, beyond the "
                                 f"{t.retention.messages_days}-day message retention", evidence)
        return Outcome(t.id, evidence=evidence)
    return judge


@tenant_rule("RGPD-04", title="Backups are encrypted",
             source="RGPD art. 32 (sécurité du traitement: chiffrement)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant",),
             hint="set defaults.backup.encryption to repokey-blake2 (or keyfile-blake2) in hosting.yaml")
def backup_encrypted(plan: Plan, ctx: Context) -> Judge:
    """Backups leave the tenant's host for another site; borg encrypts them client-side so the
    backup host never sees messages in clear."""
    def judge(t: PlannedTenant) -> Outcome:
        if t.backup.encryption == "none":
            return Outcome(t.id, f"{t.commune}: backups are not encrypted", {"encryption": "none"})
        return Outcome(t.id, evidence={"encryption": t.backup.encryption})
    return judge


@rule("RGPD-05", title="Every site, host and backup target is in France or the EU/EEA",
      source="RGPD art. 44–49 (transferts hors de l'Union); doctrine « cloud au centre » de l'État",
      severity=Severity.ERROR, family=FAMILY, subject="host", field=("site",),
      hint="move the host to a site whose country is in the EU/EEA (sites.<name>.country in hosting.yaml)")
def hosting_in_eu(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Personal data of communes stays in the European Economic Area: every host, whether it
    runs tenants or keeps their backups, sits on a site whose country is in the EU/EEA."""
    backed_up: dict[str, list[str]] = {}
    for t in plan.tenants:
        if t.backup.target_host:
            backed_up.setdefault(t.backup.target_host, []).append(t.id)
    for h in plan.hosts:
        evidence: dict[str, object] = {"site": h.site, "country": h.country, "city": h.city}
        if h.country.upper() in EU_EEA_COUNTRIES:
            yield Outcome(h.name, evidence=evidence)
        else:
            evidence.update(tenants=h.tenants, backups_of=backed_up.get(h.name, []))
            country = h.country or "an unknown country"
            yield Outcome(h.name, f"host {h.name} is on site {h.site} in {country}, outside the EU/EEA",
                          evidence)


@tenant_rule("RGPD-06", title="The register of processing states the deployed retention",
             source="RGPD art. 30(1)(f) (registre des activités de traitement: délais d'effacement)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "retention"),
             hint="update the register after changing a retention: "
                  "`relais register --all --output inventory/registre`, then commit it")
def register_matches(plan: Plan, ctx: Context) -> Judge | None:
    """When the inventory keeps the register (inventory/registre/<insee>-*.json), the
    retention it states for messages, logs and backups must be the one the Plan deploys, so
    a retention changed without updating the register fails in CI."""
    registers = ctx.registers
    if registers is None:
        return None

    def judge(t: PlannedTenant) -> Outcome:
        entry = registers.get(t.id)
        if entry is None:
            return Outcome(t.id, f"{t.commune}: no entry in the register of processing",
                           {"expected": f"registre/{t.id}-*.json"}, severity=Severity.WARNING)
        planned = {"messages_days": t.retention.messages_days, "logs_days": t.retention.logs_days,
                   "backups_days": backup_window_days(t.backup)}
        declared = {"messages_days": entry.messages_days, "logs_days": entry.logs_days,
                    "backups_days": entry.backups_days}
        differ = sorted(k for k in planned if planned[k] != declared[k])
        if differ:
            return Outcome(t.id, f"{t.commune}: the register ({entry.file}) states "
                                 + ", ".join(f"{k} {declared[k]}" for k in differ)
                                 + "; the plan deploys " + ", ".join(f"{k} {planned[k]}" for k in differ),
                           {"register": entry.file, "planned": planned, "declared": declared})
        return Outcome(t.id, evidence={"register": entry.file})
    return judge


RULES = (dpo_declared, message_retention_declared, log_retention, backup_retention, backup_encrypted,
         hosting_in_eu, register_matches)
