"""The CrossGuard pack's rules, called directly as the engine would (no engine, no CLI)."""

# Fixtures shared with test_stacks_openstack are imported, then requested by name.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from policies.crossguard.rules import POLICIES, RULES, check, resource_args
from relais.plan import Plan
from relais.provision import stack_options
from relais.provision.offline import preview_offline
from tests.unit.test_stacks_openstack import cloud_plan, key_env  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OS_RULE = "openstack:networking/secGroupRule:SecGroupRule"
OS_INSTANCE = "openstack:compute/instance:Instance"
SCW_SERVER = "scaleway:instance/server:Server"
SCW_GROUP = "scaleway:instance/securityGroup:SecurityGroup"
SCW_RULES = "scaleway:instance/securityGroupRules:SecurityGroupRules"
SCW_BUCKET = "scaleway:object/bucket:Bucket"
GOOD_BUCKET = {"region": "fr-par", "versioning": {"enabled": True},
               "lifecycleRules": [{"enabled": True, "noncurrentVersionExpiration": {"noncurrentDays": 186.0}}]}


def rules_of(resource_type: str, props: dict[str, Any]) -> list[str]:
    return [v.rule for v in check(resource_type, props, name="r")]


def ssh(prefix: str | None, **extra: Any) -> dict[str, Any]:
    props = {"direction": "ingress", "protocol": "tcp", "portRangeMin": 22.0, "portRangeMax": 22.0,
             "ethertype": "IPv4", "securityGroupId": "sg"} | extra
    if prefix is not None:
        props["remoteIpPrefix"] = prefix
    return props


@pytest.mark.parametrize(("props", "violations"), [
    (ssh("0.0.0.0/0"), ["RELAIS-NET-01"]),
    (ssh("::/0", ethertype="IPv6"), ["RELAIS-NET-01"]),
    (ssh(None), ["RELAIS-NET-01"]),  # no source at all: every source
    (ssh("0.0.0.0/0", portRangeMin=1.0, portRangeMax=1024.0), ["RELAIS-NET-01"]),
    (ssh("0.0.0.0/0", protocol=None, portRangeMin=None, portRangeMax=None), ["RELAIS-NET-01"]),
    (ssh("192.0.2.0/24"), []),
    (ssh(None, remoteGroupId="peer-sg"), []),
    (ssh("0.0.0.0/0", portRangeMin=443.0, portRangeMax=443.0), []),  # HTTPS to the world is fine
    (ssh("0.0.0.0/0", protocol="udp"), []),
    (ssh("0.0.0.0/0", direction="egress"), []),
])
def test_openstack_ssh_rules(props: dict[str, Any], violations: list[str]) -> None:
    assert rules_of(OS_RULE, props) == violations


@pytest.mark.parametrize(("resource_type", "props", "violations"), [
    (SCW_GROUP, {"inboundDefaultPolicy": "drop", "zone": "fr-par-1"}, []),
    (SCW_GROUP, {"inboundDefaultPolicy": "accept"}, ["RELAIS-NET-01"]),
    (SCW_GROUP, {}, ["RELAIS-NET-01"]),  # Scaleway's default is accept
    (SCW_RULES, {"inboundRules": [{"action": "accept", "protocol": "TCP", "port": 22.0, "ipRange": "0.0.0.0/0"}]},
     ["RELAIS-NET-01"]),
    (SCW_RULES, {"inboundRules": [{"action": "accept", "protocol": "TCP", "portRange": "20-30"}]}, ["RELAIS-NET-01"]),
    (SCW_RULES, {"inboundRules": [{"action": "accept", "protocol": "TCP", "port": 22.0, "ipRange": "192.0.2.0/24"}]}, []),
    (SCW_RULES, {"inboundRules": [{"action": "drop", "protocol": "TCP", "port": 22.0, "ipRange": "0.0.0.0/0"}]}, []),
    (SCW_RULES, {"inboundRules": [{"action": "accept", "protocol": "TCP", "port": 443.0, "ipRange": "::/0"}]}, []),
])
def test_scaleway_ssh_rules(resource_type: str, props: dict[str, Any], violations: list[str]) -> None:
    assert rules_of(resource_type, props) == violations


@pytest.mark.parametrize(("resource_type", "props", "violations"), [
    (OS_INSTANCE, {"metadata": {"relais-country": "FR"}}, []),
    (OS_INSTANCE, {"metadata": {"relais-country": "NO"}}, []),  # EEA
    (OS_INSTANCE, {"metadata": {"relais-country": "US"}}, ["RELAIS-SOV-01"]),
    (OS_INSTANCE, {"metadata": {"relais-country": "CH"}}, ["RELAIS-SOV-01"]),  # neither EU nor EEA
    (OS_INSTANCE, {"region": "GRA11"}, ["RELAIS-SOV-01"]),  # unlabelled: cannot be shown in the EU
    ("openstack:blockstorage/volume:Volume", {"metadata": {"relais-country": "US"}}, ["RELAIS-SOV-01"]),
    (SCW_SERVER, {"zone": "fr-par-1"}, []),
    (SCW_SERVER, {"zone": "pl-waw-2"}, []),
    (SCW_SERVER, {"zone": "us-east-1"}, ["RELAIS-SOV-01"]),
    (SCW_SERVER, {}, ["RELAIS-SOV-01"]),
    (SCW_SERVER, {"zone": "fr-par-1", "tags": ["relais-country=US"]}, ["RELAIS-SOV-01"]),
    (SCW_BUCKET, GOOD_BUCKET | {"region": "ca-tor"}, ["RELAIS-SOV-01"]),
])
def test_location_in_eu(resource_type: str, props: dict[str, Any], violations: list[str]) -> None:
    assert rules_of(resource_type, props) == violations


@pytest.mark.parametrize(("resource_type", "props", "violations"), [
    (SCW_BUCKET, GOOD_BUCKET, []),
    (SCW_BUCKET, GOOD_BUCKET | {"versioning": {"enabled": False}}, ["RELAIS-ENC-01"]),
    (SCW_BUCKET, {k: v for k, v in GOOD_BUCKET.items() if k != "versioning"}, ["RELAIS-ENC-01"]),
    (SCW_BUCKET, GOOD_BUCKET | {"lifecycleRules": []}, ["RELAIS-RET-01"]),
    (SCW_BUCKET, GOOD_BUCKET | {"lifecycleRules": [{"enabled": False, "noncurrentVersionExpiration": {"noncurrentDays": 30}}]},
     ["RELAIS-RET-01"]),
    ("openstack:objectstorage/container:Container", {"versioning": True, "metadata": {"relais-country": "FR"}}, []),
    ("openstack:objectstorage/container:Container", {"metadata": {"relais-country": "FR"}}, ["RELAIS-ENC-01"]),
])
def test_backup_buckets(resource_type: str, props: dict[str, Any], violations: list[str]) -> None:
    assert rules_of(resource_type, props) == violations


def test_pack_wires_every_rule_as_a_mandatory_resource_policy() -> None:
    assert [p.name for p in POLICIES] == [name for name, _ in RULES]
    for policy, (_, validate) in zip(POLICIES, RULES, strict=True):
        assert isinstance(policy, ResourceValidationPolicy)
        assert policy.enforcement_level == EnforcementLevel.MANDATORY
        reported: list[str] = []

        def report(message: str, urn: str | None = None, sink: list[str] = reported) -> None:
            sink.append(message)

        policy.validate(resource_args(OS_RULE, ssh("0.0.0.0/0"), name="r"), report)  # type: ignore[operator]
        assert bool(reported) == (validate.__name__ == "no_world_ssh")
    pack = Path(__file__).resolve().parents[2] / "policies" / "crossguard"
    assert (pack / "PulumiPolicy.yaml").is_file() and "PolicyPack(" in (pack / "__main__.py").read_text()


def test_a_host_moved_out_of_the_eu_is_rejected(cloud_plan: Plan, key_env: Path) -> None:
    hosts = [h.model_copy(update={"country": "US"}) if h.name == "mon-caen" else h for h in cloud_plan.hosts]
    preview = preview_offline(cloud_plan.model_copy(update={"hosts": hosts}), stack_options("openstack"))
    # The site's backup container follows its first host (mon-caen) out of the EU too.
    assert {(v.rule, v.name) for v in preview.violations} == {
        ("RELAIS-SOV-01", "mon-caen-instance"), ("RELAIS-SOV-01", "mon-caen-data"),
        ("RELAIS-SOV-01", "backups-caen-container")}


def test_a_world_open_ssh_rule_is_rejected(cloud_plan: Plan, key_env: Path) -> None:
    hosts = []
    for host in cloud_plan.hosts:
        if host.name == "msg-caen-1":
            firewall = [r.model_copy(update={"sources": ["any"]}) if r.port == 22 else r for r in host.firewall]
            host = host.model_copy(update={"firewall": firewall})
        hosts.append(host)
    preview = preview_offline(cloud_plan.model_copy(update={"hosts": hosts}), stack_options("openstack"))
    assert sorted(v.name for v in preview.violations if v.rule == "RELAIS-NET-01") == [
        "msg-caen-1-firewall-tcp-22-0.0.0.0_0", "msg-caen-1-firewall-tcp-22-::_0"]
