"""Every Plan-level rule of Relais, in report order, and the one call that checks a Plan."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from policies import anssi, backups, lockout, messaging, operations, rgpd
from policies.engine import WAIVER_EXPIRED, WAIVER_UNKNOWN, Context, RegisterRetention, Rule, evaluate, select
from policies.registre import REGISTER_DIR, load_retentions
from relais.findings import Report
from relais.plan import Plan

if TYPE_CHECKING:
    from relais.forked import Background

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


BACKGROUND_MIN_REGISTERS = 2000
"""From this many register files on, `read_registers` reads them in a forked child."""


def read_registers(inventory: Path) -> Background[Mapping[str, RegisterRetention] | None]:
    """Start reading `inventory/registre/` for RGPD-06: for a region's tens of thousands of
    entries (about a second for all of France), in a forked child at a low priority, which
    takes the time the command leaves idle (the second core while it plans, mostly);
    `check_plan(..., registers=read.result)` takes the result. Start it before loading: a
    child forked from a small process costs nothing, one forked after loading made the
    parent copy half its memory as it went on (reference counts written to shared pages)."""
    from relais.forked import Background
    from relais.inventory import workers

    folder = inventory / REGISTER_DIR
    try:  # counted up to the threshold only: the child lists them all again
        with os.scandir(folder) as entries:
            entries_json = (e for e in entries if e.name.endswith(".json"))
            many = len(list(islice(entries_json, BACKGROUND_MIN_REGISTERS))) >= BACKGROUND_MIN_REGISTERS
    except OSError:  # no folder (no register: nothing to compare), or unreadable (said later)
        many = False
    return Background(lambda: load_retentions(folder), fork=many and workers() >= 2, nice=19)


def __getattr__(name: str) -> frozenset[str]:
    if name == "KNOWN_RULE_IDS":  # `from policies.catalog import KNOWN_RULE_IDS` still works
        return known_rule_ids()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_plan(plan: Plan, *, today: date, inventory: Path | None = None,
               only: Iterable[str] = (), tool: str = "relais check",
               registers: Callable[[], Mapping[str, RegisterRetention] | None] | None = None) -> Report:
    """Evaluate the Plan-level rules (optionally those matching `only`) on `plan`.

    `inventory` is where the plan came from: findings are located in its files, and its
    ``registre/`` folder, when present, is compared with the Plan (RGPD-06). `registers`
    gives that folder's retentions instead of reading them now (see `read_registers`).
    """
    rules = select(RULES, only)
    if registers is not None:
        retentions = registers()
    else:
        retentions = load_retentions(inventory / REGISTER_DIR) if inventory is not None else None
    context = Context(today=today, registers=retentions)
    waivers_of = {r.id for r in rules} if rules != list(RULES) else None
    # Waiver ids are checked only when there are waivers.
    known = known_rule_ids() if plan.waivers else None
    return evaluate(plan, rules, context, inventory=inventory, tool=tool, all_rule_ids=known,
                    waivers_of=waivers_of)
