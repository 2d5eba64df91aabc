"""Files deploys/backup writes, rendered from backup jobs (pure: no I/O).

Data hosts (messaging): the agent, one JSON config per job, systemd timers for the daily
backup (the Plan's time) and the weekly `borg check --verify-data` (a stable weekday per
job, so checks rotate through tenants).

Backup hosts: the `borg` account whose authorized_keys lets each job's key run only
``borg serve --append-only --restrict-to-path <its repository>``; a weekly `borg compact`
that frees what the clients' prunes only marked (append-only mode: see docs/backups.md).
"""

from __future__ import annotations

import json

from relais.backup.jobs import AGENT_PATH, BORG_HOME, BORG_USER, BackupJob, job_config
from relais.plan import Plan

MANAGED = "# Managed by Relais (deploys/backup): a hand edit is reverted by the next `relais deploy`.\n"
SERVICE_UNIT = "relais-backup@.service"
CHECK_UNIT = "relais-backup-check@.service"
COMPACT_SERVICE = "relais-borg-compact.service"
COMPACT_TIMER = "relais-borg-compact.timer"
COMPACT_SCRIPT = "/usr/local/sbin/relais-borg-compact"


def config_json(job: BackupJob, plan: Plan) -> str:
    return json.dumps(job_config(job, plan), indent=1, sort_keys=True) + "\n"


def backup_service() -> str:
    return (f"{MANAGED}[Unit]\nDescription=Relais backup of %i (borg)\n"
            "Wants=network-online.target\nAfter=network-online.target postgresql.service\n\n"
            f"[Service]\nType=oneshot\nExecStart={AGENT_PATH} run %i\n"
            "Nice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
            "TimeoutStartSec=6h\nPrivateTmp=yes\n")


def check_service() -> str:
    return (f"{MANAGED}[Unit]\nDescription=Relais weekly borg check --verify-data of %i\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Service]\nType=oneshot\nExecStart={AGENT_PATH} check --verify-data %i\n"
            "Nice=15\nIOSchedulingClass=idle\nTimeoutStartSec=12h\nPrivateTmp=yes\n")


def backup_timer(job: BackupJob) -> str:
    return (f"{MANAGED}[Unit]\nDescription=Daily backup of {job.label}\n\n"
            f"[Timer]\nOnCalendar=*-*-* {job.backup.time}:00\nPersistent=true\n"
            f"RandomizedDelaySec=5min\nUnit=relais-backup@{job.id}.service\n\n"
            "[Install]\nWantedBy=timers.target\n")


def check_timer(job: BackupJob) -> str:
    return (f"{MANAGED}[Unit]\nDescription=Weekly verification of the backups of {job.label}\n\n"
            f"[Timer]\nOnCalendar={job.check_weekday} *-*-* 04:30:00\nPersistent=true\n"
            f"Unit=relais-backup-check@{job.id}.service\n\n[Install]\nWantedBy=timers.target\n")


def timer_names(job: BackupJob) -> tuple[str, str]:
    return f"relais-backup-{job.id}.timer", f"relais-backup-check-{job.id}.timer"


def authorized_key(job: BackupJob, public_key: str) -> str:
    """One job's line: its key can only reach its own repository, and only append to it."""
    command = f"borg serve --append-only --restrict-to-path {job.repository}"
    return f'command="{command}",restrict {public_key.strip()} relais-backup-{job.id}'


def authorized_keys(lines: list[str]) -> str:
    return MANAGED + "".join(line + "\n" for line in sorted(lines))


def known_hosts_line(address: str, fqdn: str, host_key: str) -> str:
    key_type, key_data = host_key.split()[:2]
    names = ",".join(dict.fromkeys(n for n in (address, fqdn) if n))
    return f"{names} {key_type} {key_data}"


def compact_script(repositories: list[str]) -> str:
    """Weekly on the backup host, as the borg account, without any key or passphrase.

    Clients prune over an append-only connection: that only marks archives deleted.
    Compaction (a non-append-only write) is what frees the space; it runs here, the trusted
    place, after the window in which an operator can still roll a repository back.
    """
    lines = [f"for repo in {' '.join(repositories)}; do",
             '  [ -f "$repo/config" ] || continue',
             '  borg compact --threshold 10 "$repo" || status=1',
             "done"] if repositories else [":"]
    return ("#!/bin/sh\n" + MANAGED + "set -u\nstatus=0\nexport BORG_BASE_DIR=" + BORG_HOME + "/.borg-base\n"
            + "\n".join(lines) + "\nexit $status\n")


def compact_service() -> str:
    return (f"{MANAGED}[Unit]\nDescription=Relais: free the space of pruned borg archives\n\n"
            f"[Service]\nType=oneshot\nUser={BORG_USER}\nExecStart={COMPACT_SCRIPT}\n"
            "Nice=15\nIOSchedulingClass=idle\n")


def compact_timer() -> str:
    return (f"{MANAGED}[Unit]\nDescription=Weekly borg compact of the repositories on this host\n\n"
            "[Timer]\nOnCalendar=Sun *-*-* 06:00:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n")
