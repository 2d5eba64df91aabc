"""Operator edits of a commune file: round-trip (comments kept), undone when invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais import tenant_ops
from relais.errors import InventoryError
from relais.planner import plan_directory
from relais.referential import Referential

CAEN = """version: 1
# La ville de Caen
commune:
  insee: "14118"
  name: Caen
tenant:
  flavor: matrix-dedicated  # own homeserver
  agents:
    - {name: Camille Martin, email: c.martin@caen.fr}
  status: active
"""


def test_status_edit_keeps_comments_and_layout() -> None:
    edited = tenant_ops.set_status(CAEN, "suspended")
    assert edited == CAEN.replace("status: active", "status: suspended")


def test_add_agent_appends_one_line() -> None:
    edited = tenant_ops.add_agent(CAEN, "Hugo Lemaire", "h.lemaire@caen.fr")
    assert edited == CAEN.replace(
        "    - {name: Camille Martin, email: c.martin@caen.fr}\n",
        "    - {name: Camille Martin, email: c.martin@caen.fr}\n"
        "    - {name: Hugo Lemaire, email: h.lemaire@caen.fr}\n")


def test_lifecycle_rules(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    caen = tenant_ops.find_tenant(plan, "caen")
    assert tenant_ops.find_tenant(plan, "14118") == caen
    assert tenant_ops.suspend_transform(caen)(CAEN).count("suspended") == 1
    assert tenant_ops.resume_transform(caen)(CAEN) == CAEN  # already active: nothing to do
    requested = next(t for t in plan.tenants if t.status == "requested")
    with pytest.raises(tenant_ops.TenantOpError):
        tenant_ops.suspend_transform(requested)
    with pytest.raises(tenant_ops.TenantOpError):
        tenant_ops.find_tenant(plan, "Atlantis")
    assert tenant_ops.find_agent(caen, caen.agents[0].email) == caen.agents[0]


def test_suspend_edits_the_file_and_replans(inventory_dir: Path, ref: Referential) -> None:
    def replan():  # type: ignore[no-untyped-def]
        return plan_directory(inventory_dir, referential=ref).plan

    plan = replan()
    caen = tenant_ops.find_tenant(plan, "14118")
    path = tenant_ops.commune_file(inventory_dir, caen)
    edit, new_plan = tenant_ops.apply_edit(path, tenant_ops.suspend_transform(caen), replan)
    assert edit.changed and tenant_ops.find_tenant(new_plan, "14118").status == "suspended"
    assert "status: suspended" in path.read_text()


def test_an_invalid_edit_is_undone(inventory_dir: Path, ref: Referential) -> None:
    def replan():  # type: ignore[no-untyped-def]
        return plan_directory(inventory_dir, referential=ref).plan

    caen = tenant_ops.find_tenant(replan(), "14118")
    path = tenant_ops.commune_file(inventory_dir, caen)
    before = path.read_text()
    with pytest.raises(InventoryError):
        tenant_ops.apply_edit(path, lambda text: tenant_ops.add_agent(text, "X", "not-an-email"), replan)
    assert path.read_text() == before
