"""The DNS stack under Pulumi's mock runtime: the syndicate's zone, from the Plan's records."""

# Fixtures shared with test_stacks_openstack are imported, then requested by name.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest

from relais import referential
from relais.plan import Plan
from relais.planner import plan_directory
from relais.provision import ProvisionError, stack_options
from relais.provision.offline import preview_offline
from tests.conftest import SHIPPED_INVENTORY
from tests.unit.test_stacks_openstack import key_env  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ZONE = "messagerie.normandie.example"


@pytest.fixture
def plan(ref: referential.Referential) -> Plan:
    return plan_directory(SHIPPED_INVENTORY, referential=ref).plan


def test_every_syndicate_record_in_the_zone_on_designate(plan: Plan, key_env: Path) -> None:
    preview = preview_offline(plan, stack_options("dns", dns_provider="openstack"))
    created = {(r.inputs["name"], r.inputs["type"], tuple(r.inputs["records"]), int(r.inputs["ttl"]))
               for r in preview.of_type("openstack:dns/recordSet:RecordSet")}
    expected = {(f"{d.name}.", d.type, (d.value,), d.ttl) for d in plan.dns if d.managed_by == "syndicate"}
    assert created == expected and len(created) == 14
    assert {r.inputs["zoneId"] for r in preview.of_type("openstack:dns/recordSet:RecordSet")} == {
        f"(getDnsZone {ZONE}.)"}
    assert preview.violations == []


def test_every_tenant_has_its_records(plan: Plan, key_env: Path) -> None:
    preview = preview_offline(plan, stack_options("dns", dns_provider="openstack"))
    in_zone = {(r.inputs["name"].rstrip("."), r.inputs["type"])
               for r in preview.of_type("openstack:dns/recordSet:RecordSet")}
    commune = {(r.name, r.type) for r in preview.spec.commune_records}
    placed = [t for t in plan.tenants if t.host]
    assert placed
    for tenant in placed:
        name = tenant.domain or tenant.server_name  # matrix-shared: the regional homeserver
        records = commune if tenant.own_domain else in_zone
        assert (name, "A") in records, tenant.id
        if tenant.flavor == "xmpp":
            assert {(f"_xmpp-client._tcp.{name}", "SRV"), (f"_xmpp-server._tcp.{name}", "SRV")} <= records
    # Communes that own their domain create their records themselves: listed, never created.
    assert ("saint-lo.fr", "A") in commune and ("caen.fr", "A") in commune
    assert not {n for n, _ in in_zone if not n.endswith(ZONE)}


def test_scaleway_zone_uses_relative_names(plan: Plan, key_env: Path) -> None:
    preview = preview_offline(plan, stack_options("dns", dns_provider="scaleway"))
    records = {(r.inputs["name"], r.inputs["type"]): r.inputs for r in preview.of_type("scaleway:domain/record:Record")}
    assert len(records) == 14
    assert all(r["dnsZone"] == ZONE for r in records.values())
    assert records[("matrix", "A")]["data"] == "10.77.0.12"
    assert records[("_xmpp-client._tcp.taillepied", "SRV")]["data"].startswith("0 5 5222 msg-caen-1.infra.")
    assert any("private addresses" in note for note in preview.spec.notes)


def test_unknown_dns_provider_is_a_clear_error(plan: Plan, key_env: Path) -> None:
    with pytest.raises(ProvisionError) as caught:
        preview_offline(plan, stack_options("dns", dns_provider="ovh"))
    assert "openstack, scaleway" in (caught.value.hint or "")
