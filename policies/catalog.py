"""Every Plan-level rule of Relais, in report order, and the one call that checks a Plan."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

from policies import anssi, backups, lockout, messaging, operations, rgpd
from policies.engine import WAIVER_EXPIRED, WAIVER_UNKNOWN, Context, Rule, evaluate, select
from policies.registre import REGISTER_DIR, load_retentions
from relais.findings import Report
from relais.plan import Plan

RULES: tuple[Rule, ...] = (*rgpd.RULES, *anssi.RULES, *lockout.RULES, *messaging.RULES, *operations.RULES,
                           *backups.RULES)

_known: list[frozenset[str]] = []


def known_rule_ids() -> frozenset[str]:
    """Ids a waiver may name: Plan rules and the expectations `relais audit` checks on live hosts.

    Computed on first use: the audit's expectations (`relais.audit`, which brings the
    monitoring settings with it) are imported only when a waiver has to be checked.
    """
    if not _known:
        from relais.audit.checks import RULES as AUDIT_RULES

        _known.append(frozenset(
            {r.id for r in RULES}
            | {e.rule for e in anssi.SSHD} | {s.rule for s in anssi.SYSCTLS}
            | {f.rule for f in anssi.FIREWALL}
            | set(backups.LIVE_RULES)
            | set(AUDIT_RULES)
            | {WAIVER_EXPIRED.id, WAIVER_UNKNOWN.id}
        ))
    return _known[0]


def __getattr__(name: str) -> frozenset[str]:
    if name == "KNOWN_RULE_IDS":  # `from policies.catalog import KNOWN_RULE_IDS` still works
        return known_rule_ids()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_plan(plan: Plan, *, today: date, inventory: Path | None = None,
               only: Iterable[str] = (), tool: str = "relais check") -> Report:
    """Evaluate the Plan-level rules (optionally those matching `only`) on `plan`.

    `inventory` is where the plan came from: findings are located in its files, and its
    ``registre/`` folder, when present, is compared with the Plan (RGPD-06).
    """
    rules = select(RULES, only)
    registers = load_retentions(inventory / REGISTER_DIR) if inventory is not None else None
    context = Context(today=today, registers=registers)
    waivers_of = {r.id for r in rules} if rules != list(RULES) else None
    # Waiver ids are checked only when there are waivers.
    known = known_rule_ids() if plan.waivers else None
    return evaluate(plan, rules, context, inventory=inventory, tool=tool, all_rule_ids=known,
                    waivers_of=waivers_of)
