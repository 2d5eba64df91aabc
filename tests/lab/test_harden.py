"""Hardening on real lab hosts: root and passwords closed, the controller still gets in
(paramiko negotiates the hardened algorithms), the firewall opens what the Plan says and
nothing else, and a deploy that would lock the controller out is refused before any host
is touched."""

from __future__ import annotations

import subprocess

import pytest

from policies import anssi
from relais.audit import baseline
from relais.cli.context import default_inventory
from relais.deploy import DeployReport, deploy_plan
from relais.deploy.context import DEPLOY_USER
from relais.deploy.safety import LockoutError
from relais.lab import Lab
from relais.plan import Plan


def test_effective_sshd_config_meets_every_expectation(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    for host in plan.lab_hosts():
        result = lab.exec(host.name, ["sshd", "-T"])
        assert result.returncode == 0, result.stderr
        effective = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
        for exp in anssi.SSHD:
            assert exp.satisfied_by(effective[exp.keyword]), (host.name, exp.rule, effective[exp.keyword])
        groups = [
            line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("allowgroups ")
        ]
        assert groups == baseline.allowed_groups(host)  # sshd -T prints one line per group


def test_root_login_is_refused_and_the_deploy_account_gets_in(
    deployed: DeployReport, lab: Lab, plan: Plan
) -> None:
    params = lab.ssh_params(plan.lab_hosts()[0].name)  # as recorded by the lab: root
    assert params.user == "root"
    as_root = subprocess.run(params.argv(["true"]), capture_output=True, text=True, timeout=30, check=False)
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr
    # lab exec then logs in as the deploy account and uses sudo, as the deploy does.
    assert lab.exec(params.host, ["id", "-u"]).stdout.strip() == "0"
    assert lab.exec(params.host, ["sh", "-c", "echo $SUDO_USER"]).stdout.strip() == DEPLOY_USER


def test_redeploy_connects_with_the_hardened_algorithms(deployed: DeployReport, plan: Plan) -> None:
    """pyinfra connects through paramiko: the redeploy succeeds only if paramiko and the
    hardened sshd still agree on a cipher, MAC, key exchange and host key type."""
    host = plan.lab_hosts()[0].name
    again = deploy_plan(plan, default_inventory(), limit=[host])
    assert again.ok and [h.user for h in again.hosts] == [DEPLOY_USER]
    assert again.changed == 0, [o.name for h in again.hosts for o in h.operations if o.changed]


def _tcp_open(lab: Lab, source: str, address: str, port: int) -> bool:
    probe = lab.exec(source, ["timeout", "3", "bash", "-c", f"</dev/tcp/{address}/{port}"])
    return probe.returncode == 0


def test_firewall_admits_declared_sources_only(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    checked_closed = checked_open = 0
    for target in plan.lab_hosts():
        allowed = {n for a in baseline.allowances(plan, target) if a.port == 22 for n in a.sources}
        for source in plan.lab_hosts():
            if source.name == target.name:
                continue
            admitted = f"{source.address}/32" in allowed
            assert _tcp_open(lab, source.name, str(target.address), 22) == admitted, (
                source.name,
                target.name,
            )
            checked_open += admitted
            checked_closed += not admitted
    assert checked_closed and checked_open  # the example has both kinds of pair
    listing = lab.exec(plan.lab_hosts()[0].name, ["nft", "list", "chain", "inet", "relais", "input"]).stdout
    assert "policy drop;" in listing


def test_network_sysctls_are_live_and_persisted(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    host = plan.lab_hosts()[0]
    live = lab.exec(
        host.name,
        [
            "sysctl",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.ip_forward",
            "net.ipv4.tcp_syncookies",
            "net.ipv6.conf.all.disable_ipv6",
        ],
    ).stdout
    assert live.split("\n")[:4] == [
        "net.ipv4.conf.all.rp_filter = 1",
        "net.ipv4.ip_forward = 0",
        "net.ipv4.tcp_syncookies = 1",
        "net.ipv6.conf.all.disable_ipv6 = 1",
    ]
    persisted = lab.exec(host.name, ["cat", baseline.SYSCTL_CONF]).stdout
    assert "kernel.kptr_restrict = 2" in persisted  # written for production, waived in the lab


def test_fail2ban_watches_sshd(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    for host in plan.lab_hosts():
        status = lab.exec(host.name, ["fail2ban-client", "status", "sshd"])
        assert status.returncode == 0 and "Status for the jail: sshd" in status.stdout, (host.name, status)


def test_hosts_stay_healthy_after_hardening(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    """No unit fails (auditd and the module lock are skipped in a container, not failed)."""
    for host in plan.lab_hosts():
        failed = lab.exec(host.name, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
        assert failed == "", (host.name, failed)


def test_a_deploy_that_would_lock_the_controller_out_touches_no_host(
    deployed: DeployReport, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    import relais.deploy.targets as targets

    def no_connection(*args: object, **kwargs: object) -> None:
        raise AssertionError("a host was contacted")

    monkeypatch.setattr(targets, "resolve", no_connection)
    without_keys = plan.model_copy(update={"admins": []})
    with pytest.raises(LockoutError, match="no administrator with an SSH key"):
        deploy_plan(without_keys, default_inventory())
    host = plan.lab_hosts()[0]
    closed = host.model_copy(
        update={
            "firewall": [
                r.model_copy(update={"sources": ["192.0.2.0/24"]}) if r.port == 22 else r
                for r in host.firewall
            ]
        }
    )
    locked = plan.model_copy(update={"hosts": [closed if h.name == host.name else h for h in plan.hosts]})
    with pytest.raises(
        LockoutError, match=f"would not accept SSH from the controller \\({plan.lab.gateway}\\)"
    ):
        deploy_plan(locked, default_inventory(), limit=[host.name])
