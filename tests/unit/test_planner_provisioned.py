"""Addresses written back by `relais provision up` reach the Plan without hand editing."""

from __future__ import annotations

from pathlib import Path

from relais.planner import plan_directory
from relais.provision.outputs import ProvisionedHost, write_provisioned
from relais.referential import Referential

from .inventories import host_line, write_commune, write_hosting


def test_provisioned_addresses_fill_the_plan(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path, [
        host_line("msg-a", "caen", "messaging, proxy, database").replace("provider: lab", "provider: openstack"),
        host_line("bk", "rouen", "backup", disk="10TiB").replace("provider: lab", "provider: openstack"),
    ], shared="msg-a")
    write_commune(tmp_path, ref, "14118", "xmpp")
    before = plan_directory(tmp_path, referential=ref).plan
    assert before.host("msg-a").address is None
    assert not [r for r in before.dns if r.name.endswith("caen.messagerie.test.example") and r.type == "A"]

    write_provisioned(tmp_path, "openstack", {
        "msg-a": ProvisionedHost("192.168.10.5", "203.0.113.10", "openstack"),
        "bk": ProvisionedHost("192.168.20.7", None, "openstack"),
    })
    after = plan_directory(tmp_path, referential=ref).plan
    assert after.host("msg-a").address == "192.168.10.5"
    assert after.host("msg-a").public_address == "203.0.113.10"
    tenant = after.tenant("14118")
    records = {(r.name, r.type): r.value for r in after.dns}
    assert records[(tenant.domain, "A")] == "203.0.113.10"
    # Peers resolved: the backup host's SSH admits the messaging host by address.
    ssh = next(r for r in after.host("bk").firewall if r.port == 22)
    assert "192.168.10.5/32" in ssh.sources
