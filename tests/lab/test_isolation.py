"""The lab has no route beyond this machine. Checked without sending a single packet
outside: route lookups inside the hosts (a lookup sends nothing) and the controller's
nftables rules."""

from __future__ import annotations

import subprocess

import pytest

from relais.lab import Lab
from relais.lab.config import NFT_TABLE
from relais.plan import Plan

pytestmark = pytest.mark.lab

# Documentation and public addresses: only looked up in the routing table, never contacted.
OUTSIDE = ["192.0.2.1", "1.1.1.1", "198.51.100.7"]


def test_lab_hosts_have_no_route_out(lab: Lab, plan: Plan) -> None:
    for host in plan.lab_hosts():
        routes = lab.exec(host.name, ["ip", "-4", "route", "show", "table", "all"]).stdout
        assert "default" not in routes, (host.name, routes)
        for address in OUTSIDE:
            result = lab.exec(host.name, ["ip", "route", "get", address])
            assert result.returncode != 0, (host.name, address, result.stdout)
            assert "Network is unreachable" in result.stderr, (host.name, result.stderr)
        # Another lab host is routable, on the bridge.
        other = next(h for h in plan.lab_hosts() if h.name != host.name)
        assert "dev host0" in lab.exec(host.name, ["ip", "route", "get", other.address]).stdout
        v6 = lab.exec(host.name, ["ip", "-6", "route", "get", "2001:db8::1"])
        assert v6.returncode != 0


def test_controller_drops_forwarded_lab_traffic(plan: Plan, lab: Lab) -> None:
    bridge = plan.lab.bridge
    forward = subprocess.run(["nft", "list", "chain", "inet", NFT_TABLE, "forward"],
                             capture_output=True, text=True, check=True).stdout
    assert "hook forward" in forward
    assert f'iifname "{bridge}" oifname != "{bridge}"' in forward and "drop" in forward
    assert f'oifname "{bridge}" iifname != "{bridge}"' in forward


def test_no_nat_for_the_lab(plan: Plan, lab: Lab) -> None:
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                             check=True).stdout
    for line in ruleset.splitlines():
        if "masquerade" in line or "snat" in line:
            assert plan.lab.bridge not in line and plan.lab.subnet.split("/")[0][:-1] not in line


def test_controller_services_listen_on_the_bridge_only(plan: Plan, lab: Lab) -> None:
    sockets = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True).stdout
    for line in sockets.splitlines():
        if "dnsmasq" in line or "apt-cacher-ng" in line:
            local = line.split()[4]
            assert local.rsplit(":", 1)[0] == plan.lab.gateway, line
