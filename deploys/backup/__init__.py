"""Backups with borg: per-tenant repositories, encrypted, on a backup host of another site.

On a host that carries tenants' data: borg, the agent (/usr/local/sbin/relais-backup), per
job a config (no secret), its passphrase and SSH key (root-only files), the backup host's
pinned host key, and two timers (daily backup at the Plan's time, weekly verification).

On a backup host: the `borg` account (group relais-borg, no sudo, no shell use: each key
is forced to `borg serve --append-only --restrict-to-path <its repository>`), and a
weekly `borg compact` that frees what the clients' prunes marked (docs/backups.md).

The generators live in relais/backup; this package only puts their output in place.
"""

from __future__ import annotations

import subprocess
from fnmatch import fnmatch
from io import StringIO
from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.facts.files import FindFiles
from pyinfra.operations import apt, files, server, systemd

from relais.backup import render
from relais.backup.jobs import (
    AGENT_PATH,
    BORG_GROUP,
    BORG_HOME,
    BORG_USER,
    CONFIG_DIR,
    STATE_DIR,
    BackupError,
    BackupJob,
    jobs_on,
    jobs_to,
)
from relais.backup.secrets import job_secret
from relais.deploy.context import HostContext
from relais.secrets import ssh_public_key

AGENT_SOURCE = Path(__file__).resolve().parents[2] / "relais" / "backup" / "agent.py"
UNIT_DIR = "/etc/systemd/system"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def _backup_host_key(ctx: HostContext, target: str) -> str:
    """The backup host's SSH host key as the controller knows it (pinned, never trusted on first use)."""
    from relais.deploy.targets import controller_key

    planned = ctx.plan.host(target)
    _, known = controller_key(ctx.plan, planned)
    for name in (planned.address, planned.fqdn, planned.name):
        if not name:
            continue
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)], capture_output=True, text=True,
                               check=False)
        for line in found.stdout.splitlines():
            if line and not line.startswith("#"):
                fields = line.split()
                if len(fields) >= 3:
                    return f"{fields[1]} {fields[2]}"
    raise BackupError(f"the controller does not know the SSH host key of {target} ({known})",
                      hint="deploy once with a verified host key (lab: `relais lab up` records it)")


@deploy("Backups: tenants' data to their backup host")
def client(ctx: HostContext) -> None:
    jobs = jobs_on(ctx.plan, ctx.host.name)
    apt.packages(name="Install borg", packages=["borgbackup"], no_recommends=True, cache_time=3600)
    files.directory(name="Backup configuration directory", path=CONFIG_DIR, mode="700", user="root",
                    group="root")
    files.directory(name="Backup state directory", path=STATE_DIR, mode="700", user="root", group="root")
    files.directory(name="Directory of node exporter textfiles", path=TEXTFILE_DIR, mode="755")
    files.put(name="Backup agent (relais-backup)", src=str(AGENT_SOURCE), dest=AGENT_PATH, mode="755",
              user="root", group="root")
    known = sorted({render.known_hosts_line(ctx.plan.host(j.target_host).address or "",
                                            ctx.plan.host(j.target_host).fqdn,
                                            _backup_host_key(ctx, j.target_host)) for j in jobs})
    files.put(name="Pinned host keys of the backup hosts", src=StringIO("".join(k + "\n" for k in known)),
              dest=f"{CONFIG_DIR}/known_hosts", mode="644")
    service = files.put(name="Backup service (template)", src=StringIO(render.backup_service()),
                        dest=f"{UNIT_DIR}/{render.SERVICE_UNIT}", mode="644")
    check = files.put(name="Verification service (template)", src=StringIO(render.check_service()),
                      dest=f"{UNIT_DIR}/{render.CHECK_UNIT}", mode="644")
    changed = [service, check]
    wanted: set[str] = set()
    for job in jobs:
        changed += _job_files(ctx, job)
        wanted.update(render.timer_names(job))
    present = host.get_fact(FindFiles, path=UNIT_DIR, quote_path=True, maxdepth=1) or []
    stale = sorted(name for name in (Path(p).name for p in present)
                   if fnmatch(name, "relais-backup-*.timer") and name not in wanted)
    for timer in stale:
        systemd.service(name=f"Stop the timer of a job no longer planned: {timer}", service=timer,
                        running=False, enabled=False)
        files.file(name=f"Remove {timer}", path=f"{UNIT_DIR}/{timer}", present=False)
    systemd.daemon_reload(name="Reload systemd units of backups",
                          _if=lambda: any(op.did_change() for op in changed) or bool(stale))
    for job in jobs:
        for timer in render.timer_names(job):
            systemd.service(name=f"Enable {timer}", service=timer, running=True, enabled=True)


def _job_files(ctx: HostContext, job: BackupJob) -> list[object]:
    passphrase = job_secret(ctx, job.passphrase_ref, "passphrase")
    key = job_secret(ctx, job.ssh_key_ref, "ssh-key")
    out = [
        files.put(name=f"Backup job {job.id}: configuration", src=StringIO(render.config_json(job, ctx.plan)),
                  dest=job.config_file, mode="600", user="root", group="root"),
        files.put(name=f"Backup job {job.id}: passphrase (root only)", src=StringIO(passphrase + "\n"),
                  dest=job.passphrase_file, mode="600", user="root", group="root"),
        files.put(name=f"Backup job {job.id}: SSH key (root only)", src=StringIO(key.strip() + "\n"),
                  dest=job.key_file, mode="600", user="root", group="root"),
    ]
    daily, weekly = render.timer_names(job)
    out.append(files.put(name=f"Backup job {job.id}: daily timer", src=StringIO(render.backup_timer(job)),
                         dest=f"{UNIT_DIR}/{daily}", mode="644"))
    out.append(files.put(name=f"Backup job {job.id}: weekly verification timer",
                         src=StringIO(render.check_timer(job)), dest=f"{UNIT_DIR}/{weekly}", mode="644"))
    return out


@deploy("Backups: borg repositories of other sites' tenants")
def repository_host(ctx: HostContext) -> None:
    jobs = jobs_to(ctx.plan, ctx.host.name)
    apt.packages(name="Install borg", packages=["borgbackup"], no_recommends=True, cache_time=3600)
    server.group(name="Group of the borg account (SSH allows it on backup hosts)", group=BORG_GROUP,
                 system=True)
    server.user(name="The borg account (no sudo; each key forced to borg serve)", user=BORG_USER,
                group=BORG_GROUP, home=BORG_HOME, shell="/bin/sh", system=True, create_home=False)
    files.directory(name="Repositories directory", path=BORG_HOME, mode="700", user=BORG_USER,
                    group=BORG_GROUP)
    files.directory(name="SSH directory of the borg account", path=f"{BORG_HOME}/.ssh", mode="700",
                    user=BORG_USER, group=BORG_GROUP)
    lines = [render.authorized_key(job, ssh_public_key(job_secret(ctx, job.ssh_key_ref, "ssh-key")))
             for job in jobs]
    files.put(name="Keys of the backed-up jobs (append-only, one repository each)",
              src=StringIO(render.authorized_keys(lines)), dest=f"{BORG_HOME}/.ssh/authorized_keys",
              mode="600", user=BORG_USER, group=BORG_GROUP)
    units = [
        files.put(name="Compaction script", src=StringIO(render.compact_script(sorted(j.repository
                                                                                     for j in jobs))),
                  dest=render.COMPACT_SCRIPT, mode="755"),
        files.put(name="Compaction service", src=StringIO(render.compact_service()),
                  dest=f"{UNIT_DIR}/{render.COMPACT_SERVICE}", mode="644"),
        files.put(name="Compaction timer", src=StringIO(render.compact_timer()),
                  dest=f"{UNIT_DIR}/{render.COMPACT_TIMER}", mode="644"),
    ]
    systemd.daemon_reload(name="Reload systemd units of compaction",
                          _if=lambda: any(op.did_change() for op in units))
    systemd.service(name="Enable the compaction timer", service=render.COMPACT_TIMER, running=True,
                    enabled=True)


def steps(ctx: HostContext) -> list[object]:
    chosen: list[object] = []
    if jobs_on(ctx.plan, ctx.host.name):
        chosen.append(client)
    if ctx.has_role("backup"):
        chosen.append(repository_host)
    return chosen
