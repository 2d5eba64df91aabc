"""What a hardened Relais host is, as data and pure renderers.

The hardening deploy (deploys/harden) writes these files and `relais audit` reads the
live host back against the same tables, as policies/anssi.py does for sshd and sysctls
(which this module reuses rather than repeats). Nothing here touches a host.

Rule ids follow policies/anssi.py: `ANSSI-SSH-nn` (ANSSI-NT-007, OpenSSH), `ANSSI-FW-nn`
(firewall), `ANSSI-BP028-Rnn` (ANSSI-BP-028 v2.0 recommendation number).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from policies import anssi
from relais import firewall
from relais.deploy.context import ADMIN_GROUP, DEPLOY_USER
from relais.errors import RelaisError
from relais.plan import Plan, PlannedHost

MANAGED = "Managed by Relais (deploys/harden): a hand edit is reverted by the next `relais deploy`."
NFT_TABLE = "relais"
NFT_CONF = "/etc/nftables.conf"
SSHD_CONFIG = "/etc/ssh/sshd_config"
SYSCTL_CONF = "/etc/sysctl.d/90-relais-anssi.conf"


class BaselineError(RelaisError):
    """The Plan does not say enough to harden a host (e.g. a peer without an address)."""


# --------------------------------------------------------------------------- sshd


@dataclass(frozen=True)
class SshdSetting:
    """An sshd keyword the audit reads from `sshd -T` besides policies/anssi.SSHD."""

    rule: str
    keyword: str
    config_name: str
    value: str
    reference: str
    title: str

    def satisfied_by(self, actual: str) -> bool:
        return actual.strip().lower() == self.value.lower()


BACKUP_GROUP = "relais-borg"
"""relais.backup.jobs.BORG_GROUP: on backup hosts the `borg` account logs in too (each of its
keys forced to `borg serve --append-only`)."""


def allowed_groups(host: PlannedHost) -> list[str]:
    """ANSSI-SSH-16: who may log in — the administrators, and on backup hosts the borg account."""
    return [ADMIN_GROUP, *([BACKUP_GROUP] if "backup" in host.roles else [])]


ALLOW_GROUPS_RULE = SshdSetting(
    "ANSSI-SSH-16",
    "allowgroups",
    "AllowGroups",
    ADMIN_GROUP,
    "NT-OpenSSH R20 (restreindre les utilisateurs autorisés: AllowGroups)",
    "Only the administrators group (and borg on backup hosts) may log in",
)

SSHD_TIGHTER = {"MaxAuthTries": "3"}
"""Where the deploy writes a stricter value than the bound policies/anssi.py checks (Lynis SSH-7408)."""

SSHD_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# Settings with no rule of their own: Lynis SSH-7408 and the dev-sec ssh baseline.
SSHD_HYGIENE: tuple[tuple[str, str], ...] = (
    ("Port", "22"),
    ("HostKey", SSHD_HOST_KEY),
    ("PubkeyAuthentication", "yes"),
    ("AuthenticationMethods", "publickey"),
    ("UsePAM", "yes"),
    ("LoginGraceTime", "30"),
    ("MaxSessions", "4"),  # pyinfra opens several channels at once (sftp and commands)
    ("MaxStartups", "10:30:60"),
    ("ClientAliveInterval", "300"),
    ("ClientAliveCountMax", "2"),
    ("TCPKeepAlive", "no"),
    ("Compression", "no"),
    ("PermitTunnel", "no"),
    ("GatewayPorts", "no"),
    ("AllowStreamLocalForwarding", "no"),
    ("HostbasedAuthentication", "no"),
    ("IgnoreRhosts", "yes"),
    ("PrintMotd", "no"),
    ("PrintLastLog", "yes"),
    ("Banner", "/etc/issue.net"),
    ("DebianBanner", "no"),
    ("SyslogFacility", "AUTH"),
    ("Subsystem", "sftp /usr/lib/openssh/sftp-server -f AUTHPRIV -l INFO"),
)


def sshd_config(host: PlannedHost) -> str:
    """The whole /etc/ssh/sshd_config. It has no `Include`: a drop-in cannot override it."""
    lines = [f"# {MANAGED}", "# Rules: policies/anssi.py (ANSSI-SSH-nn); docs/hardening.md.", ""]
    for exp in anssi.SSHD:
        lines.append(f"# {exp.rule}: {exp.title}")
        lines.append(
            f"{exp.config_name} {SSHD_TIGHTER[exp.config_name]}"
            if exp.config_name in SSHD_TIGHTER
            else exp.config_line
        )
    lines.append(f"# {ALLOW_GROUPS_RULE.rule}: {ALLOW_GROUPS_RULE.title}")
    lines.append(f"AllowGroups {' '.join(allowed_groups(host))}")
    lines += ["", "# Hygiene (Lynis SSH-7408, dev-sec ssh baseline)"]
    lines += [f"{key} {value}" for key, value in SSHD_HYGIENE]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- sysctl


def host_serves_ipv6(host: PlannedHost) -> bool:
    if not host.public_address:
        return False
    return ipaddress.ip_address(host.public_address).version == 6


def sysctls(host: PlannedHost) -> tuple[anssi.SysctlExpectation, ...]:
    """BP-028 R9 and R11–R14 (and CIS' additions) as sysctl.d lines. R10 (no module loading)
    is not among them: a unit sets it once the firewall has loaded its modules
    (MODULES_LOCK_UNIT)."""
    return (
        *(s for s in anssi.sysctls_for(ipv6=host_serves_ipv6(host)) if s.rule != "ANSSI-BP028-R10"),
        *EXTRA_SYSCTLS,
    )


def sysctl_conf(host: PlannedHost) -> str:
    return f"# {MANAGED}\n" + anssi.sysctl_conf(sysctls(host))


MODULES_LOCK_UNIT = f"""\
# {MANAGED}
# ANSSI-BP028-R10: no kernel module is loaded once the firewall and fail2ban have loaded
# theirs. kernel.* is read-only in a container: the unit is then skipped, never failed,
# and `relais audit` reports R10 (waived in the lab).
[Unit]
Description=Forbid loading kernel modules (ANSSI BP-028 R10)
After=nftables.service fail2ban.service
ConditionPathIsReadWrite=/proc/sys/kernel

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/sysctl -w kernel.modules_disabled=1

[Install]
WantedBy=multi-user.target
"""

# --------------------------------------------------------------------------- firewall


@dataclass(frozen=True, order=True)
class Allowance:
    """One inbound allowance with its sources resolved to networks; () means any source."""

    protocol: str
    port: int
    sources: tuple[str, ...]
    purpose: str = ""

    @property
    def public(self) -> bool:
        return not self.sources

    def key(self) -> tuple[str, int, tuple[str, ...]]:
        return (self.protocol, self.port, self.sources)


def _network(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False))


def resolve_source(plan: Plan, source: str) -> list[str]:
    """A Plan source as networks: a CIDR, [] for 'any', or a `host:<name>` peer's address."""
    if source == firewall.ANY:
        return []
    if source.startswith("host:"):
        name = source.removeprefix("host:")
        try:
            peer = plan.host(name)
        except KeyError:
            raise BaselineError(f"firewall source {source!r} names no host of the Plan") from None
        addresses = [a for a in (peer.address, peer.public_address) if a]
        if not addresses:
            raise BaselineError(
                f"firewall source {source!r}: host {name} has no address yet",
                hint="provision it (`relais provision up`) or declare its address",
            )
        return sorted({_network(a) for a in addresses})
    try:
        return [_network(source)]
    except ValueError:
        raise BaselineError(f"firewall source {source!r} is not a network") from None


def allowances(plan: Plan, host: PlannedHost) -> list[Allowance]:
    """The host's inbound allowances (PlannedHost.firewall only), sources resolved."""
    result: list[Allowance] = []
    for rule in host.firewall:
        resolved: set[str] = set()
        public = False
        for source in rule.sources:
            networks = resolve_source(plan, source)
            if not networks:
                public = True
            resolved.update(networks)
        result.append(
            Allowance(rule.protocol, rule.port, () if public else tuple(sorted(resolved)), rule.purpose)
        )
    return sorted(result)


def _family_sets(sources: Iterable[str]) -> list[tuple[str, list[str]]]:
    v4 = [s for s in sources if ipaddress.ip_network(s).version == 4]
    v6 = [s for s in sources if ipaddress.ip_network(s).version == 6]
    return [(family, nets) for family, nets in (("ip", v4), ("ip6", v6)) if nets]


def nft_ruleset(plan: Plan, host: PlannedHost) -> str:
    """/etc/nftables.conf: our own table, replaced atomically (`table; delete table; table {}`),
    so other tables (fail2ban's) survive a reload. Inbound: default drop (ANSSI-FW-04),
    established/related, loopback, the ICMP ANSSI allows, then only the Plan's allowances.
    Outbound is not filtered: hosts reach DNS, the package proxy and their peers."""
    lines = [
        "#!/usr/sbin/nft -f",
        f"# {MANAGED}",
        "# Inbound allowances: PlannedHost.firewall of the Plan (`relais plan --json`).",
        f"table inet {NFT_TABLE}",
        f"delete table inet {NFT_TABLE}",
        f"table inet {NFT_TABLE} {{",
        "  chain input {",
        "    # ANSSI-FW-04: everything not allowed below is dropped",
        "    type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        '    iif "lo" accept',
        '    iif != "lo" ip daddr 127.0.0.0/8 drop',
        "    ip protocol icmp icmp type { echo-request, destination-unreachable, time-exceeded, "
        "parameter-problem } limit rate 10/second accept",
        "    meta l4proto ipv6-icmp icmpv6 type { echo-request, destination-unreachable, packet-too-big, "
        "time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, "
        "nd-neighbor-advert } accept",
    ]
    for allow in allowances(plan, host):
        comment = allow.purpose.replace('"', "'")
        match = f"{allow.protocol} dport {allow.port}"
        if allow.public:
            lines.append(f'    {match} accept comment "{comment}"')
            continue
        for family, nets in _family_sets(allow.sources):
            lines.append(f'    {match} {family} saddr {{ {", ".join(nets)} }} accept comment "{comment}"')
    lines += [
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "  }",
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- fail2ban


def controller_address(plan: Plan, host: PlannedHost, env_address: str | None) -> str | None:
    """Where the controller connects from: the lab gateway in the lab, else
    RELAIS_CONTROLLER_ADDRESS when the operator sets it."""
    if host.provider == "lab":
        return plan.lab.gateway
    return env_address or None


def fail2ban_jail(controller: str | None) -> str:
    """jail.local: the sshd jail on the systemd journal, nftables bans. The controller is
    never banned: a typo in a deploy must not lock the syndicate out of its hosts."""
    ignore = " ".join(["127.0.0.1/8", "::1", *([controller] if controller else [])])
    return (
        f"# {MANAGED}\n"
        "[DEFAULT]\n"
        "banaction = nftables-multiport\n"
        "banaction_allports = nftables-allports\n"
        "backend = systemd\n"
        f"ignoreip = {ignore}\n"
        "bantime = 1h\n"
        "findtime = 10m\n"
        "maxretry = 4\n"
        "\n"
        "[sshd]\n"
        "enabled = true\n"
        "mode = aggressive\n"
        "port = ssh\n"
    )


# --------------------------------------------------------------------------- auditd

AUDIT_RULES = f"""\
## {MANAGED}
## ANSSI-BP028-R73: log the system's activity (BP-028 annex: auditd rules).
-D
-b 8192
-f 1
## Changes of identity, authentication and privileges
-w /etc/passwd -p wa -k identity
-w /etc/group -p wa -k identity
-w /etc/shadow -p wa -k identity
-w /etc/gshadow -p wa -k identity
-w /etc/sudoers -p wa -k privileges
-w /etc/sudoers.d/ -p wa -k privileges
-w /etc/ssh/sshd_config -p wa -k sshd
-w /var/log/faillog -p wa -k logins
-w /var/log/lastlog -p wa -k logins
## Kernel modules and mounts
-w /sbin/insmod -p x -k modules
-w /sbin/rmmod -p x -k modules
-w /sbin/modprobe -p x -k modules
-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules
-a always,exit -F arch=b64 -S mount,umount2 -k mounts
## Every command run as root by a logged-in user (imputability)
-a always,exit -F arch=b64 -S execve -F euid=0 -F auid>=1000 -F auid!=unset -k root-commands
## Time changes
-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time
-w /etc/localtime -p wa -k time
## Firewall
-w /etc/nftables.conf -p wa -k firewall
"""

# --------------------------------------------------------------------------- files, packages, services


@dataclass(frozen=True)
class FileMode:
    """A sensitive path (BP-028 R50) and the most it may allow: `mode` is a ceiling, a
    tighter mode passes."""

    path: str
    mode: int
    owner: str
    group: str

    def satisfied_by(self, mode: int, owner: str, group: str) -> bool:
        return mode & ~self.mode == 0 and owner == self.owner and group == self.group


SENSITIVE_FILES: tuple[FileMode, ...] = (
    FileMode("/etc/shadow", 0o640, "root", "shadow"),
    FileMode("/etc/gshadow", 0o640, "root", "shadow"),
    FileMode("/etc/passwd", 0o644, "root", "root"),
    FileMode("/etc/group", 0o644, "root", "root"),
    FileMode("/etc/sudoers", 0o440, "root", "root"),
    FileMode("/etc/sudoers.d", 0o750, "root", "root"),
    FileMode(SSHD_CONFIG, 0o600, "root", "root"),
    FileMode(SSHD_HOST_KEY, 0o600, "root", "root"),
    FileMode("/etc/crontab", 0o600, "root", "root"),
    FileMode("/etc/cron.d", 0o700, "root", "root"),
    FileMode("/etc/cron.daily", 0o700, "root", "root"),
    FileMode("/etc/cron.hourly", 0o700, "root", "root"),
    FileMode("/etc/cron.weekly", 0o700, "root", "root"),
    FileMode("/etc/cron.monthly", 0o700, "root", "root"),
    FileMode("/etc/at.allow", 0o600, "root", "root"),
    FileMode("/etc/cron.allow", 0o600, "root", "root"),
    FileMode(NFT_CONF, 0o600, "root", "root"),
    FileMode(SYSCTL_CONF, 0o600, "root", "root"),
    FileMode("/etc/audit/rules.d/relais.rules", 0o600, "root", "root"),
    FileMode("/etc/security/limits.d", 0o755, "root", "root"),
    FileMode("/root", 0o700, "root", "root"),
    FileMode("/var/log/journal", 0o2755, "root", "systemd-journal"),
)
"""Every one exists after the deploy (it creates the allow files and installs cron); a
missing one is reported as such."""

UNNEEDED_PACKAGES: tuple[str, ...] = (
    "telnet",
    "inetutils-telnet",
    "telnetd",
    "rsh-client",
    "rsh-server",
    "nis",
    "talk",
    "talkd",
    "ftp",
    "tnftp",
    "tftp-hpa",
    "tftpd-hpa",
    "xinetd",
    "openbsd-inetd",
    "avahi-daemon",
    "cups",
    "rpcbind",
    "nfs-kernel-server",
    "samba",
    "snmpd",
    "slapd",
    "vsftpd",
    "isc-dhcp-server",
    "bind9",
    "squid",
    "gcc",
    "g++",
    "make",
    "tcc",
    "clang",
)
"""BP-028 R58: what a messaging host needs not (cleartext remote shells, discovery and
printing daemons, file sharing) and compilers (Lynis HRDN-7222). binutils stays: needrestart
and chkrootkit depend on it; its assembler is restricted to root instead (COMPILERS)."""

COMPILERS: tuple[str, ...] = ("/usr/bin/x86_64-linux-gnu-as", "/usr/bin/x86_64-linux-gnu-ld.bfd")
"""Lynis HRDN-7222: compilers left by dependencies are executable by root only
(dpkg-statoverride, so upgrades keep it)."""

UNNEEDED_SERVICES: tuple[str, ...] = (
    "avahi-daemon.service",
    "cups.service",
    "rpcbind.service",
    "rpcbind.socket",
    "nfs-server.service",
    "smbd.service",
    "snmpd.service",
    "xinetd.service",
    "inetd.service",
    "bluetooth.service",
    "ModemManager.service",
    "debug-shell.service",
)
"""BP-028 R62: services no Relais host runs (none is enabled or active)."""

HARDENING_PACKAGES: tuple[str, ...] = (
    "fail2ban",
    "python3-systemd",
    "auditd",
    "audispd-plugins",
    "lynis",
    "libpam-pwquality",
    "libpam-tmpdir",
    "apt-show-versions",
    "debsums",
    "acct",
    "sysstat",
    "chkrootkit",
    "rsyslog",
    "cron",
    "aide",
    "aide-common",
    "needrestart",
)
"""fail2ban (sshd bans, on the journal), auditd (R73), lynis (the audit), password quality
(R31), per-user temporary directories (R55: the deploy uploads through /tmp, see
relais/deploy/runner.py), package integrity and versions (debsums,
apt-show-versions), process accounting and statistics (acct, sysstat),
a rootkit scanner (chkrootkit: rkhunter needs binutils, a compiler toolchain R58 removes),
a syslog daemon for remote forwarding, cron for the periodic jobs, AIDE (R76: sealing of
files), needrestart (lists daemons to restart after upgrades; set to list only)."""

SUDO_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("use_pty", "ANSSI-BP028-R39"),
    ("env_reset", "ANSSI-BP028-R39"),
    ("ignore_dot", "ANSSI-BP028-R39"),
    ('logfile="/var/log/sudo.log"', "ANSSI-BP028-R39"),
    ("log_input,log_output", "ANSSI-BP028-R39"),
    ("passwd_timeout=1", "ANSSI-BP028-R39"),
    ("timestamp_timeout=5", "ANSSI-BP028-R39"),
)
"""Sudo `Defaults` (R39). Not set, on purpose (docs/hardening.md): `requiretty` (the
controller's deploy runs without a terminal), `noexec` (`sudo sh -c` runs commands), and a
global `umask=0077` (package scripts run by the deploy write world-readable files such as
the CA bundle)."""


def sudoers_defaults() -> str:
    lines = [f"# {MANAGED}", "# ANSSI-BP028-R39..R43: sudo defaults; see docs/hardening.md."]
    lines += [f"Defaults {value}" for value, _ in SUDO_DEFAULTS]
    # The deploy account installs packages: their scripts must see root's usual umask. Its
    # commands are logged (logfile) but not recorded keystroke by keystroke: a deploy runs
    # hundreds of them, people do not.
    lines.append(f"Defaults:{DEPLOY_USER} umask=0022, umask_override, !log_input, !log_output")
    return "\n".join(lines) + "\n"


SUDO_REQUIRED: tuple[tuple[str, str], ...] = (
    ("use_pty", "Always run commands in a pseudo-tty"),
    ("env_reset", "Reset the environment to a default set of variables"),
    ("ignore_dot", "Ignore '.' in $PATH"),
    ("logfile", "Path to log file: /var/log/sudo.log"),
)
"""What the audit expects in `sudo -V` run as root (the Defaults in force, described in words)."""

LOGIN_DEFS: tuple[tuple[str, str], ...] = (
    ("UMASK", "027"),
    ("PASS_MAX_DAYS", "365"),
    ("PASS_MIN_DAYS", "1"),
    ("PASS_WARN_AGE", "14"),
    ("ENCRYPT_METHOD", "YESCRYPT"),
    ("SHA_CRYPT_MIN_ROUNDS", "5000"),
    ("SHA_CRYPT_MAX_ROUNDS", "50000"),
    ("LOG_OK_LOGINS", "yes"),
)
"""/etc/login.defs (BP-028 R31 R36 R68; Lynis AUTH-9230 AUTH-9286 AUTH-9328)."""

BANNER = (
    "Authorised access only. This system belongs to the syndicate and is monitored; every "
    "session is logged and may be used as evidence.\n"
    "Accès réservé aux personnes autorisées. Ce système est surveillé et journalisé.\n"
)

MODPROBE_BLACKLIST = f"""\
# {MANAGED}
# Storage and protocols a server never uses (CIS 1.1.1, Lynis STRG-1840 STRG-1846 NETW-3200).
install usb-storage /bin/false
install firewire-core /bin/false
install firewire-ohci /bin/false
install firewire-sbp2 /bin/false
install thunderbolt /bin/false
install dccp /bin/true
install sctp /bin/true
install rds /bin/true
install tipc /bin/true
blacklist dccp
blacklist sctp
blacklist rds
blacklist tipc
install cramfs /bin/false
install freevxfs /bin/false
install hfs /bin/false
install hfsplus /bin/false
install jffs2 /bin/false
install udf /bin/false
blacklist usb-storage
blacklist firewire-core
"""

KERNEL_CMDLINE: tuple[str, ...] = (
    "iommu=force",
    "page_alloc.shuffle=1",
    "slab_nomerge",
    "pti=on",
    "init_on_alloc=1",
    "init_on_free=1",
    "randomize_kstack_offset=on",
    "vsyscall=none",
    "debugfs=off",
    "lockdown=integrity",
)
"""BP-028 R7 (IOMMU) and R8 (memory): the kernel command line. Written to GRUB's drop-in;
a container shares its host's kernel, so the lab waives it."""


def grub_cmdline() -> str:
    return (
        f"# {MANAGED}\n# ANSSI-BP028-R7/R8: kernel command line.\n"
        f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {" ".join(KERNEL_CMDLINE)}"\n'
    )


EXTRA_SYSCTLS: tuple[anssi.SysctlExpectation, ...] = anssi._sysctls(
    "CIS-SYSCTL-01",
    "CIS Debian Linux 12 § 3.3 (paramètres réseau); Lynis KRNL-6000",
    "net",
    {
        "net.ipv4.conf.all.log_martians": "1",
        "net.ipv4.conf.default.log_martians": "1",
        "net.ipv4.icmp_echo_ignore_broadcasts": "1",
        "net.ipv6.conf.all.accept_redirects": "0",
        "net.ipv6.conf.default.accept_redirects": "0",
        "net.ipv6.conf.all.accept_source_route": "0",
        "net.ipv6.conf.default.accept_source_route": "0",
    },
)
"""Network sysctls CIS adds to BP-028 R12/R13 (martians logged, no IPv6 redirects)."""

AUDITD_CONTAINER_DROPIN = f"""\
# {MANAGED}
# ANSSI-BP028-R73: auditd needs the kernel's audit socket (process accounting, the kernel's
# acct(2)), which a container does not own: there the unit is skipped instead of failing
# (the audit reports R73, waived in the lab). Hosts are VMs in production.
[Unit]
ConditionVirtualization=!container
"""
CONTAINER_SKIPPED_UNITS = ("auditd.service", "acct.service")

SYSSTAT_DEFAULT = f'# {MANAGED}\n# Lynis ACCT-9626: collect system activity.\nENABLED="true"\n'
SHM_FSTAB = "tmpfs\t/dev/shm\ttmpfs\tdefaults,nodev,nosuid,noexec\t0\t0"
"""BP-028 R28 (partitionnement: options de montage), CIS 1.1.2.2."""

AIDE_CHECKSUMS = "Checksums = sha512"
"""/etc/aide/aide.conf's checksum group (Debian's default is its own group H)."""

CORE_DUMPS_LIMITS = (
    f"# {MANAGED}\n# No core dumps (BP-028 R14 with fs.suid_dumpable; Lynis KRNL-5820).\n"
    "* hard core 0\n* soft core 0\n"
)
CORE_DUMPS_SYSTEMD = f"# {MANAGED}\n[Coredump]\nStorage=none\nProcessSizeMax=0\n"
SESSION_TIMEOUT = (
    f"# {MANAGED}\n# Idle shells end after 15 minutes (BP-028 R32; CIS 5.4.3.2).\n"
    "TMOUT=900\nreadonly TMOUT\nexport TMOUT\n"
)


CHKROOTKIT_CONF_PATH = "/etc/chkrootkit/chkrootkit.conf"
CHKROOTKIT_CONF = f"""# {MANAGED}
# Daily scan; its output is compared with /var/log/chkrootkit/log.expected (which an
# operator writes once the first report is reviewed). No MAILTO: hosts run no mail
# system, so the report goes to the journal (chkrootkit.service) instead of failing.
RUN_DAILY="true"
RUN_DAILY_OPTS=""
DIFF_MODE="true"
MAILTO=""
"""
