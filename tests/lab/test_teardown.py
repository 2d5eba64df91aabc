"""`lab down` leaves nothing behind: listed, not assumed. Runs last (see conftest)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relais.lab import Lab
from relais.lab.config import HOSTS_BEGIN, NFT_TABLE
from relais.lab.system import CGROUP_GROUP, mounts, processes, systemd_cgroup_roots
from relais.plan import Plan

pytestmark = pytest.mark.lab


def test_down_leaves_nothing_behind(lab: Lab, plan: Plan) -> None:
    spec_hosts = plan.lab_hosts()
    assert lab.status().all_running

    changes = lab.down()

    assert changes
    state = str(lab.paths.state)
    # machines and processes: no nspawn, no container init, no resolver, no proxy
    leftovers = [
        p for p in processes()
        if any(state in arg for arg in p.argv)
        or (p.argv[0].endswith("systemd-nspawn"))
    ]
    assert leftovers == []
    # links: no bridge, no veth of a lab host
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f" {plan.lab.bridge}:" not in links and f" {plan.lab.bridge}@" not in links
    for host in spec_hosts:
        assert f"vb-{host.name[:12]}" not in links
    # addresses: nothing of the lab subnet left on the controller
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert plan.lab.gateway not in addrs
    # namespaces: none named by us, and no process left in a lab host's network namespace
    named = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert named.strip() == ""
    # what nspawn keeps in /run
    propagate = Path("/run/systemd/nspawn/propagate")
    for host in spec_hosts:
        assert not (propagate / host.name).exists()
    # cgroups of the hosts
    for root in systemd_cgroup_roots():
        assert not (root / CGROUP_GROUP).exists()
    # mounts, rules, names, state
    assert [m for m in mounts() if m.target.startswith(state)] == []
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"table inet {NFT_TABLE}" not in nft.splitlines()
    assert HOSTS_BEGIN not in Path("/etc/hosts").read_text()
    assert not lab.paths.hosts_dir.exists() and not lab.paths.record.exists()

    # down twice: nothing left to remove
    assert lab.down() == []
