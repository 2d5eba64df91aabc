"""The policy engine: every rule passes on the shipped example, waivers (current, expired,
unknown, '*'), an injectable today, locations in the inventory, rule selection.

Also the helpers the other test_policies_* modules import: the example Plan (built once)
and small ways to vary it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from policies.catalog import KNOWN_RULE_IDS, RULES, check_plan
from policies.engine import Context, Outcome, Rule, select
from relais import referential
from relais.errors import RelaisError
from relais.findings import Severity, Status
from relais.plan import Plan, PlannedHost, PlannedTenant, PlannedWaiver
from relais.planner import plan_directory

from ..conftest import SHIPPED_INVENTORY

TODAY = date(2025, 6, 1)


@pytest.fixture(scope="session")
def shipped_plan(referential_cache: Path) -> Iterator[Plan]:
    """The Plan of the shipped example region (read only: nothing is written)."""
    yield plan_directory(SHIPPED_INVENTORY, referential=referential.load(), operational=False).plan


def run(rule: Rule, plan: Plan, ctx: Context | None = None) -> dict[str, Outcome]:
    return {o.subject: o for o in rule.check(plan, ctx or Context(today=TODAY))}


def failing(rule: Rule, plan: Plan, ctx: Context | None = None) -> dict[str, Outcome]:
    return {s: o for s, o in run(rule, plan, ctx).items() if o.message is not None}


def with_tenant(plan: Plan, tenant_id: str, **updates: Any) -> Plan:
    """`plan` with one tenant changed; nested models are given as dicts of their own updates."""
    tenants = []
    for t in plan.tenants:
        if t.id == tenant_id:
            t = _update(t, updates)
        tenants.append(t)
    return plan.model_copy(update={"tenants": tenants})


def with_host(plan: Plan, name: str, **updates: Any) -> Plan:
    hosts = [_update(h, updates) if h.name == name else h for h in plan.hosts]
    return plan.model_copy(update={"hosts": hosts})


def _update(model: PlannedTenant | PlannedHost | Any, updates: dict[str, Any]) -> Any:
    values = {}
    for key, value in updates.items():
        current = getattr(model, key)
        values[key] = current.model_copy(update=value) if isinstance(value, dict) and hasattr(
            current, "model_copy") else value
    return model.model_copy(update=values)


def waive(plan: Plan, *waivers: tuple[str, str, str]) -> Plan:
    return plan.model_copy(update={"waivers": [
        PlannedWaiver(rule=r, subject=s, reason="lab host: cannot apply", expires=e) for r, s, e in waivers]})


# --------------------------------------------------------------------------- tests


def test_every_rule_passes_on_the_shipped_example(shipped_plan: Plan) -> None:
    report = check_plan(shipped_plan, today=TODAY, inventory=SHIPPED_INVENTORY)
    assert report.not_passed() == []
    assert report.exit_code() == 0
    assert {f.rule for f in report.findings} >= {r.id for r in RULES} - {"RGPD-06"}  # no register shipped


def test_rule_ids_are_unique_and_waivable() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    import re

    from relais.model import Waiver

    pattern = re.compile(Waiver.model_fields["rule"].metadata[0].pattern)
    assert all(pattern.match(i) for i in KNOWN_RULE_IDS), [i for i in KNOWN_RULE_IDS if not pattern.match(i)]
    assert all(r.title and r.source and r.hint and r.description for r in RULES)


def test_a_violation_is_located_in_the_commune_file(shipped_plan: Plan) -> None:
    plan = with_tenant(shipped_plan, "14118", messaging={"registration_open": True})
    report = check_plan(plan, today=TODAY, inventory=SHIPPED_INVENTORY)
    [finding] = report.not_passed()
    assert (finding.rule, finding.subject, finding.status) == ("MSG-01", "14118", Status.FAILED)
    assert finding.location is not None and finding.location.file == "inventory/communes/14118-caen.yaml"
    # The `tenant:` key: the file has no `messaging:` block, so its parent is the nearest line.
    lines = (SHIPPED_INVENTORY / "communes" / "14118-caen.yaml").read_text().splitlines()
    assert finding.location.line == lines.index("tenant:") + 1
    assert report.exit_code() == 2


def test_a_host_violation_is_located_in_hosting_yaml(shipped_plan: Plan) -> None:
    plan = with_host(shipped_plan, "backup-rouen", country="US")
    [finding] = check_plan(plan, today=TODAY, inventory=SHIPPED_INVENTORY).not_passed()
    assert finding.rule == "RGPD-05" and finding.location is not None
    lines = (SHIPPED_INVENTORY / "hosting.yaml").read_text().splitlines()
    site_line = lines.index("  backup-rouen:") + 2  # its `site:` key
    assert lines[site_line - 1].strip().startswith("site:")
    assert (finding.location.file, finding.location.line) == ("inventory/hosting.yaml", site_line)


def test_a_current_waiver_turns_a_failure_into_waived(shipped_plan: Plan) -> None:
    plan = waive(with_host(shipped_plan, "backup-rouen", country="US"),
                 ("RGPD-05", "backup-rouen", "2025-06-01"))
    report = check_plan(plan, today=TODAY, inventory=SHIPPED_INVENTORY)
    [finding] = [f for f in report.not_passed()]
    assert finding.status is Status.WAIVED and finding.waiver is not None
    assert finding.waiver.expires == "2025-06-01" and "lab host" in finding.waiver.reason
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 0


def test_a_star_waiver_covers_every_subject(shipped_plan: Plan) -> None:
    # No operator: both the ANSSI rule and the lockout guard fire; '*' waives each everywhere.
    plan = waive(shipped_plan.model_copy(update={"admins": []}), ("ANSSI-SSH-15", "*", "2030-01-01"),
                 ("RELAIS-SAFETY-01", "*", "2030-01-01"))
    report = check_plan(plan, today=TODAY)
    assert [f.status for f in report.not_passed()] == [Status.WAIVED, Status.WAIVED]


def test_an_expired_waiver_no_longer_applies_and_is_reported(shipped_plan: Plan) -> None:
    plan = waive(with_host(shipped_plan, "backup-rouen", country="US"),
                 ("RGPD-05", "backup-rouen", "2025-05-31"))
    report = check_plan(plan, today=TODAY, inventory=SHIPPED_INVENTORY)
    by_rule = {f.rule: f for f in report.not_passed()}
    assert by_rule["RGPD-05"].status is Status.FAILED
    stale = by_rule["WAIVER-01"]
    assert stale.severity is Severity.WARNING and "expired on 2025-05-31" in stale.message
    assert stale.subject == "RGPD-05@backup-rouen"
    # The same waiver, checked a day earlier, still applies: today is injectable.
    earlier = check_plan(plan, today=date(2025, 5, 31))
    assert [f.status for f in earlier.not_passed()] == [Status.WAIVED]


def test_an_expired_waiver_of_a_fixed_finding_is_a_warning_only(shipped_plan: Plan) -> None:
    plan = waive(shipped_plan, ("RGPD-05", "backup-rouen", "2024-01-01"))
    report = check_plan(plan, today=TODAY)
    assert [f.rule for f in report.not_passed()] == ["WAIVER-01"]
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 2


def test_a_waiver_of_an_unknown_rule_is_reported(shipped_plan: Plan) -> None:
    plan = waive(shipped_plan, ("RGPD-99", "*", "2030-01-01"), ("ANSSI-BP028-R9", "msg-caen-1", "2030-01-01"))
    report = check_plan(plan, today=TODAY)
    assert [(f.rule, f.subject) for f in report.not_passed()] == [("WAIVER-02", "RGPD-99@*")]


def test_select_rules_by_id_or_pattern() -> None:
    assert [r.id for r in select(RULES, ["MSG-01"])] == ["MSG-01"]
    assert {r.id for r in select(RULES, ["anssi-fw-*"])} == {"ANSSI-FW-01", "ANSSI-FW-02", "ANSSI-FW-03"}
    with pytest.raises(RelaisError) as error:
        select(RULES, ["MSG-1"])
    assert error.value.hint is not None and "MSG-01" in error.value.hint


def test_a_filtered_run_reports_only_its_rules_and_their_waivers(shipped_plan: Plan) -> None:
    plan = waive(shipped_plan.model_copy(update={"admins": []}), ("RGPD-05", "x", "2020-01-01"))
    report = check_plan(plan, today=TODAY, only=["MSG-*"])
    assert {f.rule for f in report.findings} == {"MSG-01", "MSG-02", "MSG-03", "MSG-04"}


def test_outcome_severity_overrides_the_rule(shipped_plan: Plan) -> None:
    from policies.engine import RegisterRetention

    ctx = Context(today=TODAY, registers={"14118": RegisterRetention("r.json", 1095, 365, 180)})
    report_rules = [r for r in RULES if r.id == "RGPD-06"]
    outcomes = run(report_rules[0], shipped_plan, ctx)
    assert outcomes["14118"].message is None
    assert outcomes["14047"].severity is Severity.WARNING  # no register entry: a warning
