"""The Scaleway stack under Pulumi's mock runtime, for the cloud variant of the example region."""

# Fixtures shared with test_stacks_openstack are imported, then requested by name.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.mocks import MockResourceArgs

from relais.plan import Plan
from relais.provision import ProvisionError, stack_options
from relais.provision.offline import PreviewMocks, preview_offline
from tests.unit.test_stacks_openstack import cloud_plan, expected_rules, key_env  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ADDRESSES = {"msg-rouen-1-server": "172.16.4.2", "backup-rouen-server": "172.16.4.3",
             "msg-caen-1-server": "172.16.5.2", "mon-caen-server": "172.16.5.3"}


class CloudMocks(PreviewMocks):
    """What Scaleway would answer: a private address per server."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        resource_id, state = super().new_resource(args)
        if args.name in ADDRESSES:
            state["privateIps"] = [{"id": "pnic", "address": ADDRESSES[args.name]}]
        return resource_id, state


def test_one_server_per_scaleway_host_in_the_sites_region(cloud_plan: Plan, key_env: Path) -> None:
    preview = preview_offline(cloud_plan, stack_options("scaleway"), mocks=CloudMocks())
    servers = {r.inputs["name"]: r.inputs for r in preview.of_type("scaleway:instance/server:Server")}
    assert set(servers) == {"msg-rouen-1", "backup-rouen"}
    assert servers["msg-rouen-1"]["type"] == "DEV1-L"  # 4 vCPU, 8 GiB
    assert servers["backup-rouen"]["type"] == "DEV1-S"  # 2 vCPU, 2 GiB
    for inputs in servers.values():
        assert inputs["zone"] == "fr-par-1"
        assert "relais-country=FR" in inputs["tags"]
        assert inputs["userData"]["cloud-init"].startswith("#cloud-config")
    volumes = sorted(int(r.inputs["sizeInGb"]) for r in preview.of_type("scaleway:block/volume:Volume"))
    assert volumes == [200, 1024]
    groups = preview.of_type("scaleway:instance/securityGroup:SecurityGroup")
    assert len(groups) == 2 and all(g.inputs["inboundDefaultPolicy"] == "drop" for g in groups)
    assert preview.violations == []


def all_on_scaleway(plan: Plan) -> Plan:
    return plan.model_copy(update={"hosts": [h.model_copy(update={"provider": "scaleway", "region": "fr-par"})
                                             for h in plan.hosts]})


@pytest.mark.parametrize("everything_on_scaleway", [False, True])
def test_security_group_rules_are_the_plans_firewall(cloud_plan: Plan, key_env: Path,
                                                     everything_on_scaleway: bool) -> None:
    plan = all_on_scaleway(cloud_plan) if everything_on_scaleway else cloud_plan
    preview = preview_offline(plan, stack_options("scaleway"), mocks=CloudMocks())
    owner = {f"{g.name}-id": g.name.removesuffix("-sg")
             for g in preview.of_type("scaleway:instance/securityGroup:SecurityGroup")}
    by_address = {address: name.removesuffix("-server") for name, address in ADDRESSES.items()}
    found: dict[str, set[tuple[str, int, str]]] = {}
    for rules in preview.of_type("scaleway:instance/securityGroupRules:SecurityGroupRules"):
        host = owner[rules.inputs["securityGroupId"]]
        for rule in rules.inputs["inboundRules"]:
            assert rule["action"] == "accept"
            source = rule["ipRange"]
            peer = by_address.get(source.removesuffix("/32"))
            found.setdefault(host, set()).add((rule["protocol"].lower(), int(rule["port"]),
                                               f"host:{peer}" if peer else source))
    assert found == expected_rules(plan, "scaleway")
    if everything_on_scaleway:
        # Peers of the same stack are allowed by their private address.
        assert ("tcp", 22, "host:msg-caen-1") in found["backup-rouen"]
        assert ("tcp", 9100, "host:mon-caen") in found["msg-rouen-1"]
        assert preview.spec.unresolved == ()
    else:
        # Their peers are on OpenStack, address unknown yet: left out (default drop) and reported.
        assert "backup-rouen tcp/22 from msg-caen-1" in preview.spec.unresolved
        assert "msg-rouen-1 tcp/9100 from mon-caen" in preview.spec.unresolved
        assert all(u.endswith(("from msg-caen-1", "from mon-caen")) for u in preview.spec.unresolved)
    for rules in found.values():
        assert not [r for r in rules if r[1] == 22 and r[2] in ("0.0.0.0/0", "::/0")]


def test_backup_bucket_versioned_with_retention_lifecycle_in_eu(cloud_plan: Plan, key_env: Path) -> None:
    preview = preview_offline(cloud_plan, stack_options("scaleway"), mocks=CloudMocks())
    [bucket] = [r.inputs for r in preview.of_type("scaleway:object/bucket:Bucket")]
    assert bucket["name"] == "relais-messagerie-normandie-example-rouen-backups"
    assert bucket["region"] == "fr-par"
    assert bucket["versioning"] == {"enabled": True}
    rules = {r["id"]: r for r in bucket["lifecycleRules"]}
    # borg keeps 6 monthly archives (186 days), capped by each tenant's message retention
    # (Les Loges: 180 days); the bucket keeps old versions for the longest allowed window.
    windows = [min(max(t.backup.keep_daily, 7 * t.backup.keep_weekly, 31 * t.backup.keep_monthly),
                   t.retention.messages_days)
               for t in cloud_plan.tenants
               if t.host in ("msg-rouen-1", "backup-rouen") or t.backup.target_host in ("msg-rouen-1", "backup-rouen")]
    assert rules["relais-old-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == max(windows) == 186
    assert rules["relais-old-versions"]["enabled"] is True
    assert rules["relais-abandoned-uploads"]["abortIncompleteMultipartUploadDays"] == 1


def test_a_scaleway_host_needs_its_sites_region(cloud_plan: Plan, key_env: Path) -> None:
    hosts = [h.model_copy(update={"region": None}) if h.provider == "scaleway" else h for h in cloud_plan.hosts]
    with pytest.raises(ProvisionError) as caught:
        preview_offline(cloud_plan.model_copy(update={"hosts": hosts}), stack_options("scaleway"))
    assert "has no region" in caught.value.message and "sites.rouen.region" in (caught.value.hint or "")

