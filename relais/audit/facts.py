"""Live facts of one host, read in one SSH round trip, and their pure parsers.

The script runs as root (sudo through the deploy account once root login is closed) and
prints sections; `parse()` turns them into :class:`HostFacts`. Everything is read from
the running system (`sshd -T`, `sysctl -a`, `nft -j list ruleset`, `stat`, dpkg,
systemctl, `sudo -V`, fail2ban-client, auditctl, /proc/cmdline), never from our own files.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from relais.audit import baseline

MARK = "@@relais-audit@@ "


@dataclass(frozen=True)
class FileStat:
    path: str
    exists: bool
    mode: int = 0
    owner: str = ""
    group: str = ""


@dataclass(frozen=True)
class LiveRule:
    """One accept rule of the input chain, as nft describes it."""

    protocol: str | None
    ports: tuple[int, ...]
    sources: tuple[str, ...]
    """() when the rule matches any source."""
    base: bool
    """Connection tracking, loopback or ICMP: not a port allowance."""
    text: str


@dataclass
class Firewall:
    table: bool = False
    input_policy: str | None = None
    input_hooked: bool = False
    rules: list[LiveRule] = field(default_factory=list)
    error: str | None = None


@dataclass
class HostFacts:
    host: str
    sshd: dict[str, str] = field(default_factory=dict)
    sshd_error: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    firewall: Firewall = field(default_factory=Firewall)
    files: dict[str, FileStat] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    sudo_defaults: str = ""
    fail2ban: str = ""
    auditd_active: str = ""
    audit_rules: list[str] = field(default_factory=list)
    cmdline: str = ""
    login_defs: dict[str, str] = field(default_factory=dict)
    aide_db: bool = False
    virtualization: str = ""


def script() -> str:
    """The shell script that prints every section (run as root)."""
    files = " ".join(shlex.quote(f.path) for f in baseline.SENSITIVE_FILES)
    units = " ".join(shlex.quote(u) for u in baseline.UNNEEDED_SERVICES)
    keys = "|".join(key for key, _ in baseline.LOGIN_DEFS)
    sections = [
        ("sshd", "sshd -T 2>&1"),
        ("sysctl", "sysctl -a 2>/dev/null"),
        ("nft", "nft -j list ruleset 2>&1"),
        ("stat", f'for f in {files}; do stat -c \'%n|%a|%U|%G\' "$f" 2>/dev/null || echo "$f|missing"; done'),
        ("packages", "dpkg-query -W -f='${Package}|${db:Status-Abbrev}\\n' 2>/dev/null"),
        (
            "units",
            f'for u in {units}; do echo "$u|$(systemctl is-enabled "$u" 2>/dev/null)|'
            '$(systemctl is-active "$u" 2>/dev/null)"; done',
        ),
        ("sudo", "sudo -V 2>&1"),
        ("fail2ban", "fail2ban-client status sshd 2>&1"),
        ("auditd", "systemctl is-active auditd 2>&1"),
        ("auditrules", "auditctl -l 2>&1"),
        ("cmdline", "cat /proc/cmdline"),
        ("logindefs", f"grep -E '^[[:space:]]*({keys})[[:space:]]' /etc/login.defs"),
        ("aide", "test -s /var/lib/aide/aide.db && echo present || echo absent"),
        ("virt", "systemd-detect-virt 2>&1"),
    ]
    return "\n".join(f"echo '{MARK}{name}'; {command}" for name, command in sections) + "\n"


def split_sections(output: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def parse_sshd(lines: list[str]) -> tuple[dict[str, str], str | None]:
    """`sshd -T`: `keyword value...`, lowercase keywords; repeated keywords are joined."""
    values: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        values[key] = (
            f"{values[key]} {value}" if key in values and key in ("allowgroups", "allowusers") else value
        )
    if "permitrootlogin" not in values:
        return {}, " ".join(lines[-3:]) or "sshd -T printed nothing"
    return values, None


def parse_sysctls(lines: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = " ".join(value.split())
    return values


def _network(value: Any) -> list[str]:
    if isinstance(value, str):
        return [str(ipaddress.ip_network(value, strict=False))]
    if isinstance(value, dict):
        if "prefix" in value:
            prefix = value["prefix"]
            return [str(ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False))]
        if "set" in value:
            return [n for item in value["set"] for n in _network(item)]
        if "range" in value:
            low, high = value["range"]
            return [
                str(n)
                for n in ipaddress.summarize_address_range(
                    ipaddress.ip_address(low), ipaddress.ip_address(high)
                )
            ]
    if isinstance(value, list):
        return [n for item in value for n in _network(item)]
    return []


def _ports(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        if "set" in value:
            return [p for item in value["set"] for p in _ports(item)]
        if "range" in value:
            low, high = value["range"]
            return list(range(int(low), int(high) + 1))
    if isinstance(value, list):
        return [p for item in value for p in _ports(item)]
    return []


def _describe(expr: list[dict[str, Any]]) -> str:
    return json.dumps(expr, separators=(",", ":"), sort_keys=True)[:300]


def _is_base_match(left: dict[str, Any], payload: dict[str, Any] | None, right: Any) -> bool:
    """Connection tracking, loopback and ICMP matches: the chain's plumbing, not an allowance."""
    meta = left.get("meta", {}).get("key") if isinstance(left.get("meta"), dict) else None
    if isinstance(left.get("ct"), dict) and left["ct"].get("key") == "state":
        return True
    if meta in ("iif", "iifname") and right == "lo":
        return True
    if payload and payload.get("protocol") in ("icmp", "icmpv6") and payload.get("field") == "type":
        return True
    return meta == "l4proto" and right in ("icmp", "ipv6-icmp")


def parse_nft(text: str, table: str = baseline.NFT_TABLE) -> Firewall:
    """`nft -j list ruleset` -> our table's input chain: its policy and its accept rules."""
    fw = Firewall()
    try:
        data = json.loads(text)
    except ValueError:
        fw.error = text.strip()[:300] or "nft printed nothing"
        return fw
    objects = [o for o in data.get("nftables", []) if isinstance(o, dict)]
    for obj in objects:
        if "table" in obj and obj["table"].get("family") == "inet" and obj["table"].get("name") == table:
            fw.table = True
        chain = obj.get("chain")
        if (
            chain
            and chain.get("family") == "inet"
            and chain.get("table") == table
            and chain.get("name") == "input"
        ):
            fw.input_policy = chain.get("policy")
            fw.input_hooked = chain.get("hook") == "input"
    for obj in objects:
        rule = obj.get("rule")
        if (
            not rule
            or rule.get("family") != "inet"
            or rule.get("table") != table
            or rule.get("chain") != "input"
        ):
            continue
        expr: list[dict[str, Any]] = rule.get("expr", [])
        if not any("accept" in e for e in expr):
            continue
        protocol: str | None = None
        ports: list[int] = []
        sources: list[str] = []
        base = False
        for e in expr:
            match = e.get("match")
            if not match:
                continue
            left, right = match.get("left", {}), match.get("right")
            if not isinstance(left, dict):
                continue
            payload = left.get("payload")
            if payload and payload.get("field") == "dport":
                protocol = payload.get("protocol")
                ports += _ports(right)
            elif payload and payload.get("field") == "saddr":
                sources += _network(right)
            elif _is_base_match(left, payload, right):
                base = True
        fw.rules.append(
            LiveRule(
                protocol,
                tuple(sorted(set(ports))),
                tuple(sorted(set(sources))),
                base and not ports,
                _describe(expr),
            )
        )
    return fw


def parse_stat(lines: list[str]) -> dict[str, FileStat]:
    stats: dict[str, FileStat] = {}
    for line in lines:
        parts = line.split("|")
        if len(parts) == 2 and parts[1] == "missing":
            stats[parts[0]] = FileStat(parts[0], False)
        elif len(parts) == 4:
            stats[parts[0]] = FileStat(parts[0], True, int(parts[1], 8), parts[2], parts[3])
    return stats


def parse_packages(lines: list[str]) -> set[str]:
    """Installed packages (status `ii` or half-configured states that still hold files)."""
    installed = set()
    for line in lines:
        name, _, status = line.partition("|")
        if status.strip()[:2] in ("ii", "iU", "iF", "hi") or status.strip().startswith("i"):
            installed.add(name.split(":")[0])
    return installed


def parse_units(lines: list[str]) -> dict[str, tuple[str, str]]:
    units = {}
    for line in lines:
        parts = line.split("|")
        if len(parts) == 3:
            units[parts[0]] = (parts[1].strip(), parts[2].strip())
    return units


def parse_login_defs(lines: list[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            values[parts[0]] = parts[1]
    return values


def parse(host: str, output: str) -> HostFacts:
    s = split_sections(output)
    facts = HostFacts(host)
    facts.sshd, facts.sshd_error = parse_sshd(s.get("sshd", []))
    facts.sysctls = parse_sysctls(s.get("sysctl", []))
    facts.firewall = parse_nft("\n".join(s.get("nft", [])))
    facts.files = parse_stat(s.get("stat", []))
    facts.packages = parse_packages(s.get("packages", []))
    facts.units = parse_units(s.get("units", []))
    facts.sudo_defaults = "\n".join(s.get("sudo", []))
    facts.fail2ban = "\n".join(s.get("fail2ban", []))
    facts.auditd_active = " ".join(s.get("auditd", [])).strip()
    facts.audit_rules = s.get("auditrules", [])
    facts.cmdline = " ".join(s.get("cmdline", [])).strip()
    facts.login_defs = parse_login_defs(s.get("logindefs", []))
    facts.aide_db = "present" in s.get("aide", [])
    facts.virtualization = " ".join(s.get("virt", [])).strip()
    return facts
