"""ANSSI: the hardening expectations as data (sshd, sysctl, firewall) and the Plan-level rules."""

from __future__ import annotations

from pathlib import Path

from policies import anssi
from relais import referential
from relais.plan import FirewallRule, Plan
from relais.planner import plan_directory

from .test_policies_engine import failing, run, shipped_plan, with_host

__all__ = ["shipped_plan"]


def _rules(plan: Plan, host: str) -> list[FirewallRule]:
    return list(next(h for h in plan.hosts if h.name == host).firewall)


def test_ssh_never_open_to_any(shipped_plan: Plan) -> None:
    assert failing(anssi.ssh_not_public, shipped_plan) == {}
    assert set(run(anssi.ssh_not_public, shipped_plan)) == {h.name for h in shipped_plan.hosts}
    for source in ("any", "0.0.0.0/0", "::/0"):
        rules = [r.model_copy(update={"sources": [*r.sources, source]}) if r.port == 22 else r
                 for r in _rules(shipped_plan, "mon-caen")]
        plan = with_host(shipped_plan, "mon-caen", firewall=rules)
        assert set(failing(anssi.ssh_not_public, plan)) == {"mon-caen"}, source


def test_ports_justified_by_roles(shipped_plan: Plan) -> None:
    assert failing(anssi.ports_justified, shipped_plan) == {}
    https = FirewallRule(protocol="tcp", port=443, sources=["any"], purpose="HTTPS")
    plan = with_host(shipped_plan, "backup-rouen", firewall=[*_rules(shipped_plan, "backup-rouen"), https])
    [outcome] = failing(anssi.ports_justified, plan).values()
    assert outcome.subject == "backup-rouen" and outcome.evidence["ports"] == [443]


def test_a_messaging_host_without_proxy_role_is_flagged(inventory_dir: Path, ref: referential.Referential) -> None:
    # With no proxy anywhere, the planner has a messaging host serve HTTPS itself: a finding.
    hosting = inventory_dir / "hosting.yaml"
    hosting.write_text(hosting.read_text().replace("roles: [messaging, proxy, database]",
                                                   "roles: [messaging, database]"))
    plan = plan_directory(inventory_dir, referential=ref).plan
    assert set(failing(anssi.ports_justified, plan)) == {"msg-caen-1", "msg-rouen-1"}


def test_admin_ports_not_public(shipped_plan: Plan) -> None:
    assert failing(anssi.admin_ports_not_public, shipped_plan) == {}
    rules = [r.model_copy(update={"sources": ["any"]}) if r.port == 9090 else r
             for r in _rules(shipped_plan, "mon-caen")]
    plan = with_host(shipped_plan, "mon-caen", firewall=rules)
    assert failing(anssi.admin_ports_not_public, plan)["mon-caen"].evidence["ports"] == [9090]


def test_operators_have_keys(shipped_plan: Plan) -> None:
    assert failing(anssi.operators_have_keys, shipped_plan) == {}
    assert set(failing(anssi.operators_have_keys, shipped_plan.model_copy(update={"admins": []}))) == {"plan"}
    keyless = [shipped_plan.admins[0].model_copy(update={"ssh_keys": []}), *shipped_plan.admins[1:]]
    outcome = failing(anssi.operators_have_keys, shipped_plan.model_copy(update={"admins": keyless}))["plan"]
    assert outcome.evidence["without_keys"] == [shipped_plan.admins[0].login]


def test_sshd_expectations_judge_sshd_t_values() -> None:
    by_keyword = {e.keyword: e for e in anssi.SSHD}
    assert {"permitrootlogin", "passwordauthentication", "maxauthtries", "loglevel", "allowtcpforwarding",
            "x11forwarding", "ciphers", "macs", "kexalgorithms"} <= set(by_keyword)
    assert by_keyword["permitrootlogin"].satisfied_by("no")
    assert not by_keyword["permitrootlogin"].satisfied_by("prohibit-password")
    assert by_keyword["maxauthtries"].satisfied_by("3") and not by_keyword["maxauthtries"].satisfied_by("6")
    assert by_keyword["loglevel"].satisfied_by("VERBOSE") and not by_keyword["loglevel"].satisfied_by("INFO")
    ciphers = by_keyword["ciphers"]
    assert ciphers.satisfied_by("chacha20-poly1305@openssh.com,aes256-gcm@openssh.com")
    assert not ciphers.satisfied_by("aes256-ctr,3des-cbc") and not ciphers.satisfied_by("")
    assert not by_keyword["macs"].satisfied_by("hmac-sha1,hmac-sha2-256")
    assert by_keyword["kexalgorithms"].satisfied_by("curve25519-sha256")
    assert all(e.satisfied_by(e.value) for e in anssi.SSHD)  # what the deploy writes passes the audit
    assert by_keyword["x11forwarding"].config_line == "X11Forwarding no"
    assert len({e.rule for e in anssi.SSHD}) == len(anssi.SSHD)


def test_sysctl_expectations_cover_bp028_r9_to_r14() -> None:
    assert {s.rule for s in anssi.SYSCTLS} == {f"ANSSI-BP028-R{n}" for n in range(9, 15)}
    by_key = {s.key: s for s in anssi.SYSCTLS}
    assert by_key["kernel.kptr_restrict"].value == "2" and by_key["kernel.kptr_restrict"].scope == "kernel"
    assert by_key["net.ipv4.ip_local_port_range"].satisfied_by("32768\t65535")
    assert not by_key["net.ipv4.conf.all.rp_filter"].satisfied_by("0")
    conf = anssi.sysctl_conf()
    assert conf.count("# ANSSI-BP028-R12") == 1 and "net.ipv4.tcp_syncookies = 1" in conf
    assert not any(s.rule == "ANSSI-BP028-R13" for s in anssi.sysctls_for(ipv6=True))
    assert len(anssi.sysctls_for(ipv6=False)) == len(anssi.SYSCTLS)


def test_justified_ports_follow_the_firewall_module() -> None:
    assert anssi.justified_ports(["backup"]) == {22, 9100}
    assert {80, 443, 8448} <= anssi.justified_ports(["proxy"])
    assert {5222, 5269, 5280, 8600, 9092} <= anssi.justified_ports(["messaging"])
    assert {9090, 9093} <= anssi.justified_ports(["monitor"])
    assert anssi.DEFAULT_INBOUND_POLICY == "drop"
