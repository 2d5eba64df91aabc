"""RGPD/CNIL rules: each with a passing case (the example region) and failing variations."""

from __future__ import annotations

import json
from pathlib import Path

from policies import rgpd
from policies.catalog import check_plan
from policies.engine import Context, RegisterRetention
from policies.registre import load_retentions
from relais import referential
from relais.findings import Severity
from relais.plan import Plan
from relais.planner import plan_directory

from .test_policies_engine import TODAY, failing, run, shipped_plan, with_host, with_tenant

__all__ = ["shipped_plan"]


def test_dpo_declared(shipped_plan: Plan) -> None:
    assert failing(rgpd.dpo_declared, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "14047", dpo_email="")
    assert set(failing(rgpd.dpo_declared, plan)) == {"14047"}
    plan = with_tenant(shipped_plan, "14047", dpo_name=" ")
    assert set(failing(rgpd.dpo_declared, plan)) == {"14047"}


def test_requested_tenants_are_not_checked(shipped_plan: Plan) -> None:
    plan = with_tenant(shipped_plan, "61169", dpo_email="")  # Flers: requested
    assert "61169" not in run(rgpd.dpo_declared, plan)


def test_message_retention_declared(shipped_plan: Plan) -> None:
    assert failing(rgpd.message_retention_declared, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "14118", retention={"messages_days": 0})
    assert set(failing(rgpd.message_retention_declared, plan)) == {"14118"}


def test_log_retention_between_6_and_12_months(shipped_plan: Plan) -> None:
    assert failing(rgpd.log_retention, shipped_plan) == {}
    for days in (179, 366, 30):
        plan = with_tenant(shipped_plan, "14118", retention={"logs_days": days})
        [outcome] = failing(rgpd.log_retention, plan).values()
        assert outcome.subject == "14118" and str(days) in (outcome.message or "")
    for days in (180, 365):
        plan = with_tenant(shipped_plan, "14118", retention={"logs_days": days})
        assert failing(rgpd.log_retention, plan) == {}


def test_log_retention_outside_the_range_with_a_justification_passes(shipped_plan: Plan) -> None:
    plan = with_tenant(shipped_plan, "14118", retention={
        "logs_days": 730, "logs_justification": "obligation de conservation du code des postes"})
    assert failing(rgpd.log_retention, plan) == {}


def test_log_retention_from_the_commune_file(inventory_dir: Path, ref: referential.Referential) -> None:
    caen = inventory_dir / "communes" / "14118-caen.yaml"
    caen.write_text(caen.read_text().replace("logs: 1y", "logs: 2y"))
    plan = plan_directory(inventory_dir, referential=ref).plan
    report = check_plan(plan, today=TODAY, inventory=inventory_dir)
    [finding] = report.not_passed()
    assert (finding.rule, finding.subject) == ("CNIL-01", "14118")
    assert finding.location is not None and finding.location.line == 19  # retention: {messages: 3y, logs: 2y}


def test_backup_retention_within_message_retention(shipped_plan: Plan) -> None:
    assert failing(rgpd.backup_retention, shipped_plan) == {}
    # Les Loges keeps messages 6 months: 7 monthly backups reach beyond.
    plan = with_tenant(shipped_plan, "76390", backup={"keep_monthly": 7})
    [outcome] = failing(rgpd.backup_retention, plan).values()
    assert outcome.subject == "76390" and outcome.evidence["backup_window_days"] == 210
    plan = with_tenant(shipped_plan, "76390", backup={"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0})
    [outcome] = failing(rgpd.backup_retention, plan).values()
    assert "no backup retention" in (outcome.message or "")


def test_backup_window_uses_the_declaration_month() -> None:
    from relais.plan import PlannedBackup

    b = PlannedBackup(target_host=None, repository=None, time="02:30", keep_daily=7, keep_weekly=4,
                      keep_monthly=6, encryption="repokey-blake2")
    assert rgpd.backup_window_days(b) == 180  # `6m` is 180 days in declarations


def test_backups_encrypted(shipped_plan: Plan) -> None:
    assert failing(rgpd.backup_encrypted, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "50502", backup={"encryption": "none"})
    assert set(failing(rgpd.backup_encrypted, plan)) == {"50502"}


def test_hosting_in_the_eu(shipped_plan: Plan) -> None:
    assert failing(rgpd.hosting_in_eu, shipped_plan) == {}
    assert set(run(rgpd.hosting_in_eu, shipped_plan)) == {h.name for h in shipped_plan.hosts}
    plan = with_host(shipped_plan, "mon-caen", country="CH")  # Switzerland: not EU/EEA
    [outcome] = failing(rgpd.hosting_in_eu, plan).values()
    assert outcome.subject == "mon-caen" and outcome.evidence["backups_of"]  # it holds backups
    assert failing(rgpd.hosting_in_eu, with_host(shipped_plan, "mon-caen", country="NO")) == {}


def test_a_site_outside_the_eu_from_hosting_yaml(inventory_dir: Path, ref: referential.Referential) -> None:
    hosting = inventory_dir / "hosting.yaml"
    hosting.write_text(hosting.read_text().replace("    country: FR\n    city: Rouen",
                                                   "    country: US\n    city: Rouen"))
    plan = plan_directory(inventory_dir, referential=ref).plan
    assert set(failing(rgpd.hosting_in_eu, plan)) == {"backup-rouen", "msg-rouen-1"}


def _register(folder: Path, insee: str, messages: int, logs: int, backups: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{insee}-x.json").write_text(json.dumps({
        "schema": "relais.registre/v2", "commune": {"insee": insee},
        "durees_conservation": {"messages_jours": messages, "journaux_jours": logs, "sauvegardes_jours": backups},
    }))


def test_register_matches_plan(shipped_plan: Plan, tmp_path: Path) -> None:
    # No register in the inventory: the rule has nothing to compare.
    assert run(rgpd.register_matches, shipped_plan) == {}
    folder = tmp_path / "inventory" / "registre"
    for t in shipped_plan.tenants:
        _register(folder, t.id, t.retention.messages_days, t.retention.logs_days, 180)
    ctx = Context(today=TODAY, registers=load_retentions(folder))
    assert failing(rgpd.register_matches, shipped_plan, ctx) == {}
    # Caen's retention changed in the inventory, not in the register: CI fails.
    plan = with_tenant(shipped_plan, "14118", retention={"messages_days": 730})
    [outcome] = failing(rgpd.register_matches, plan, ctx).values()
    assert outcome.subject == "14118" and outcome.severity is None
    assert "messages_days 1095" in (outcome.message or "") and "messages_days 730" in (outcome.message or "")


def test_register_missing_entry_is_a_warning(shipped_plan: Plan) -> None:
    ctx = Context(today=TODAY, registers={"14118": RegisterRetention("x", 1095, 365, 180)})
    missing = failing(rgpd.register_matches, shipped_plan, ctx)
    assert "14118" not in missing and missing
    assert all(o.severity is Severity.WARNING for o in missing.values())
