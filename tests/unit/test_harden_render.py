"""The pure parts of hardening: files rendered from the Plan (sshd_config, nftables,
sysctl.d, fail2ban) and the lockout checks that run before any deploy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from policies import anssi
from relais.audit import baseline
from relais.cli.context import State, load_plan
from relais.deploy.context import ADMIN_GROUP
from relais.deploy.safety import LockoutError, check_deploy, lockouts
from relais.plan import FirewallRule, Plan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(State(REPO / "inventory"))


def test_sshd_config_carries_every_anssi_expectation(plan: Plan) -> None:
    text = baseline.sshd_config(plan.host("msg-caen-1"))
    lines = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    for exp in anssi.SSHD:
        assert exp.config_name in lines, exp.rule
        assert exp.satisfied_by(lines[exp.config_name]), (exp.rule, lines[exp.config_name])
    assert lines["AllowGroups"] == ADMIN_GROUP
    assert "Include" not in lines  # no drop-in can override the hardened values
    assert lines["HostKey"] == "/etc/ssh/ssh_host_ed25519_key"


def test_backup_hosts_also_admit_the_borg_group(plan: Plan) -> None:
    text = baseline.sshd_config(plan.host("backup-rouen"))
    assert f"AllowGroups {ADMIN_GROUP} {baseline.BACKUP_GROUP}" in text.splitlines()


def test_sshd_algorithms_are_ones_paramiko_negotiates() -> None:
    """The controller (pyinfra over paramiko) must find a common cipher, MAC and key exchange."""
    import paramiko

    for allowed, offered in (
        (anssi.CIPHERS, paramiko.Transport._preferred_ciphers),
        (anssi.MACS, paramiko.Transport._preferred_macs),
        (anssi.KEX, paramiko.Transport._preferred_kex),
    ):
        assert set(allowed) & set(offered), (allowed, offered)
    assert "ssh-ed25519" in paramiko.Transport._preferred_keys


def test_sshd_accepts_the_rendered_config(plan: Plan, tmp_path: Path) -> None:
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(baseline.sshd_config(plan.host("msg-caen-1")).replace(baseline.SSHD_HOST_KEY, str(key)))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd -T insists on its privsep directory
    result = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    effective = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    for exp in anssi.SSHD:
        assert exp.satisfied_by(effective[exp.keyword]), (exp.rule, effective[exp.keyword])


def test_nft_ruleset_opens_exactly_the_plan(plan: Plan) -> None:
    host = plan.host("backup-rouen")
    text = baseline.nft_ruleset(plan, host)
    assert "policy drop;" in text.split("chain input")[1].split("}")[0] or "policy drop" in text
    accepts = [line.strip() for line in text.splitlines() if "dport" in line]
    assert len(accepts) == len(host.firewall)
    for rule in host.firewall:
        line = next(a for a in accepts if f"{rule.protocol} dport {rule.port} " in a)
        for source in rule.sources:
            assert source in line
    # Our table is replaced atomically and alone: fail2ban's table survives a reload.
    assert "flush ruleset" not in text
    assert text.index("delete table inet relais") < text.index("table inet relais {")


def test_host_sources_resolve_to_the_plan_addresses(plan: Plan) -> None:
    peer = plan.host("msg-caen-1")
    assert baseline.resolve_source(plan, "host:msg-caen-1") == [f"{peer.address}/32"]
    assert baseline.resolve_source(plan, "any") == []
    with pytest.raises(baseline.BaselineError, match="names no host"):
        baseline.resolve_source(plan, "host:nowhere")
    host = plan.host("msg-caen-1")
    rule = FirewallRule(protocol="tcp", port=22, sources=["host:backup-rouen"], purpose="test")
    changed = host.model_copy(update={"firewall": [rule]})
    allowed = baseline.allowances(plan, changed)
    assert allowed == [baseline.Allowance("tcp", 22, (f"{plan.host('backup-rouen').address}/32",), "test")]


def test_public_allowance_has_no_source_match(plan: Plan) -> None:
    host = plan.host("msg-caen-1")
    text = baseline.nft_ruleset(plan, host)
    https = next(line for line in text.splitlines() if "tcp dport 443 " in line)
    assert "saddr" not in https


def test_sysctl_conf_leaves_module_lock_to_its_unit(plan: Plan) -> None:
    text = baseline.sysctl_conf(plan.host("msg-caen-1"))
    assert "kernel.modules_disabled" not in text
    assert "net.ipv4.ip_forward = 0" in text
    assert "net.ipv6.conf.all.disable_ipv6 = 1" in text  # no IPv6 service: R13 applies
    assert "ConditionPathIsReadWrite=/proc/sys/kernel" in baseline.MODULES_LOCK_UNIT


def test_fail2ban_never_bans_the_controller() -> None:
    assert "ignoreip = 127.0.0.1/8 ::1 10.77.0.1" in baseline.fail2ban_jail("10.77.0.1")
    assert "[sshd]\nenabled = true" in baseline.fail2ban_jail(None)


# --------------------------------------------------------------------------- lockout


def test_the_example_is_safe_to_deploy(plan: Plan) -> None:
    assert lockouts(plan) == []
    check_deploy(plan, plan.hosts)


def test_no_operator_key_is_refused(plan: Plan) -> None:
    bare = plan.model_copy(update={"admins": []})
    with pytest.raises(LockoutError, match="no administrator with an SSH key"):
        check_deploy(bare, bare.hosts)


def test_ssh_closed_to_the_controller_is_refused(plan: Plan) -> None:
    host = plan.host("msg-caen-1")
    closed = host.model_copy(
        update={
            "firewall": [
                r if r.port != 22 else r.model_copy(update={"sources": ["192.0.2.0/24"]})
                for r in host.firewall
            ]
        }
    )
    hosts = [closed if h.name == host.name else h for h in plan.hosts]
    broken = plan.model_copy(update={"hosts": hosts})
    found = lockouts(broken)
    assert [(f.rule, f.subject) for f in found] == [("RELAIS-SAFETY-02", "msg-caen-1")]
    assert plan.lab.gateway in found[0].message
    with pytest.raises(LockoutError, match="would not accept SSH from the controller"):
        check_deploy(broken, [closed])


def test_cloud_host_checks_the_declared_controller_address(plan: Plan) -> None:
    host = plan.host("msg-caen-1").model_copy(
        update={
            "provider": "openstack",
            "firewall": [
                FirewallRule(
                    protocol="tcp", port=22, sources=["198.51.100.0/24"], purpose="SSH from operators"
                )
            ],
        }
    )
    assert lockouts(plan, [host], controller_address="198.51.100.7") == []
    assert [f.rule for f in lockouts(plan, [host], controller_address="203.0.113.9")] == ["RELAIS-SAFETY-02"]
    nobody = host.model_copy(update={"firewall": []})
    assert "from nobody" in lockouts(plan, [nobody])[0].message


# --------------------------------------------------------------------------- facts of the deploy


def test_deploy_facts_process_real_outputs() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    from deploys.harden import facts

    assert facts.LiveSysctls().process(["net.ipv4.ip_forward = 0", "net.ipv4.ip_local_port_range = 32768\t65535",
                                        "garbage"]) == {"net.ipv4.ip_forward": "0",
                                                        "net.ipv4.ip_local_port_range": "32768 65535"}
    assert facts.NftablesDrift().process(["same"]) is False
    assert facts.NftablesDrift().process(["drift"]) is True
    assert "cmp -s - /var/lib/relais/nftables.applied" in facts.NftablesDrift().command("relais")
    assert facts.StatOverrides().process(["root root 700 /usr/bin/x86_64-linux-gnu-as"]) == {
        "/usr/bin/x86_64-linux-gnu-as": "root root 700"}
    assert facts.PendingUpgrades().process(["3"]) == 3 and facts.PendingUpgrades().process([""]) == 0
    assert facts.MountOptions().process(["rw,nosuid,nodev,noexec"]) == "rw,nosuid,nodev,noexec"
    assert facts.EnabledUnits().process(["cups.service", ""]) == ["cups.service"]


def test_file_modes_and_login_defs_facts() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    from deploys.harden import facts

    modes = facts.FileModes().process(["/etc/shadow|640|root|shadow", "/etc/at.allow|missing"])
    assert modes == {"/etc/shadow": (0o640, "root", "shadow"), "/etc/at.allow": None}
    assert "stat -c" in facts.FileModes().command(("/etc/shadow",))
    assert facts.LoginDefs().process(["UMASK\t\t022", "UMASK 027", "PASS_MAX_DAYS\t99999"]) == {
        "UMASK": "022", "PASS_MAX_DAYS": "99999"}


def test_file_digests_fact() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    from deploys.harden import MANAGED_FILES, facts

    out = ["/etc/issue|da39a3ee5e6b4b0d3255bfef95601890afd80709|644|root|root", "/etc/at.allow|missing"]
    assert facts.FileDigests().process(out) == {
        "/etc/issue": ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "644", "root", "root"), "/etc/at.allow": None}
    assert baseline.SSHD_CONFIG in MANAGED_FILES and baseline.NFT_CONF in MANAGED_FILES
