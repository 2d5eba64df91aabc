"""`lab up` twice changes nothing; `lab up` after a host was killed restarts just that host."""

from __future__ import annotations

import os
import signal

import pytest

from relais.lab import Lab, UpResult, system
from relais.lab.hosts import HostMachine
from relais.lab.system import wait_gone
from relais.plan import Plan

pytestmark = pytest.mark.lab


def host_pids(lab: Lab, plan: Plan) -> dict[str, list[int]]:
    return {h.name: HostMachine(lab.paths, h.name).processes().nspawn for h in plan.lab_hosts()}


def test_first_up_brought_every_host_up(lab_up: tuple[Lab, UpResult], plan: Plan) -> None:
    _, result = lab_up
    assert result.status.all_running
    assert {h.name for h in result.status.hosts} == {h.name for h in plan.lab_hosts()}


def test_up_twice_changes_nothing(lab: Lab, plan: Plan) -> None:
    before = host_pids(lab, plan)
    result = lab.up()
    assert result.changes == []
    assert host_pids(lab, plan) == before
    assert result.status.all_running


@pytest.mark.parametrize("what", ["nspawn", "init"])
def test_up_after_a_host_was_killed_restarts_just_that_host(lab: Lab, plan: Plan, what: str) -> None:
    victim = plan.lab_hosts()[1].name
    before = host_pids(lab, plan)
    machine = HostMachine(lab.paths, victim)
    procs = machine.processes()
    veth = machine.veth()
    assert veth and system.link_exists(veth)
    # SIGKILL to systemd-nspawn leaves the container orphaned; to the container's init, ends it.
    pids = procs.nspawn if what == "nspawn" else procs.leaders
    assert pids
    # With its nspawn killed, nobody deletes the machine's link: the kernel frees it with the
    # machine's network namespace, in the background, under load after the next nspawn has
    # tried to take its name. Holding the namespace open makes that delay last the whole test.
    netns = os.open(f"/proc/{procs.leaders[0]}/ns/net", os.O_RDONLY)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert wait_gone(pids, 10)
        if what == "init":  # nspawn sees its machine end, deletes the link and exits
            assert wait_gone(procs.nspawn, 10)

        result = lab.up()
    finally:
        os.close(netns)

    assert result.changes and all(victim in change for change in result.changes), result.changes
    after = host_pids(lab, plan)
    assert after[victim] and after[victim] != before[victim]
    assert {k: v for k, v in after.items() if k != victim} == {
        k: v for k, v in before.items() if k != victim
    }
    out = lab.exec(victim, ["sh", "-c", "hostname; systemctl is-system-running --wait"]).stdout.split()
    assert out == [victim, "running"]
    assert lab.up().changes == []
