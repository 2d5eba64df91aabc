"""Live facts against the baseline: one check per rule and host, each with its evidence.

A check says which items of the rule failed (sysctl keys, files, packages...). The
inventory's waivers (hosting.yaml `waivers:`) apply to a rule on a host (`subject: <host>`)
or to one item of it (`subject: <host>/<item>`, e.g. `msg-caen-1/net.core.bpf_jit_harden`):
a finding is waived only when every failed item is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from policies import anssi
from relais.audit import baseline
from relais.audit.facts import HostFacts
from relais.audit.lynis import LynisReport
from relais.findings import Finding, RuleInfo, Severity, Status, WaiverNote
from relais.plan import Plan, PlannedHost

FAMILY = "audit"
REF_SSH = "ANSSI-NT-007 (OpenSSH)"


def _info(rule: str, title: str, source: str, hint: str, severity: Severity = Severity.ERROR) -> RuleInfo:
    return RuleInfo(id=rule, title=title, source=source, severity=severity, hint=hint, family=FAMILY)


DEPLOY_HINT = "run `relais deploy --limit <host>`: it restores the setting"
RULES: dict[str, RuleInfo] = {}
for _exp in anssi.SSHD:
    RULES[_exp.rule] = _info(_exp.rule, _exp.title, _exp.reference, DEPLOY_HINT)
RULES[baseline.ALLOW_GROUPS_RULE.rule] = _info(
    baseline.ALLOW_GROUPS_RULE.rule,
    baseline.ALLOW_GROUPS_RULE.title,
    baseline.ALLOW_GROUPS_RULE.reference,
    DEPLOY_HINT,
)
for _sys in (*anssi.SYSCTLS, *baseline.EXTRA_SYSCTLS):
    RULES.setdefault(_sys.rule, _info(_sys.rule, f"Sysctls of {_sys.reference}", _sys.reference, DEPLOY_HINT))
for _fw in anssi.FIREWALL:
    RULES[_fw.rule] = _info(_fw.rule, _fw.description + " (live nftables)", _fw.reference, DEPLOY_HINT)
RULES.update(
    {
        r.id: r
        for r in (
            _info(
                "ANSSI-BP028-R8",
                "Kernel command line hardens memory and IOMMU (R7/R8)",
                "BP-028 R7 (IOMMU), R8 (options de configuration de la mémoire)",
                "update-grub and reboot after the deploy wrote /etc/default/grub.d/relais-anssi.cfg",
            ),
            _info(
                "ANSSI-BP028-R39",
                "sudo defaults (use_pty, env_reset, ignore_dot, logfile)",
                "BP-028 R39–R43 (sudo)",
                DEPLOY_HINT,
            ),
            _info(
                "ANSSI-BP028-R31",
                "Password ageing, umask and hashing in login.defs (R31, R36, R68)",
                "BP-028 R31 (mots de passe), R36 (umask), R68 (stockage des mots de passe)",
                DEPLOY_HINT,
            ),
            _info(
                "ANSSI-BP028-R50", "Sensitive files have restricted permissions", "BP-028 R50", DEPLOY_HINT
            ),
            _info(
                "ANSSI-BP028-R58",
                "Only needed packages are installed (no cleartext remote shells, no compilers)",
                "BP-028 R58; CIS Debian 12 § 2.2; Lynis HRDN-7222",
                DEPLOY_HINT,
            ),
            _info("ANSSI-BP028-R62", "Unneeded services are disabled", "BP-028 R62", DEPLOY_HINT),
            _info(
                "ANSSI-BP028-R73",
                "auditd runs with the Relais ruleset",
                "BP-028 R73 (journalisation par auditd)",
                DEPLOY_HINT,
            ),
            _info(
                "ANSSI-BP028-R76",
                "Files are sealed (AIDE database present)",
                "BP-028 R76 (scellement)",
                DEPLOY_HINT,
            ),
            _info(
                "ANSSI-BP028-R79",
                "SSH is watched by fail2ban (sshd jail active)",
                "BP-028 R79 (durcir et surveiller les services exposés)",
                DEPLOY_HINT,
            ),
            _info(
                "LYNIS-01",
                "Lynis hardening index reaches the threshold",
                "Lynis (CISOfy), Debian package; threshold from `relais audit --lynis-threshold`",
                "read the host's Lynis suggestions (/var/log/lynis-report.dat) and harden further",
            ),
            _info(
                "LYNIS-02",
                "Lynis reports no warning",
                "Lynis (CISOfy), Debian package",
                "fix what the warning says (see /var/log/lynis.log on the host)",
                Severity.WARNING,
            ),
        )
    }
)


@dataclass
class Check:
    rule: str
    host: str
    failed: list[str]
    """Items that failed (keys, files, packages...); empty: passed."""
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None


def _sshd(facts: HostFacts, host: PlannedHost) -> Iterator[Check]:
    for exp in anssi.SSHD:
        actual = facts.sshd.get(exp.keyword, "")
        ok = bool(actual) and exp.satisfied_by(actual)
        yield Check(
            exp.rule,
            facts.host,
            [] if ok else [exp.keyword],
            f"sshd -T: {exp.keyword} is {actual or '(unset)'}, expected {exp.check} {exp.value}",
            {"sshd -T": f"{exp.keyword} {actual}", "expected": exp.config_line},
        )
    rule = baseline.ALLOW_GROUPS_RULE
    actual = facts.sshd.get(rule.keyword, "")
    wanted = baseline.allowed_groups(host)
    ok = sorted(actual.split()) == sorted(wanted)
    yield Check(
        rule.rule,
        facts.host,
        [] if ok else [rule.keyword],
        f"sshd -T: allowgroups is {actual or '(unset)'}, expected {' '.join(wanted)}",
        {"sshd -T": f"allowgroups {actual}", "expected": wanted},
    )


def _sysctls(facts: HostFacts, host: PlannedHost) -> Iterator[Check]:
    by_rule: dict[str, list[anssi.SysctlExpectation]] = {}
    for exp in (*anssi.sysctls_for(ipv6=baseline.host_serves_ipv6(host)), *baseline.EXTRA_SYSCTLS):
        by_rule.setdefault(exp.rule, []).append(exp)
    for rule, exps in by_rule.items():
        wrong = {
            e.key: facts.sysctls.get(e.key, "(absent)")
            for e in exps
            if e.key not in facts.sysctls or not e.satisfied_by(facts.sysctls[e.key])
        }
        yield Check(
            rule,
            facts.host,
            sorted(wrong),
            f"{len(wrong)} sysctl(s) differ: " + ", ".join(f"{k}={v}" for k, v in sorted(wrong.items())),
            {
                "differ": wrong,
                "expected": {e.key: e.value for e in exps if e.key in wrong},
                "checked": len(exps),
            },
        )


def _firewall(facts: HostFacts, plan: Plan, host: PlannedHost) -> Iterator[Check]:
    fw = facts.firewall
    evidence: dict[str, Any] = {
        "table": f"inet {baseline.NFT_TABLE}",
        "present": fw.table,
        "input policy": fw.input_policy,
    }
    if fw.error:
        evidence["nft"] = fw.error
    ok = fw.table and fw.input_hooked and fw.input_policy == "drop"
    yield Check(
        "ANSSI-FW-04",
        facts.host,
        [] if ok else ["policy"],
        f"inbound policy is {fw.input_policy or 'absent'} (table inet {baseline.NFT_TABLE} "
        f"{'present' if fw.table else 'missing'})",
        evidence,
    )

    wanted = {a.key() for a in baseline.allowances(plan, host)}
    live: set[tuple[str, int, tuple[str, ...]]] = set()
    unexplained: list[str] = []
    for rule in fw.rules:
        if rule.base:
            continue
        if not rule.ports or rule.protocol is None:
            unexplained.append(rule.text)  # accepts traffic on every port: never declared
            continue
        for port in rule.ports:
            live.add((rule.protocol, port, rule.sources))
    # A declared allowance may be written as one rule per address family: merge them.
    merged: dict[tuple[str, int], set[str]] = {}
    public: set[tuple[str, int]] = set()
    for proto, port, sources in live:
        if not sources:
            public.add((proto, port))
        merged.setdefault((proto, port), set()).update(sources)
    live_keys = {(p, n, () if (p, n) in public else tuple(sorted(s))) for (p, n), s in merged.items()}
    extra = sorted(live_keys - wanted)
    missing = sorted(wanted - live_keys)

    def fmt(item: tuple[str, int, tuple[str, ...]]) -> str:
        return f"{item[0]}/{item[1]} from {', '.join(item[2]) or 'any'}"

    items = (
        [f"open {fmt(e)}" for e in extra]
        + [f"missing {fmt(m)}" for m in missing]
        + [f"accept-all rule {t}" for t in unexplained]
    )
    yield Check(
        "ANSSI-FW-02",
        facts.host,
        items,
        "live firewall differs from the Plan: " + "; ".join(items),
        {
            "open but not declared": [fmt(e) for e in extra],
            "declared but not open": [fmt(m) for m in missing],
            "rules accepting any port": unexplained,
            "declared": [fmt(w) for w in sorted(wanted)],
        },
    )
    ssh_public = sorted(f"{p}/{n}" for p, n, s in live_keys if n == 22 and not s)
    yield Check(
        "ANSSI-FW-01",
        facts.host,
        ssh_public,
        "SSH is open to any source in the live firewall",
        {"ssh open to any": ssh_public},
    )
    wrong = sorted(f"{p}/{n}" for p, n, s in live_keys if not s and n not in anssi.PUBLIC_PORTS and n != 22)
    yield Check(
        "ANSSI-FW-03",
        facts.host,
        wrong,
        "non-public port(s) open to any source: " + ", ".join(wrong),
        {"non-public open to any": wrong},
    )


def _system(facts: HostFacts) -> Iterator[Check]:
    missing_args = [a for a in baseline.KERNEL_CMDLINE if a not in facts.cmdline.split()]
    yield Check(
        "ANSSI-BP028-R8",
        facts.host,
        missing_args,
        "kernel command line lacks " + " ".join(missing_args),
        {"/proc/cmdline": facts.cmdline, "missing": missing_args},
    )

    required = [name for name, described in baseline.SUDO_REQUIRED if described not in facts.sudo_defaults]
    yield Check(
        "ANSSI-BP028-R39",
        facts.host,
        required,
        "sudo defaults lack " + ", ".join(required),
        {"missing": required},
    )

    wrong_defs = {
        k: facts.login_defs.get(k, "(unset)") for k, v in baseline.LOGIN_DEFS if facts.login_defs.get(k) != v
    }
    yield Check(
        "ANSSI-BP028-R31",
        facts.host,
        sorted(wrong_defs),
        "login.defs: " + ", ".join(f"{k}={v}" for k, v in wrong_defs.items()),
        {"differ": wrong_defs, "expected": dict(baseline.LOGIN_DEFS)},
    )

    bad: dict[str, str] = {}
    for want in baseline.SENSITIVE_FILES:
        stat = facts.files.get(want.path)
        if stat is None or not stat.exists:
            bad[want.path] = "missing"
        elif not want.satisfied_by(stat.mode, stat.owner, stat.group):
            bad[want.path] = (
                f"{stat.mode:o} {stat.owner}:{stat.group}, expected at most "
                f"{want.mode:o} {want.owner}:{want.group}"
            )
    yield Check(
        "ANSSI-BP028-R50",
        facts.host,
        sorted(bad),
        "; ".join(f"{p}: {v}" for p, v in bad.items()),
        {"wrong": bad, "checked": len(baseline.SENSITIVE_FILES)},
    )

    present = sorted(set(baseline.UNNEEDED_PACKAGES) & facts.packages)
    yield Check(
        "ANSSI-BP028-R58",
        facts.host,
        present,
        "unneeded packages installed: " + ", ".join(present),
        {"installed": present},
    )

    running = sorted(
        u
        for u, (enabled, active) in facts.units.items()
        if enabled in ("enabled", "static", "alias") or active in ("active", "activating")
    )
    yield Check(
        "ANSSI-BP028-R62",
        facts.host,
        running,
        "unneeded services enabled or running: " + ", ".join(running),
        {"enabled or active": running},
    )

    loaded = [r for r in facts.audit_rules if r.startswith("-")]
    auditd_ok = facts.auditd_active == "active" and any("identity" in r for r in loaded)
    yield Check(
        "ANSSI-BP028-R73",
        facts.host,
        [] if auditd_ok else ["auditd"],
        f"auditd is {facts.auditd_active or 'absent'} with {len(loaded)} rule(s) loaded",
        {
            "auditd": facts.auditd_active,
            "rules loaded": len(loaded),
            "auditctl": " ".join(facts.audit_rules[:2])[:200],
            "virtualization": facts.virtualization,
        },
    )

    yield Check(
        "ANSSI-BP028-R76",
        facts.host,
        [] if facts.aide_db else ["aide.db"],
        "no AIDE database (/var/lib/aide/aide.db)",
        {"aide database": facts.aide_db},
    )

    jail = "Status for the jail: sshd" in facts.fail2ban
    yield Check(
        "ANSSI-BP028-R79",
        facts.host,
        [] if jail else ["fail2ban"],
        "fail2ban's sshd jail is not active",
        {"fail2ban-client status sshd": facts.fail2ban[:300]},
    )


def host_checks(facts: HostFacts, plan: Plan) -> list[Check]:
    host = plan.host(facts.host)
    if facts.sshd_error:
        checks = [
            Check(e.rule, facts.host, [e.keyword], f"sshd -T failed: {facts.sshd_error}", {})
            for e in anssi.SSHD
        ]
    else:
        checks = list(_sshd(facts, host))
    return [*checks, *_sysctls(facts, host), *_firewall(facts, plan, host), *_system(facts)]


def lynis_checks(host: str, report: LynisReport | None, error: str | None, threshold: int) -> list[Check]:
    if report is None or report.hardening_index is None:
        why = error or "Lynis produced no hardening index"
        return [Check("LYNIS-01", host, ["lynis"], f"Lynis did not run: {why}", {"error": why})]
    index = report.hardening_index
    warnings = [f"{w.test}: {w.text}" + (f" ({w.details})" if w.details else "") for w in report.warnings]
    return [
        Check(
            "LYNIS-01",
            host,
            [] if index >= threshold else ["index"],
            f"Lynis hardening index {index} is below {threshold}",
            {
                "hardening_index": index,
                "threshold": threshold,
                "version": report.version,
                "suggestions": len(report.suggestions),
            },
        ),
        Check(
            "LYNIS-02",
            host,
            [w.test for w in report.warnings],
            f"Lynis warnings: {'; '.join(warnings)}",
            {"warnings": warnings},
        ),
    ]


def to_findings(checks: list[Check], plan: Plan, today: str) -> list[Finding]:
    active = {
        (w.rule, w.subject): WaiverNote(w.reason, w.expires) for w in plan.waivers if w.expires >= today
    }
    findings = []
    for c in checks:
        info = RULES[c.rule]
        severity = c.severity or info.severity
        if not c.failed:
            findings.append(Finding(c.rule, c.host, severity, Status.PASSED, "ok", c.evidence))
            continue
        whole = active.get((c.rule, c.host)) or active.get((c.rule, "*"))
        notes = [active.get((c.rule, f"{c.host}/{item}")) for item in c.failed]
        note = whole or (notes[0] if all(notes) else None)
        evidence = dict(c.evidence)
        if note is None and any(notes):
            evidence["waived items"] = [i for i, n in zip(c.failed, notes, strict=True) if n]
        findings.append(
            Finding(
                c.rule,
                c.host,
                severity,
                Status.WAIVED if note else Status.FAILED,
                c.message,
                evidence,
                info.hint,
                None,
                note,
            )
        )
    return findings
