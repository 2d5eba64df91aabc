"""Hardening of every host: ANSSI BP-028 v2 (intermédiaire, and the cheap items of renforcé),
ANSSI's OpenSSH note, cross-checked with CIS Debian 12 and the dev-sec baselines.

Every operation is named after the rule it implements; the values come from
relais/audit/baseline.py and policies/anssi.py, which `relais audit` reads back from
the live host. Where the lab (a container) cannot apply a setting, the production setting
is written anyway and the audit reports the rule, waived in the inventory; nothing is
skipped silently. See docs/hardening.md.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from io import StringIO
from typing import Any

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd

from deploys.harden.facts import (
    EnabledUnits,
    FileDigests,
    FileModes,
    LiveSysctls,
    LoginDefs,
    MountOptions,
    NftablesDrift,
    PendingUpgrades,
    StatOverrides,
)
from relais.audit import baseline
from relais.deploy.context import DEPLOY_USER, HostContext

AIDE_DB = "/var/lib/aide/aide.db"
MODULES_LOCK = "relais-modules-lock.service"
LAB_WRITABLE_SYSCTLS = ("net.",)
"""In a container only the network namespace's sysctls are writable (docs/architecture.md)."""


class _Unchanged:
    """What `put` returns for a file already as wanted: no operation, nothing changed."""

    @staticmethod
    def did_change() -> bool:
        return False


MANAGED_FILES = (
    "/etc/needrestart/conf.d/relais.conf",
    baseline.SSHD_CONFIG,
    "/etc/issue.net",
    "/etc/issue",
    baseline.SYSCTL_CONF,
    f"/etc/systemd/system/{MODULES_LOCK}",
    "/etc/default/grub.d/relais-anssi.cfg",
    "/etc/modprobe.d/relais-blacklist.conf",
    "/etc/security/limits.d/relais-core.conf",
    "/etc/systemd/coredump.conf.d/relais.conf",
    baseline.NFT_CONF,
    "/etc/fail2ban/jail.local",
    *(f"/etc/systemd/system/{unit}.d/relais-container.conf" for unit in baseline.CONTAINER_SKIPPED_UNITS),
    "/etc/default/sysstat",
    "/etc/audit/rules.d/relais.rules",
    "/etc/profile.d/relais-umask.sh",
    "/etc/profile.d/relais-timeout.sh",
    "/etc/sudoers.d/00-relais-defaults",
    "/etc/at.allow",
    "/etc/cron.allow",
    baseline.CHKROOTKIT_CONF_PATH,
)
"""Every file the hardening writes: their digests are read in one command (FileDigests), so a
no-op deploy adds no operation for them (pyinfra's files.put costs several commands each)."""


def put(
    name: str,
    src: StringIO,
    dest: str,
    mode: str,
    user: str = "root",
    group: str = "root",
    create_remote_dir: bool = True,
) -> Any:
    """files.put, added only when the file's content, mode or owner differ."""
    content = src.getvalue()
    if dest in MANAGED_FILES:
        live = (host.get_fact(FileDigests, paths=MANAGED_FILES) or {}).get(dest)
        if live == (hashlib.sha1(content.encode()).hexdigest(), mode, user, group):
            return _Unchanged()
    return files.put(
        name=name,
        src=StringIO(content),
        dest=dest,
        mode=mode,
        user=user,
        group=group,
        create_remote_dir=create_remote_dir,
    )


@deploy("Hardening: packages")
def packages(ctx: HostContext) -> None:
    put(
        name="ANSSI-BP028-R61: needrestart lists, never restarts by itself",
        src=StringIO(f"# {baseline.MANAGED}\n$nrconf{{restart}} = 'l';\n"),
        dest="/etc/needrestart/conf.d/relais.conf",
        mode="644",
        create_remote_dir=True,
    )
    apt.packages(
        name="ANSSI-BP028-R58: remove unneeded packages and compilers",
        packages=list(baseline.UNNEEDED_PACKAGES),
        present=False,
        extra_uninstall_args="--purge",
    )
    # Before the package: its timer may fire as soon as it is installed (apt keeps this file).
    chkrootkit = put(
        name="ANSSI-BP028-R79: chkrootkit runs daily, reports to the journal (hosts run no mail system)",
        src=StringIO(baseline.CHKROOTKIT_CONF),
        dest=baseline.CHKROOTKIT_CONF_PATH,
        mode="644",
        create_remote_dir=True,
    )
    server.shell(
        name="ANSSI-BP028-R79: forget a chkrootkit run that failed under the old settings",
        commands=["systemctl reset-failed chkrootkit.service 2>/dev/null || true"],
        _if=chkrootkit.did_change,
    )
    apt.packages(
        name="ANSSI-BP028-R73/R79: install the hardening tools (auditd, fail2ban, lynis...)",
        packages=list(baseline.HARDENING_PACKAGES),
        no_recommends=True,
        cache_time=3600,
    )
    overrides = host.get_fact(StatOverrides) or {}
    for path in baseline.COMPILERS:
        if overrides.get(path) != "root root 700":
            server.shell(
                name=f"ANSSI-BP028-R58: {path} for root only",
                commands=[
                    f"dpkg-statoverride --remove {path} >/dev/null 2>&1 || true",
                    f"dpkg-statoverride --update --add root root 700 {path}",
                ],
            )
    files.line(
        name="ANSSI-BP028-R76: AIDE checksums are SHA-512 (Lynis FINT-4402)",
        path="/etc/aide/aide.conf",
        line="^Checksums[[:space:]]*=",
        replace=baseline.AIDE_CHECKSUMS,
    )
    pending = host.get_fact(PendingUpgrades) or 0
    if pending:
        server.shell(
            name="ANSSI-BP028-R61: apply the pending updates",
            commands=[
                "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold upgrade"
            ],
        )
    if host.get_fact(File, path=AIDE_DB) is None:
        server.shell(
            name="ANSSI-BP028-R76: seal the files (AIDE database)",
            commands=[f"aideinit --yes --force && test -s {AIDE_DB}"],
        )
    enabled = host.get_fact(EnabledUnits, units=baseline.UNNEEDED_SERVICES) or []
    if enabled:
        units = " ".join(shlex.quote(u) for u in enabled)
        server.shell(
            name="ANSSI-BP028-R62: stop and disable unneeded services",
            commands=[f"systemctl disable --now {units}", f"systemctl mask {units}"],
        )


@deploy("Hardening: SSH")
def ssh(ctx: HostContext) -> None:
    config = put(
        name="ANSSI-SSH-01..16: sshd_config (keys only, admins group, no forwarding, modern algorithms)",
        src=StringIO(baseline.sshd_config(ctx.host)),
        dest=baseline.SSHD_CONFIG,
        mode="600",
        user="root",
        group="root",
    )
    banner = put(
        name="ANSSI-SSH: login banner", src=StringIO(baseline.BANNER), dest="/etc/issue.net", mode="644"
    )
    put(name="ANSSI-SSH: local banner", src=StringIO(baseline.BANNER), dest="/etc/issue", mode="644")
    server.shell(name="ANSSI-SSH: check the sshd configuration", commands=["sshd -t"], _if=config.did_change)
    systemd.service(
        name="ANSSI-SSH: reload sshd",
        service="ssh",
        reloaded=True,
        _if=lambda: config.did_change() or banner.did_change(),
    )


@deploy("Hardening: kernel and network")
def kernel(ctx: HostContext) -> None:
    expectations = baseline.sysctls(ctx.host)
    put(
        name="ANSSI-BP028-R9..R14: persist the sysctls",
        src=StringIO(baseline.sysctl_conf(ctx.host)),
        dest=baseline.SYSCTL_CONF,
        mode="600",
    )
    live = host.get_fact(LiveSysctls) or {}
    by_rule: dict[str, list[str]] = {}
    for exp in expectations:
        current = live.get(exp.key)
        if ctx.lab and (current is None or not exp.key.startswith(LAB_WRITABLE_SYSCTLS)):
            # Read-only, or global and absent from a container's network namespace
            # (net.core.bpf_jit_harden): audited, and waived key by key in the lab's inventory.
            continue
        if current is None or not exp.satisfied_by(current):
            by_rule.setdefault(exp.rule, []).append(f"{exp.key}={exp.value}")
    for rule, assignments in sorted(by_rule.items()):
        server.shell(
            name=f"{rule}: apply the sysctls",
            commands=["sysctl -q -w " + " ".join(shlex.quote(a) for a in assignments)],
        )
    lock = put(
        name="ANSSI-BP028-R10: forbid loading modules once the firewall is up",
        src=StringIO(baseline.MODULES_LOCK_UNIT),
        dest=f"/etc/systemd/system/{MODULES_LOCK}",
        mode="644",
    )
    systemd.daemon_reload(name="ANSSI-BP028-R10: reload systemd units", _if=lock.did_change)
    # pyinfra's SystemdEnabled fact lists loaded units only; this one is not loaded in a
    # container (its condition fails), so ask systemctl is-enabled directly.
    if MODULES_LOCK not in (host.get_fact(EnabledUnits, units=(MODULES_LOCK,)) or []):
        server.shell(
            name="ANSSI-BP028-R10: enable the module lock at boot",
            commands=[f"systemctl enable {MODULES_LOCK}"],
        )
    put(
        name="ANSSI-BP028-R7/R8: kernel command line (IOMMU, memory)",
        src=StringIO(baseline.grub_cmdline()),
        dest="/etc/default/grub.d/relais-anssi.cfg",
        mode="644",
        create_remote_dir=True,
    )
    put(
        name="ANSSI-BP028-R80: unused storage and protocols cannot be loaded",
        src=StringIO(baseline.MODPROBE_BLACKLIST),
        dest="/etc/modprobe.d/relais-blacklist.conf",
        mode="644",
    )
    put(
        name="ANSSI-BP028-R14: no core dumps (limits)",
        src=StringIO(baseline.CORE_DUMPS_LIMITS),
        dest="/etc/security/limits.d/relais-core.conf",
        mode="644",
    )
    put(
        name="ANSSI-BP028-R14: no core dumps (systemd)",
        src=StringIO(baseline.CORE_DUMPS_SYSTEMD),
        dest="/etc/systemd/coredump.conf.d/relais.conf",
        mode="644",
        create_remote_dir=True,
    )


@deploy("Hardening: firewall")
def firewall(ctx: HostContext) -> None:
    ruleset = baseline.nft_ruleset(ctx.plan, ctx.host)
    conf = put(
        name="ANSSI-FW-01..04: nftables ruleset from the Plan (default drop inbound)",
        src=StringIO(ruleset),
        dest=baseline.NFT_CONF,
        mode="600",
        user="root",
        group="root",
    )
    systemd.service(name="ANSSI-FW-04: load the firewall at boot", service="nftables.service", enabled=True)
    load = (
        f"nft -c -f {baseline.NFT_CONF} && nft -f {baseline.NFT_CONF} && "
        f"mkdir -p /var/lib/relais && "
        f"nft list table inet {baseline.NFT_TABLE} > /var/lib/relais/nftables.applied"
    )
    if host.get_fact(NftablesDrift, table=baseline.NFT_TABLE):
        # The live table differs from what the last deploy loaded (a rule added by hand, the
        # table flushed) or was never loaded: load it again.
        server.shell(name="ANSSI-FW-02: load the firewall (live rules differ from the Plan)", commands=[load])
    else:
        server.shell(name="ANSSI-FW-02: load the firewall", commands=[load], _if=conf.did_change)


@deploy("Hardening: fail2ban and auditd")
def monitoring(ctx: HostContext) -> None:
    controller = baseline.controller_address(ctx.plan, ctx.host, os.environ.get("RELAIS_CONTROLLER_ADDRESS"))
    jail = put(
        name="ANSSI-BP028-R79: fail2ban jail for sshd",
        src=StringIO(baseline.fail2ban_jail(controller)),
        dest="/etc/fail2ban/jail.local",
        mode="644",
    )
    systemd.service(
        name="ANSSI-BP028-R79: fail2ban running", service="fail2ban.service", running=True, enabled=True
    )
    systemd.service(
        name="ANSSI-BP028-R79: restart fail2ban",
        service="fail2ban.service",
        restarted=True,
        _if=jail.did_change,
    )
    dropins = [
        put(
            name=f"ANSSI-BP028-R73: {unit} is skipped, not failed, in a container",
            src=StringIO(baseline.AUDITD_CONTAINER_DROPIN),
            dest=f"/etc/systemd/system/{unit}.d/relais-container.conf",
            mode="644",
            create_remote_dir=True,
        )
        for unit in baseline.CONTAINER_SKIPPED_UNITS
    ]

    def dropin_changed() -> bool:
        return any(d.did_change() for d in dropins)

    systemd.daemon_reload(name="ANSSI-BP028-R73: reload systemd units", _if=dropin_changed)
    if ctx.lab:
        server.shell(
            name="ANSSI-BP028-R73: forget the failures of auditd and acct in a container",
            commands=["systemctl reset-failed " + " ".join(baseline.CONTAINER_SKIPPED_UNITS) + " || true"],
            _if=dropin_changed,
        )
    sysstat = put(
        name="ANSSI-BP028-R73: system activity accounting (sysstat)",
        src=StringIO(baseline.SYSSTAT_DEFAULT),
        dest="/etc/default/sysstat",
        mode="644",
    )
    systemd.service(
        name="ANSSI-BP028-R73: sysstat collecting",
        service="sysstat.service",
        running=True,
        enabled=True,
        restarted=False,
    )
    systemd.service(
        name="ANSSI-BP028-R73: restart sysstat",
        service="sysstat.service",
        restarted=True,
        _if=sysstat.did_change,
    )
    rules = put(
        name="ANSSI-BP028-R73: auditd ruleset",
        src=StringIO(baseline.AUDIT_RULES),
        dest="/etc/audit/rules.d/relais.rules",
        mode="600",
        create_remote_dir=True,
    )
    if not ctx.lab:
        # auditd cannot run in a container (the kernel's audit socket belongs to the host):
        # in the lab the rule is reported by `relais audit` and waived in the inventory.
        systemd.service(
            name="ANSSI-BP028-R73: auditd running", service="auditd.service", running=True, enabled=True
        )
        server.shell(
            name="ANSSI-BP028-R73: load the audit rules", commands=["augenrules --load"], _if=rules.did_change
        )


@deploy("Hardening: accounts, sudo and files")
def accounts(ctx: HostContext) -> None:
    current = host.get_fact(LoginDefs, keys=tuple(k for k, _ in baseline.LOGIN_DEFS)) or {}
    wrong = [(k, v) for k, v in baseline.LOGIN_DEFS if current.get(k) != v]
    if wrong:
        server.shell(
            name="ANSSI-BP028-R31/R36/R68: login.defs (password ageing, umask, hashing)",
            commands=[
                f"sed -i 's/^{k}[[:space:]].*/{k}\t{v}/' /etc/login.defs"
                if k in current
                else f"printf '%s\\t%s\\n' {k} {v} >> /etc/login.defs"
                for k, v in wrong
            ],
        )
    put(
        name="ANSSI-BP028-R36: umask 027 for login shells",
        src=StringIO(f"# {baseline.MANAGED}\numask 027\n"),
        dest="/etc/profile.d/relais-umask.sh",
        mode="644",
    )
    files.line(
        name="ANSSI-BP028-R28: /dev/shm without devices, setuid or executables (fstab)",
        path="/etc/fstab",
        line="^tmpfs[[:space:]]+/dev/shm[[:space:]]",
        replace=baseline.SHM_FSTAB,
    )
    if "noexec" not in (host.get_fact(MountOptions, path="/dev/shm") or ""):
        server.shell(
            name="ANSSI-BP028-R28: remount /dev/shm nodev,nosuid,noexec",
            commands=["mount -o remount,nodev,nosuid,noexec /dev/shm"],
        )
    put(
        name="ANSSI-BP028-R32: idle sessions end",
        src=StringIO(baseline.SESSION_TIMEOUT),
        dest="/etc/profile.d/relais-timeout.sh",
        mode="644",
    )
    put(
        name="ANSSI-BP028-R39..R43: sudo defaults",
        src=StringIO(baseline.sudoers_defaults()),
        dest="/etc/sudoers.d/00-relais-defaults",
        mode="440",
        user="root",
        group="root",
    )
    for path in ("/etc/at.allow", "/etc/cron.allow"):
        put(
            name=f"ANSSI-BP028-R50: {path} (root only)",
            src=StringIO("root\n"),
            dest=path,
            mode="600",
            user="root",
            group="root",
        )
    # One fact and at most one operation for every sensitive file: a no-op deploy stays fast.
    homes = [
        baseline.FileMode(f"/home/{login}", 0o750, login, login)
        for login in sorted({DEPLOY_USER, *(a.login for a in ctx.plan.admins)})
    ]
    wanted = [*baseline.SENSITIVE_FILES, *homes]
    live = host.get_fact(FileModes, paths=tuple(w.path for w in wanted)) or {}
    fixes = []
    for want in wanted:
        found = live.get(want.path)
        path = shlex.quote(want.path)
        fix = f"chown {want.owner}:{want.group} {path} && chmod {want.mode:o} {path}"
        if found is None:
            # Not there yet on a fresh host (a home the base deploy creates, cron's directories
            # installed above): fixed once this run has created it.
            fixes.append(f"if [ -e {path} ]; then {fix}; fi")
        elif not want.satisfied_by(*found):
            fixes.append(fix)
    if fixes:
        server.shell(name="ANSSI-BP028-R50: restrict the sensitive files and homes", commands=fixes)


def steps(ctx: HostContext) -> list[object]:
    return [packages, ssh, kernel, firewall, monitoring, accounts]
