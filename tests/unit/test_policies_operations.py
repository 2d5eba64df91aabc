"""Operations rules: off-site backups, host capacity, tenants that do not fit."""

from __future__ import annotations

from pathlib import Path

from policies import operations
from policies.catalog import check_plan
from relais import referential
from relais.plan import Plan, Unplaced, Usage
from relais.planner import plan_directory

from .test_policies_engine import TODAY, failing, run, shipped_plan, with_host, with_tenant

__all__ = ["shipped_plan"]


def test_backup_on_another_site(shipped_plan: Plan) -> None:
    assert failing(operations.backup_off_site, shipped_plan) == {}
    # Caen is on msg-caen-1 (site caen); mon-caen is on the same site.
    plan = with_tenant(shipped_plan, "14118", backup={"target_host": "mon-caen"})
    [outcome] = failing(operations.backup_off_site, plan).values()
    assert outcome.subject == "14118" and outcome.evidence["site"] == "caen"
    plan = with_tenant(shipped_plan, "14118", backup={"target_host": None})
    assert set(failing(operations.backup_off_site, plan)) == {"14118"}


def test_no_backup_host_on_another_site(inventory_dir: Path, ref: referential.Referential) -> None:
    hosting = inventory_dir / "hosting.yaml"
    text = hosting.read_text()
    start = text.index("  backup-rouen:")
    end = text.index("  mon-caen:")
    hosting.write_text(text[:start] + text[end:])  # only mon-caen (caen) keeps backups
    plan = plan_directory(inventory_dir, referential=ref).plan
    rouen_tenants = {t.id for t in plan.tenants if t.host == "msg-caen-1"}
    assert set(failing(operations.backup_off_site, plan)) == rouen_tenants


def test_host_capacity(shipped_plan: Plan) -> None:
    assert failing(operations.host_capacity, shipped_plan) == {}
    host = next(h for h in shipped_plan.hosts if h.name == "msg-caen-1")
    plan = with_host(shipped_plan, "msg-caen-1", used=Usage(ram_mib=host.capacity.ram_mib + 1,
                                                             disk_mib=host.used.disk_mib))
    [outcome] = failing(operations.host_capacity, plan).values()
    assert outcome.subject == "msg-caen-1" and "memory" in (outcome.message or "")


def test_unplaced_tenants_are_findings(shipped_plan: Plan) -> None:
    assert failing(operations.tenants_placed, shipped_plan) == {}
    assert "61169" not in run(operations.tenants_placed, shipped_plan)  # requested: not placed on purpose
    plan = with_tenant(shipped_plan, "14118", host=None, placement="unplaced").model_copy(update={
        "unplaced": [Unplaced(tenant="14118", reason="no messaging host has enough free capacity",
                              missing_ram_mib=512, missing_disk_mib=0)]})
    [outcome] = failing(operations.tenants_placed, plan).values()
    assert outcome.subject == "14118" and "enough free capacity" in (outcome.message or "")


def test_tenants_that_do_not_fit_fail_the_check(inventory_dir: Path, ref: referential.Referential) -> None:
    hosting = inventory_dir / "hosting.yaml"
    hosting.write_text(hosting.read_text().replace("capacity: {ram: 8GiB, disk: 200GiB, vcpu: 4}",
                                                   "capacity: {ram: 1GiB, disk: 200GiB, vcpu: 4}"))
    (inventory_dir / "placements.lock").unlink()
    plan = plan_directory(inventory_dir, referential=ref).plan
    assert plan.unplaced
    report = check_plan(plan, today=TODAY, inventory=inventory_dir)
    unplaced = {f.subject for f in report.not_passed() if f.rule == "OPS-03"}
    assert unplaced == {u.tenant for u in plan.unplaced}
    assert report.exit_code() == 2
