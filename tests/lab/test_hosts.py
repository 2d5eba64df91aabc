"""Every declared lab host is a real machine: SSH with a checked host key, its own
hostname, systemd running, names resolved between hosts and from the controller,
Debian packages through the lab's proxy."""

from __future__ import annotations

import socket
import subprocess

import pytest

from relais.deploy.context import DEPLOY_USER
from relais.lab import Lab, lab_spec
from relais.lab.ssh import run_on
from relais.plan import Plan

pytestmark = pytest.mark.lab


def host_names(plan: Plan) -> list[str]:
    return [h.name for h in plan.lab_hosts()]


def test_the_example_region_has_lab_hosts(plan: Plan) -> None:
    assert len(plan.lab_hosts()) >= 4


def test_every_host_answers_over_ssh_with_its_hostname_and_systemd_running(
    lab: Lab, plan: Plan
) -> None:
    for host in plan.lab_hosts():
        result = lab.exec(host.name, ["sh", "-c", "hostname; hostname -f; systemctl is-system-running --wait"])
        assert result.returncode == 0, (host.name, result.stdout, result.stderr)
        short, fqdn, state = result.stdout.split()
        assert (short, fqdn) == (host.name, host.fqdn)
        # Honest: no unit is masked to get here; a failed unit would say "degraded".
        assert state == "running", lab.exec(host.name, ["systemctl", "--failed"]).stdout


def test_each_host_runs_systemd_as_pid_1_in_its_own_network_namespace(lab: Lab, plan: Plan) -> None:
    namespaces = set()
    for host in plan.lab_hosts():
        result = lab.exec(host.name, ["sh", "-c", "cat /proc/1/comm; readlink /proc/self/ns/net"])
        comm, netns = result.stdout.split()
        assert comm == "systemd"
        namespaces.add(netns)
    assert len(namespaces) == len(plan.lab_hosts())


def test_ssh_checks_the_recorded_host_key(lab: Lab, plan: Plan) -> None:
    params = lab.ssh_params(plan.lab_hosts()[0].name)
    known = params.known_hosts.read_text()
    for host in plan.lab_hosts():
        assert f"{host.name},{host.fqdn},{host.address} ssh-ed25519 " in known
    # The same connection with an empty known_hosts is refused: host keys are really checked.
    empty = params.known_hosts.with_name("known_hosts.empty-for-test")
    empty.write_text("")
    try:
        argv = [a.replace(str(params.known_hosts), str(empty)) for a in params.argv(["true"])]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    finally:
        empty.unlink()
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert "StrictHostKeyChecking=yes" in params.options()


def test_exec_returns_the_remote_exit_code(lab: Lab, plan: Plan) -> None:
    name = plan.lab_hosts()[0].name
    assert lab.exec(name, ["sh", "-c", "exit 7"]).returncode == 7
    assert lab.exec(name, ["true"]).returncode == 0


def _ssh_admits(lab: Lab, plan: Plan, source: str, target: str) -> bool:
    """Before hardening every port answers; after, the target's firewall admits to SSH only
    the sources its Plan declares (deploys/harden)."""
    from relais.audit.baseline import allowances

    if lab.exec(target, ["nft", "list", "table", "inet", "relais"]).returncode != 0:
        return True
    admitted = {n for a in allowances(plan, plan.host(target)) if a.port == 22 for n in a.sources}
    return f"{plan.host(source).address}/32" in admitted


def test_hosts_reach_each_other_by_name(lab: Lab, plan: Plan) -> None:
    hosts = plan.lab_hosts()
    for source in hosts:
        for target in hosts:
            if target.name == source.name:
                continue
            result = lab.exec(
                source.name,
                ["sh", "-c",
                 f"getent hosts {target.fqdn} {target.name} | cut -d' ' -f1 | sort -u; "
                 f"timeout 5 bash -c '</dev/tcp/{target.name}/22' && echo ssh-port-open"],
            )
            expected = [target.address] + (["ssh-port-open"] if _ssh_admits(lab, plan, source.name, target.name)
                                           else [])
            assert result.stdout.split() == expected, (source.name, result)


def test_controller_resolves_lab_host_names(plan: Plan, lab: Lab) -> None:
    for host in plan.lab_hosts():
        assert socket.gethostbyname(host.fqdn) == host.address
        assert socket.gethostbyname(host.name) == host.address


def dig(server: str, name: str, rtype: str) -> list[str]:
    result = subprocess.run(
        ["dig", "+short", "+norecurse", "+time=2", "+tries=1", f"@{server}", name, rtype],
        capture_output=True, text=True, timeout=10, check=True,
    )
    return sorted(result.stdout.split("\n")[:-1]) if result.stdout else []


def test_lab_resolver_serves_every_name_of_the_plan(plan: Plan, lab: Lab) -> None:
    gateway = plan.lab.gateway
    checked = 0
    for record in plan.dns:
        name = record.name.rstrip(".")
        if record.type == "A":
            assert record.value in dig(gateway, name, "A"), record
        elif record.type == "SRV":
            assert record.value in dig(gateway, name, "SRV"), record
        elif record.type == "CNAME":
            assert record.value in dig(gateway, name, "CNAME"), record
        else:
            continue
        checked += 1
    assert checked > 0
    # The XMPP SRV records federation needs are there.
    assert any(r.type == "SRV" and r.name.startswith("_xmpp-server._tcp.") for r in plan.dns)


def test_lab_resolver_answers_only_lab_names(plan: Plan, lab: Lab) -> None:
    result = subprocess.run(
        ["dig", "+time=2", "+tries=1", f"@{plan.lab.gateway}", "name-not-in-the-plan.invalid", "A"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    assert "status: NXDOMAIN" in result.stdout


def test_tenant_names_resolve_inside_lab_hosts_as_in_production(plan: Plan, lab: Lab) -> None:
    a_records = [r for r in plan.dns if r.type == "A" and r.managed_by == "syndicate"]
    assert a_records
    source = plan.lab_hosts()[0].name
    for record in a_records:
        out = lab.exec(source, ["getent", "ahostsv4", record.name]).stdout
        assert record.value in out.split(), (record, out)


def test_lab_hosts_install_debian_packages_through_the_proxy(plan: Plan, lab: Lab) -> None:
    spec = lab_spec(plan)
    name = plan.lab_hosts()[-1].name
    conf = lab.exec(name, ["apt-config", "dump", "Acquire::http::Proxy"]).stdout
    assert spec.proxy_url in conf
    result = lab.exec(name, ["sh", "-c", "apt-get -q update && apt-get install -q -y --no-install-recommends hello && hello"],
                      timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Hello, world!" in result.stdout


def test_ssh_params_for_tools(plan: Plan, lab: Lab) -> None:
    from relais.lab import ssh_params

    host = plan.lab_hosts()[0]
    params = ssh_params(host.name, lab.paths)
    # root on a fresh host; the deploy account once hardening closed root login
    assert (params.address, params.port) == (host.address, 22) and params.user in ("root", DEPLOY_USER)
    assert params.private_key.is_file() and params.known_hosts.is_file()
    assert (params.private_key.stat().st_mode & 0o777) == 0o600
    result = run_on(params, ["hostname"])
    assert result.stdout.strip() == host.name
    # The generated ssh_config works with plain ssh, by name.
    out = subprocess.run(["ssh", "-F", str(params.ssh_config), "-l", params.user, host.fqdn, "hostname"],
                         capture_output=True, text=True, timeout=30, check=False,
                         stdin=subprocess.DEVNULL)
    assert out.stdout.strip() == host.name, out.stderr
