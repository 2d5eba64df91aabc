"""ANSSI hardening expectations, expressed once as data, and the rules the Plan can check.

The hardening deploy writes these values (sshd_config, sysctl.d, nftables) and `relais
audit` reads them back from live hosts (`sshd -T`, `sysctl`, `nft list ruleset`) against
the same tables, so the expectation, the deploy and the audit cannot drift apart. Each
expectation carries its own stable rule id, so a waiver can name exactly one (a lab host
cannot set `kernel.*` sysctls: waive ANSSI-BP028-R9 for it, not all of BP-028).

Sources:
- ANSSI-NT-007, « Recommandations pour un usage sécurisé d'(Open)SSH » (v1.2, 2015),
  cited as NT-OpenSSH with the recommendation number where it has one;
- ANSSI-BP-028, « Recommandations de configuration d'un système GNU/Linux » (v2.0, 2022),
  cited as BP-028 with its recommendation number;
- settings with no ANSSI recommendation of their own (MaxAuthTries, LogLevel, the modern
  algorithm lists) cite the reference they come from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from policies.engine import Context, Outcome, rule
from relais import firewall
from relais.findings import Severity
from relais.plan import Plan

FAMILY = "anssi"

# --------------------------------------------------------------------------- sshd


@dataclass(frozen=True)
class SshdExpectation:
    """One `sshd -T` keyword (lowercase, as `sshd -T` prints it) and what it must be.

    equals: the value itself; at_most: an integer bound; subset: a comma-separated list
    whose every item is in `allowed` (the deploy writes the whole allowed list).
    """

    rule: str
    keyword: str
    config_name: str
    check: Literal["equals", "at_most", "subset"]
    value: str
    reference: str
    title: str
    allowed: frozenset[str] = frozenset()

    def satisfied_by(self, actual: str) -> bool:
        actual = actual.strip()
        if self.check == "equals":
            return actual.lower() == self.value.lower()
        if self.check == "at_most":
            try:
                return int(actual) <= int(self.value)
            except ValueError:
                return False
        items = {a.strip() for a in actual.split(",") if a.strip()}
        return bool(items) and items <= self.allowed

    @property
    def config_line(self) -> str:
        """The sshd_config line the hardening deploy writes."""
        return f"{self.config_name} {self.value}"


CIPHERS = ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
           "aes256-ctr", "aes192-ctr", "aes128-ctr")
MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512", "hmac-sha2-256")
KEX = ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org",
       "diffie-hellman-group18-sha512", "diffie-hellman-group16-sha512")


def _equals(rule_id: str, name: str, value: str, reference: str, title: str) -> SshdExpectation:
    return SshdExpectation(rule_id, name.lower(), name, "equals", value, reference, title)


def _subset(rule_id: str, name: str, values: tuple[str, ...], reference: str, title: str) -> SshdExpectation:
    return SshdExpectation(rule_id, name.lower(), name, "subset", ",".join(values), reference, title,
                           frozenset(values))


SSHD: tuple[SshdExpectation, ...] = (
    _equals("ANSSI-SSH-01", "PermitRootLogin", "no", "NT-OpenSSH R21 (imputabilité des accès)",
            "No direct root login: operators log in by name, then escalate"),
    _equals("ANSSI-SSH-02", "PasswordAuthentication", "no", "NT-OpenSSH R17–R18 (authentification "
            "par clé)", "Key authentication only"),
    _equals("ANSSI-SSH-03", "KbdInteractiveAuthentication", "no", "NT-OpenSSH R17–R18",
            "No keyboard-interactive (password) authentication"),
    _equals("ANSSI-SSH-04", "PermitEmptyPasswords", "no", "NT-OpenSSH R21", "No empty passwords"),
    SshdExpectation("ANSSI-SSH-05", "maxauthtries", "MaxAuthTries", "at_most", "4",
                    "CIS Debian Linux 12 Benchmark (sshd MaxAuthTries ≤ 4); "
                    "NT-OpenSSH § authentification",
                    "At most 4 authentication attempts per connection"),
    _equals("ANSSI-SSH-06", "LogLevel", "VERBOSE", "BP-028 (journalisation); Mozilla OpenSSH "
            "guidelines (fingerprint of the key used in every login)",
            "Log the key fingerprint of each login, for imputability"),
    _equals("ANSSI-SSH-07", "AllowTcpForwarding", "no", "NT-OpenSSH R27",
            "No TCP forwarding: a host is not a bastion"),
    _equals("ANSSI-SSH-08", "X11Forwarding", "no", "NT-OpenSSH R28", "No X11 forwarding"),
    _equals("ANSSI-SSH-09", "AllowAgentForwarding", "no", "NT-OpenSSH § redirection d'agent",
            "No agent forwarding"),
    _equals("ANSSI-SSH-10", "PermitUserEnvironment", "no", "NT-OpenSSH R23",
            "Users cannot alter sshd's environment"),
    _equals("ANSSI-SSH-11", "StrictModes", "yes", "NT-OpenSSH § droits d'accès aux clés",
            "sshd refuses keys with loose permissions"),
    _subset("ANSSI-SSH-12", "Ciphers", CIPHERS, "NT-OpenSSH § algorithmes symétriques (AES-CTR); "
            "AEAD ciphers per the ANSSI cryptographic guide (RGS B1)", "Only strong ciphers"),
    _subset("ANSSI-SSH-13", "MACs", MACS, "NT-OpenSSH § intégrité (HMAC-SHA2)",
            "Only SHA-2 MACs"),
    _subset("ANSSI-SSH-14", "KexAlgorithms", KEX, "ANSSI guide de sélection d'algorithmes "
            "cryptographiques (2021): ECDH on Curve25519, DH ≥ 3072 bits", "Only strong key exchanges"),
)

# --------------------------------------------------------------------------- sysctl


@dataclass(frozen=True)
class SysctlExpectation:
    rule: str
    key: str
    value: str
    reference: str
    scope: Literal["kernel", "net", "fs"]
    """kernel.* sysctls are global: a container (the lab) cannot set them; net.* can with a
    veth/bridge network namespace; fs.* follow the kernel too."""

    def satisfied_by(self, actual: str) -> bool:
        return " ".join(actual.split()) == " ".join(self.value.split())


def _sysctls(rule_id: str, reference: str, scope: Literal["kernel", "net", "fs"],
             values: Mapping[str, str]) -> tuple[SysctlExpectation, ...]:
    return tuple(SysctlExpectation(rule_id, key, value, reference, scope) for key, value in values.items())


SYSCTLS: tuple[SysctlExpectation, ...] = (
    *_sysctls("ANSSI-BP028-R9", "BP-028 R9 (options de configuration du noyau)", "kernel", {
        "kernel.dmesg_restrict": "1",
        "kernel.kptr_restrict": "2",
        "kernel.pid_max": "65536",
        "kernel.perf_cpu_time_max_percent": "1",
        "kernel.perf_event_max_sample_rate": "1",
        "kernel.perf_event_paranoid": "2",
        "kernel.randomize_va_space": "2",
        "kernel.sysrq": "0",
        "kernel.unprivileged_bpf_disabled": "1",
        "kernel.panic_on_oops": "1",
    }),
    # R10 (kernel.modules_disabled=1) is applied last, once nftables' modules are loaded.
    *_sysctls("ANSSI-BP028-R10", "BP-028 R10 (désactiver le chargement des modules noyau)", "kernel", {
        "kernel.modules_disabled": "1",
    }),
    *_sysctls("ANSSI-BP028-R11", "BP-028 R11 (LSM Yama)", "kernel", {
        "kernel.yama.ptrace_scope": "1",
    }),
    *_sysctls("ANSSI-BP028-R12", "BP-028 R12 (configuration du réseau IPv4)", "net", {
        "net.core.bpf_jit_harden": "2",
        "net.ipv4.ip_forward": "0",
        "net.ipv4.conf.all.accept_local": "0",
        "net.ipv4.conf.all.accept_redirects": "0",
        "net.ipv4.conf.default.accept_redirects": "0",
        "net.ipv4.conf.all.secure_redirects": "0",
        "net.ipv4.conf.default.secure_redirects": "0",
        "net.ipv4.conf.all.shared_media": "0",
        "net.ipv4.conf.default.shared_media": "0",
        "net.ipv4.conf.all.accept_source_route": "0",
        "net.ipv4.conf.default.accept_source_route": "0",
        "net.ipv4.conf.all.arp_filter": "1",
        "net.ipv4.conf.all.arp_ignore": "2",
        "net.ipv4.conf.all.route_localnet": "0",
        "net.ipv4.conf.all.drop_gratuitous_arp": "1",
        "net.ipv4.conf.default.rp_filter": "1",
        "net.ipv4.conf.all.rp_filter": "1",
        "net.ipv4.conf.default.send_redirects": "0",
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.icmp_ignore_bogus_error_responses": "1",
        "net.ipv4.ip_local_port_range": "32768 65535",
        "net.ipv4.tcp_rfc1337": "1",
        "net.ipv4.tcp_syncookies": "1",
    }),
    # R13 applies to hosts without IPv6 service (no IPv6 public_address in the Plan).
    *_sysctls("ANSSI-BP028-R13", "BP-028 R13 (désactiver IPv6 s'il n'est pas utilisé)", "net", {
        "net.ipv6.conf.default.disable_ipv6": "1",
        "net.ipv6.conf.all.disable_ipv6": "1",
    }),
    *_sysctls("ANSSI-BP028-R14", "BP-028 R14 (options des systèmes de fichiers)", "fs", {
        "fs.suid_dumpable": "0",
        "fs.protected_fifos": "2",
        "fs.protected_regular": "2",
        "fs.protected_symlinks": "1",
        "fs.protected_hardlinks": "1",
    }),
)


def sysctls_for(*, ipv6: bool) -> tuple[SysctlExpectation, ...]:
    """The sysctls a host must have; R13 (no IPv6) only where the host does not serve IPv6."""
    return tuple(s for s in SYSCTLS if ipv6 is False or s.rule != "ANSSI-BP028-R13")


def sysctl_conf(expectations: tuple[SysctlExpectation, ...] = SYSCTLS) -> str:
    """/etc/sysctl.d/ content for the hardening deploy, grouped by rule."""
    lines: list[str] = []
    current = ""
    for exp in expectations:
        if exp.rule != current:
            current = exp.rule
            lines.append(f"# {exp.rule}: {exp.reference}")
        lines.append(f"{exp.key} = {exp.value}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- firewall


@dataclass(frozen=True)
class FirewallExpectation:
    rule: str
    description: str
    reference: str


DEFAULT_INBOUND_POLICY = "drop"
FIREWALL: tuple[FirewallExpectation, ...] = (
    FirewallExpectation("ANSSI-FW-01", "SSH is never reachable from 'any'",
                        "NT-OpenSSH R25 (écoute sur le réseau d'administration); BP-028 (cloisonnement)"),
    FirewallExpectation("ANSSI-FW-02", "A host opens only the ports its roles justify",
                        "BP-028 (principe de minimisation: services et flux)"),
    FirewallExpectation("ANSSI-FW-03", "Only public service ports are open to 'any'",
                        "BP-028 (cloisonnement des flux d'administration et de supervision)"),
    FirewallExpectation("ANSSI-FW-04", f"Inbound default policy is {DEFAULT_INBOUND_POLICY}",
                        "BP-028 (pare-feu local: tout ce qui n'est pas autorisé est interdit)"),
)

PUBLIC_PORTS = frozenset({firewall.HTTP, firewall.HTTPS, firewall.MATRIX_FEDERATION,
                          firewall.XMPP_C2S, firewall.XMPP_S2S})
"""Ports a messaging service must expose to the Internet (clients and federation)."""


def _metrics_ports() -> frozenset[int]:
    from relais.planner import (
        DEDICATED_METRICS_BASE,
        PROSODY_METRICS_PORT,
        SHARED_METRICS_PORT,
        SLOT_COUNT,
    )

    return frozenset({PROSODY_METRICS_PORT, SHARED_METRICS_PORT,
                      *range(DEDICATED_METRICS_BASE, DEDICATED_METRICS_BASE + SLOT_COUNT)})


def justified_ports(roles: list[str] | tuple[str, ...]) -> frozenset[int]:
    """Inbound ports a host with these roles may open (SSH and node exporter on every host)."""
    ports = {firewall.SSH, firewall.NODE_EXPORTER}
    if "proxy" in roles:
        ports |= {firewall.HTTP, firewall.HTTPS, firewall.MATRIX_FEDERATION}
    if "messaging" in roles:
        ports |= {firewall.XMPP_C2S, firewall.XMPP_S2S} | _metrics_ports()
    if "monitor" in roles:
        ports |= {firewall.PROMETHEUS, firewall.ALERTMANAGER}
    return frozenset(ports)


def _is_any(source: str) -> bool:
    if source == firewall.ANY:
        return True
    try:
        return ipaddress.ip_network(source, strict=False).prefixlen == 0
    except ValueError:
        return False


@rule("ANSSI-FW-01", title="SSH is never open to 'any'",
      source=FIREWALL[0].reference, severity=Severity.ERROR, family=FAMILY, subject="host",
      hint="declare the operators' networks in hosting.yaml network.admin_sources; SSH is then "
           "opened to them (and the controller) only")
def ssh_not_public(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Port 22 accepts connections from the operators' networks, the controller and backed-up
    hosts only; never from the whole Internet."""
    for h in plan.hosts:
        open_to_all = [r for r in h.firewall if r.port == firewall.SSH and any(map(_is_any, r.sources))]
        if open_to_all:
            yield Outcome(h.name, f"host {h.name} opens SSH (tcp/22) to the whole Internet",
                          {"sources": open_to_all[0].sources, "purpose": open_to_all[0].purpose})
        else:
            sources = sorted({s for r in h.firewall if r.port == firewall.SSH for s in r.sources})
            yield Outcome(h.name, evidence={"ssh_sources": sources})


@rule("ANSSI-FW-02", title="A host opens only the ports its roles justify",
      source=FIREWALL[1].reference, severity=Severity.ERROR, family=FAMILY, subject="host",
      field=("roles",),
      hint="give the host the role that needs the port (e.g. proxy for 443), or move the service "
           "to a host that has it")
def ports_justified(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Each inbound allowance must follow from one of the host's roles (proxy: 80/443/8448;
    messaging: XMPP and service metrics; monitor: Prometheus/Alertmanager; every host: SSH,
    node exporter)."""
    for h in plan.hosts:
        allowed = justified_ports(h.roles)
        extra = sorted({r.port for r in h.firewall if r.port not in allowed})
        if extra:
            purposes = sorted({r.purpose for r in h.firewall if r.port in extra})
            yield Outcome(h.name, f"host {h.name} ({', '.join(h.roles)}) opens port(s) "
                                  f"{', '.join(map(str, extra))} that its roles do not justify",
                          {"roles": h.roles, "ports": extra, "purposes": purposes})
        else:
            yield Outcome(h.name, evidence={"ports": sorted({r.port for r in h.firewall})})


@rule("ANSSI-FW-03", title="Only public service ports are open to 'any'",
      source=FIREWALL[2].reference, severity=Severity.ERROR, family=FAMILY, subject="host",
      hint="restrict administration and monitoring ports to the operators' and monitoring networks")
def admin_ports_not_public(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Metrics, Prometheus, Alertmanager and node exporter ports are for operators and the
    monitoring host; only HTTP(S), Matrix federation and XMPP face the Internet."""
    for h in plan.hosts:
        public = sorted({r.port for r in h.firewall if any(map(_is_any, r.sources))})
        wrong = [p for p in public if p not in PUBLIC_PORTS and p != firewall.SSH]
        if wrong:
            yield Outcome(h.name, f"host {h.name} opens non-public port(s) {', '.join(map(str, wrong))} "
                                  "to the whole Internet", {"ports": wrong})
        else:
            yield Outcome(h.name, evidence={"public_ports": public})


@rule("ANSSI-SSH-15", title="Operators log in with SSH keys",
      source="NT-OpenSSH R17–R18 (authentification par clé); BP-028 (comptes nominatifs)",
      severity=Severity.ERROR, family=FAMILY, subject="plan", field=("admins",),
      hint="declare each operator under admins: with at least one ssh_keys entry in hosting.yaml")
def operators_have_keys(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Password authentication is off (ANSSI-SSH-02), so hosts are reachable only if named
    operators with SSH keys are declared."""
    without = [a.login for a in plan.admins if not a.ssh_keys]
    if not plan.admins:
        yield Outcome("plan", "no operator is declared: nobody could log in with a key", {"admins": []})
    elif without:
        yield Outcome("plan", f"operator(s) {', '.join(without)} have no SSH key", {"without_keys": without})
    else:
        yield Outcome("plan", evidence={"admins": [a.login for a in plan.admins]})


RULES = (ssh_not_public, ports_justified, admin_ports_not_public, operators_have_keys)
