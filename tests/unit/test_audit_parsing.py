"""The pure parts of `relais audit`: parsers of live facts (real `nft -j` output, `sshd -T`,
Lynis' report), the checks against the Plan and the waivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais.audit import baseline, checks, facts, lynis
from relais.cli.context import State, load_plan
from relais.findings import Status
from relais.plan import Plan, PlannedWaiver

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "audit"
# Produced by `nft -f` of baseline.nft_ruleset(backup-rouen of the shipped example) in a scratch
# network namespace, then `nft -j list ruleset`; the tampered one after
# `nft add rule inet relais input tcp dport 8080 accept` and `... ip saddr 192.0.2.0/24 accept`.
NFT_CLEAN = FIXTURES / "nft-backup-rouen.json"
NFT_TAMPERED = FIXTURES / "nft-backup-rouen-tampered.json"

LYNIS_REPORT = """\
lynis-exit=0
# Lynis Report
report_version_major=1
lynis_version=3.0.8
os=Linux
warning[]=PKGS-7392|Found one or more vulnerable packages.|-|-|
suggestion[]=SSH-7408|Consider hardening SSH configuration|Port (set 22 to )|-|
suggestion[]=FILE-6310|To decrease the impact of a full /home file system, place /home on a separate partition|-|-|
hardening_index=86
"""


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(State(REPO / "inventory"))


def fw_checks(plan: Plan, nft_json: str) -> dict[str, checks.Check]:
    host_facts = facts.HostFacts("backup-rouen", firewall=facts.parse_nft(nft_json))
    return {c.rule: c for c in checks._firewall(host_facts, plan, plan.host("backup-rouen"))}


def test_live_ruleset_from_the_plan_passes(plan: Plan) -> None:
    fw = facts.parse_nft(NFT_CLEAN.read_text())
    assert fw.table and fw.input_hooked and fw.input_policy == "drop"
    result = fw_checks(plan, NFT_CLEAN.read_text())
    assert {rule: c.failed for rule, c in result.items()} == {
        "ANSSI-FW-04": [],
        "ANSSI-FW-02": [],
        "ANSSI-FW-01": [],
        "ANSSI-FW-03": [],
    }


def test_a_port_opened_by_hand_is_reported(plan: Plan) -> None:
    result = fw_checks(plan, NFT_TAMPERED.read_text())
    failed = result["ANSSI-FW-02"].failed
    assert "open tcp/8080 from any" in failed
    assert any(item.startswith("accept-all rule") and "192.0.2.0" in item for item in failed)
    assert result["ANSSI-FW-03"].failed == ["tcp/8080"]
    assert result["ANSSI-FW-04"].failed == []


def test_missing_table_fails_the_default_drop(plan: Plan) -> None:
    result = fw_checks(plan, '{"nftables": [{"metainfo": {"version": "1.0.6"}}]}')
    assert result["ANSSI-FW-04"].failed == ["policy"]
    assert all(item.startswith("missing ") for item in result["ANSSI-FW-02"].failed)
    assert facts.parse_nft("Error: permission denied").error == "Error: permission denied"


def test_sshd_t_parsing_and_checks(plan: Plan) -> None:
    lines = [
        "permitrootlogin yes",
        "passwordauthentication no",
        "maxauthtries 6",
        "ciphers aes128-ctr,3des-cbc",
        "allowgroups relais-admins",
    ]
    values, error = facts.parse_sshd(lines)
    assert error is None and values["maxauthtries"] == "6"
    found = {
        c.rule: c for c in checks._sshd(facts.HostFacts("msg-caen-1", sshd=values), plan.host("msg-caen-1"))
    }
    assert found["ANSSI-SSH-01"].failed == ["permitrootlogin"]
    assert "permitrootlogin yes" in found["ANSSI-SSH-01"].evidence["sshd -T"]
    assert found["ANSSI-SSH-02"].failed == []
    assert found["ANSSI-SSH-05"].failed == ["maxauthtries"]
    assert found["ANSSI-SSH-12"].failed == ["ciphers"]
    assert found["ANSSI-SSH-16"].failed == []
    assert facts.parse_sshd(["sshd: no hostkeys available -- exiting."])[1] is not None


def test_lynis_report_parsing() -> None:
    report = lynis.parse_report(LYNIS_REPORT)
    assert (report.hardening_index, report.version, report.exit_code) == (86, "3.0.8", 0)
    assert [w.test for w in report.warnings] == ["PKGS-7392"]
    assert len(report.suggestions) == 2
    assert report.suggestions[0].details == "Port (set 22 to )"
    found = {c.rule: c for c in checks.lynis_checks("h", report, None, threshold=85)}
    assert found["LYNIS-01"].failed == []
    assert found["LYNIS-02"].failed == ["PKGS-7392"]
    low = checks.lynis_checks("h", report, None, threshold=90)[0]
    assert low.failed == ["index"] and low.evidence["hardening_index"] == 86
    missing = checks.lynis_checks("h", lynis.parse_report("lynis-exit=127\n"), None, 85)
    assert missing[0].failed == ["lynis"]


def test_sections_round_trip() -> None:
    output = (
        f"{facts.MARK}stat\n/etc/shadow|640|root|shadow\n/etc/at.allow|missing\n"
        f"{facts.MARK}cmdline\nBOOT_IMAGE=/vmlinuz ro quiet\n{facts.MARK}aide\npresent\n"
    )
    parsed = facts.parse("h", output)
    assert parsed.files["/etc/shadow"] == facts.FileStat("/etc/shadow", True, 0o640, "root", "shadow")
    assert not parsed.files["/etc/at.allow"].exists
    assert parsed.aide_db and parsed.cmdline.startswith("BOOT_IMAGE")
    assert "stat -c" in facts.script() and "nft -j list ruleset" in facts.script()


def test_file_modes_are_ceilings() -> None:
    shadow = baseline.FileMode("/etc/shadow", 0o640, "root", "shadow")
    assert shadow.satisfied_by(0o600, "root", "shadow")
    assert not shadow.satisfied_by(0o644, "root", "shadow")
    assert not shadow.satisfied_by(0o640, "root", "root")


def test_waivers_apply_to_a_rule_or_to_each_failed_item(plan: Plan) -> None:
    waivers = [
        PlannedWaiver(rule="ANSSI-BP028-R9", subject="h1", reason="container", expires="2099-01-01"),
        PlannedWaiver(
            rule="ANSSI-BP028-R12", subject="h1/net.core.bpf_jit_harden", reason="netns", expires="2099-01-01"
        ),
        PlannedWaiver(rule="ANSSI-BP028-R73", subject="h1", reason="expired", expires="2000-01-01"),
    ]
    waived = plan.model_copy(update={"waivers": waivers})
    found = checks.to_findings(
        [
            checks.Check("ANSSI-BP028-R9", "h1", ["kernel.sysrq"], "differs"),
            checks.Check("ANSSI-BP028-R9", "h2", ["kernel.sysrq"], "differs"),
            checks.Check("ANSSI-BP028-R12", "h1", ["net.core.bpf_jit_harden"], "absent"),
            checks.Check(
                "ANSSI-BP028-R12", "h1", ["net.core.bpf_jit_harden", "net.ipv4.ip_forward"], "differs"
            ),
            checks.Check("ANSSI-BP028-R73", "h1", ["auditd"], "failed"),
            checks.Check("ANSSI-SSH-01", "h1", [], "ok"),
        ],
        waived,
        "2026-06-30",
    )
    assert [f.status for f in found] == [
        Status.WAIVED,
        Status.FAILED,
        Status.WAIVED,
        Status.FAILED,
        Status.FAILED,
        Status.PASSED,
    ]
    assert found[0].waiver is not None and found[0].waiver.reason == "container"
    assert found[3].evidence["waived items"] == ["net.core.bpf_jit_harden"]
