"""The policy engine: rules are small pure functions over the Plan; this module runs them,
applies the inventory's waivers and locates findings in the inventory files.

A rule yields one :class:`Outcome` per subject it looked at (a host name, a tenant id, or
``plan``): ``message`` is None when the subject passes. The engine turns outcomes into
:class:`relais.findings.Finding`s, so every report format (and later audit and drift)
shares one shape.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import compress, count, repeat
from operator import is_not, itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from relais.errors import RelaisError
from relais.findings import EMPTY, Finding, Location, Report, RuleInfo, Severity, Status, WaiverNote
from relais.plan import Plan, PlannedTenant

SubjectKind = Literal["tenant", "host", "plan", "waiver"]

LIVE_STATUSES = frozenset({"approved", "active", "suspended"})
"""Tenants that hold (or are about to hold) personal data: the policies apply to them."""


class Outcome(NamedTuple):
    """What a rule found for one subject: passed when `message` is None. `severity`, when
    given, overrides the rule's (e.g. a missing register entry is only a warning)."""

    subject: str
    message: str | None = None
    evidence: Mapping[str, Any] = EMPTY
    severity: Severity | None = None


@dataclass(frozen=True)
class RegisterRetention:
    """What the committed register of processing says of one tenant's retention."""

    file: str
    messages_days: int | None
    logs_days: int | None
    backups_days: int | None


@dataclass(frozen=True)
class Context:
    """Everything a rule may read besides the Plan; all of it given, nothing fetched."""

    today: date
    registers: Mapping[str, RegisterRetention] | None = None
    """Register entries by INSEE code; None when the inventory has no register folder."""


Check = Callable[[Plan, Context], Iterable[Outcome]]
Judge = Callable[[PlannedTenant], "Outcome | None"]
"""A tenant rule's verdict on one live tenant: an outcome, or None when it does not apply."""
Prepare = Callable[[Plan, Context], "Judge | None"]
"""What a tenant rule computes once per Plan; returns its judge (None: the rule has nothing to check)."""


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str
    severity: Severity
    hint: str
    family: str
    subject: SubjectKind
    check: Check
    field: tuple[str | int, ...] = ()
    """Where in the subject's file the finding points (commune file path, or under hosts.<name>)."""
    description: str = ""
    prepare: Prepare | None = None
    """Tenant rules declared with `tenant_rule`: the engine judges every live tenant with all of
    them in one pass (`check` runs this rule alone, for tests and tools)."""

    @property
    def info(self) -> RuleInfo:
        return RuleInfo(id=self.id, title=self.title, source=self.source, severity=self.severity,
                        hint=self.hint, family=self.family, description=self.description)


def rule(id: str, *, title: str, source: str, severity: Severity, hint: str, family: str,
         subject: SubjectKind, field: tuple[str | int, ...] = ()) -> Callable[[Check], Rule]:
    """Declare a rule; the function's docstring is its description (SARIF help text)."""

    def wrap(check: Check) -> Rule:
        doc = " ".join((check.__doc__ or "").split())
        return Rule(id=id, title=title, source=source, severity=severity, hint=hint, family=family,
                    subject=subject, check=check, field=field, description=doc)

    return wrap


def tenant_rule(id: str, *, title: str, source: str, severity: Severity, hint: str, family: str,
                field: tuple[str | int, ...] = ()) -> Callable[[Prepare], Rule]:
    """Declare a rule that judges each live tenant on its own (at most one outcome per tenant,
    in the order of `live_tenants`). The decorated function runs once per Plan and returns the
    judge of one tenant. The engine judges each tenant with every such rule in turn, one pass
    over the tenants instead of one per rule: a tenant's objects are read while they are still
    in the processor's caches (for all of France, a dozen passes over 35,000 tenants scattered
    in a gigabyte of memory cost more than the judging itself)."""

    def wrap(prepare: Prepare) -> Rule:
        def check(plan: Plan, context: Context) -> Iterator[Outcome]:
            judge = prepare(plan, context)
            if judge is None:
                return
            for t in live_tenants(plan):
                outcome = judge(t)
                if outcome is not None:
                    yield outcome

        doc = " ".join((prepare.__doc__ or "").split())
        return Rule(id=id, title=title, source=source, severity=severity, hint=hint, family=family,
                    subject="tenant", check=check, field=field, description=doc, prepare=prepare)

    return wrap


_live: list[Any] = [None, []]


def live_tenants(plan: Plan) -> list[PlannedTenant]:
    """Tenants the policies apply to; computed once per Plan (a dozen rules ask)."""
    if _live[0] is not plan.tenants:
        _live[:] = [plan.tenants, [t for t in plan.tenants if t.status in LIVE_STATUSES]]
    result: list[PlannedTenant] = _live[1]
    return result


# --------------------------------------------------------------------------- waivers

WAIVER_EXPIRED = RuleInfo(
    id="WAIVER-01", title="Waivers are current",
    source="Relais: waivers are time-boxed exceptions (hosting.yaml `waivers:`)",
    severity=Severity.WARNING, family="waivers",
    hint="fix the finding it covered and delete the waiver, or renew it with a new `expires` and reason",
    description="An expired waiver no longer applies: the finding it covered is reported again, "
                "and the stale waiver itself is reported so that it is renewed or removed.")
WAIVER_UNKNOWN = RuleInfo(
    id="WAIVER-02", title="Waivers name a known rule",
    source="Relais: waivers are time-boxed exceptions (hosting.yaml `waivers:`)",
    severity=Severity.WARNING, family="waivers",
    hint="correct the rule id (see `relais check --list-rules`) or delete the waiver",
    description="A waiver for a rule id that no check knows waives nothing; it is usually a typo.")


# --------------------------------------------------------------------------- locations


class Locator:
    """Finds the file and line a finding points at; reads files only for findings that need it."""

    def __init__(self, inventory: Path | None) -> None:
        self.inventory = inventory
        self._lines: dict[str, dict[tuple[str | int, ...], int] | None] = {}

    @property
    def hosting_file(self) -> str:
        name = self.inventory.name if self.inventory is not None else "inventory"
        return f"{name}/hosting.yaml"

    def _line(self, display: str, loc: tuple[str | int, ...]) -> int | None:
        if self.inventory is None:
            return None
        if display not in self._lines:
            from relais.yamlsafe import YamlFileError, read_yaml

            try:
                _, lines = read_yaml(self.inventory.parent / display, display)
                self._lines[display] = lines
            except YamlFileError:
                self._lines[display] = None
        found = self._lines[display]
        if found is None:
            return None
        from relais.yamlsafe import line_of

        return line_of(found, loc)

    def tenant(self, source: str, loc: tuple[str | int, ...]) -> Location:
        return Location(source, self._line(source, loc))

    def host(self, name: str, loc: tuple[str | int, ...]) -> Location:
        return Location(self.hosting_file, self._line(self.hosting_file, ("hosts", name, *loc)))

    def waiver(self, index: int) -> Location:
        return Location(self.hosting_file, self._line(self.hosting_file, ("waivers", index)))

    def plan(self, loc: tuple[str | int, ...]) -> Location:
        return Location(self.hosting_file, self._line(self.hosting_file, loc) if loc else None)


# --------------------------------------------------------------------------- evaluation


def select(rules: Iterable[Rule], patterns: Iterable[str]) -> list[Rule]:
    """Rules whose id matches one of `patterns` (exact ids or shell patterns such as RGPD-*)."""
    rules = list(rules)
    wanted = [p.strip() for p in patterns if p.strip()]
    if not wanted:
        return rules
    chosen = [r for r in rules if any(fnmatch.fnmatchcase(r.id, p.upper()) for p in wanted)]
    unknown = [p for p in wanted if not any(fnmatch.fnmatchcase(r.id, p.upper()) for r in rules)]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0].upper(), [r.id for r in rules], n=1)
        raise RelaisError(
            f"no rule matches {', '.join(repr(u) for u in unknown)}",
            hint=(f"did you mean {close[0]}? " if close else "")
            + "`relais check --list-rules` lists every rule; patterns such as 'RGPD-*' work too",
        )
    return chosen


def evaluate(plan: Plan, rules: Iterable[Rule], context: Context, *, inventory: Path | None = None,
             tool: str = "relais check", all_rule_ids: Iterable[str] | None = None,
             waivers_of: Collection[str] | None = None) -> Report:
    """Run `rules` on `plan`, apply the plan's waivers as of `context.today`, locate findings.

    `all_rule_ids` are the ids waivers may name (default: the rules run); a waiver naming
    none of them is reported, and so is an expired one. `waivers_of` limits that report to
    waivers of these rules (a run filtered with --rule); None reports on every waiver.
    """
    from relais.inventory import gc_paused

    # A region makes hundreds of thousands of findings and no reference cycles: the cycle
    # collector would walk them again and again (0.6 s of 1.7 s for all of France).
    with gc_paused():
        return _evaluate(plan, rules, context, inventory=inventory, tool=tool, all_rule_ids=all_rule_ids,
                         waivers_of=waivers_of)


_SUBJECT, _MESSAGE, _EVIDENCE = itemgetter(0), itemgetter(1), itemgetter(2)


def _evaluate(plan: Plan, rules: Iterable[Rule], context: Context, *, inventory: Path | None,
              tool: str, all_rule_ids: Iterable[str] | None, waivers_of: Collection[str] | None) -> Report:
    rules = list(rules)
    locator = Locator(inventory)
    today = context.today.isoformat()
    tenants: dict[str, PlannedTenant] = {}  # by id, built for the first finding to locate

    active: dict[tuple[str, str], WaiverNote] = {}
    for w in plan.waivers:
        # ISO dates compare as text; a waiver applies through its expiry day. A subject's own
        # waiver is looked up before a '*' one for the same rule.
        if w.expires >= today:
            active.setdefault((w.rule, w.subject), WaiverNote(reason=w.reason, expires=w.expires))

    judged = _judge_tenants(plan, context, [r for r in rules if r.prepare is not None])

    findings: list[Finding] = []
    kept: list[list[Outcome]] = []
    passed, failed, waived = Status.PASSED, Status.FAILED, Status.WAIVED
    new = tuple.__new__
    for r in rules:
        rid, severity, hint = r.id, r.severity, r.hint
        outcomes = judged[rid] if rid in judged else list(r.check(plan, context))
        kept.append(outcomes)
        n = len(outcomes)
        start = len(findings)
        # Every outcome as a pass first, built by C code (map/zip/repeat: no Python frame per
        # finding; nearly all of a region's outcomes pass) ...
        findings.extend(map(new, repeat(Finding, n), zip(
            repeat(rid, n), map(_SUBJECT, outcomes), repeat(severity, n), repeat(passed, n), repeat("ok", n),
            map(_EVIDENCE, outcomes), repeat("", n), repeat(None, n), repeat(None, n), strict=True)))
        # ... then the few that did not pass, in place, waived or located.
        for i in compress(count(), map(is_not, map(_MESSAGE, outcomes), repeat(None))):
            outcome = outcomes[i]
            if not tenants:
                tenants.update((t.id, t) for t in plan.tenants)
            note = active.get((rid, outcome.subject)) or active.get((rid, "*"))
            location = _locate(locator, r, outcome.subject, tenants)
            findings[start + i] = Finding(rid, outcome.subject, outcome.severity or severity,
                                          waived if note else failed, cast(str, outcome.message),
                                          outcome.evidence, hint,
                                          location, note)

    known = set(all_rule_ids) if all_rule_ids is not None else {r.id for r in rules}
    known |= {WAIVER_EXPIRED.id, WAIVER_UNKNOWN.id}
    waivers_checked = False
    for index, w in enumerate(plan.waivers):
        if waivers_of is not None and w.rule not in waivers_of:
            continue
        waivers_checked = True
        subject = f"{w.rule}@{w.subject}"
        if w.rule not in known:
            findings.append(Finding(
                WAIVER_UNKNOWN.id, subject, WAIVER_UNKNOWN.severity, failed,
                f"waiver names rule {w.rule}, which no check knows",
                {"rule": w.rule, "subject": w.subject, "expires": w.expires}, WAIVER_UNKNOWN.hint,
                locator.waiver(index)))
        elif w.expires < today:
            findings.append(Finding(
                WAIVER_EXPIRED.id, subject, WAIVER_EXPIRED.severity, failed,
                f"waiver of {w.rule} for {w.subject} expired on {w.expires}; it no longer applies",
                {"rule": w.rule, "subject": w.subject, "expires": w.expires, "reason": w.reason,
                 "today": today}, WAIVER_EXPIRED.hint, locator.waiver(index)))
        else:
            findings.append(Finding(WAIVER_EXPIRED.id, subject, WAIVER_EXPIRED.severity, passed, "ok",
                                    {"expires": w.expires}))

    infos = {r.id: r.info for r in rules}
    if waivers_checked:
        infos[WAIVER_EXPIRED.id] = WAIVER_EXPIRED
        infos[WAIVER_UNKNOWN.id] = WAIVER_UNKNOWN
    report = Report(tool=tool, rules=infos, findings=findings, today=today,
                    inventory=str(inventory) if inventory is not None else None)
    # The outcomes stay with the report: freeing 420,000 of them here, one by one, took 80 ms
    # of a check of all of France, which leaves without freeing anything (`relais check`'s
    # quick exit); elsewhere they go with the report.
    report._outcomes = kept
    return report


def _judge_tenants(plan: Plan, context: Context, rules: list[Rule]) -> dict[str, list[Outcome]]:
    """The outcomes of every tenant rule, by rule id: one pass over the live tenants."""
    verdicts: dict[str, list[Outcome | None]] = {}
    pairs: list[tuple[Judge, Callable[[Outcome | None], None]]] = []
    for r in rules:
        assert r.prepare is not None
        judge = r.prepare(plan, context)
        outcomes: list[Outcome | None] = []
        verdicts[r.id] = outcomes
        if judge is not None:
            pairs.append((judge, outcomes.append))
    if len(pairs) == 1:
        [(judge, append)] = pairs
        for t in live_tenants(plan):
            append(judge(t))
    else:
        for t in live_tenants(plan):
            for judge, append in pairs:
                append(judge(t))
    # filter(None, ...) drops the Nones in C (an Outcome, a non-empty tuple, is always true).
    return {rule_id: list(filter(None, found)) for rule_id, found in verdicts.items()}


def _locate(locator: Locator, r: Rule, subject: str, tenants: Mapping[str, PlannedTenant]) -> Location:
    if r.subject == "tenant" and subject in tenants:
        return locator.tenant(tenants[subject].source, r.field)
    if r.subject == "host":
        return locator.host(subject, r.field)
    return locator.plan(r.field)
