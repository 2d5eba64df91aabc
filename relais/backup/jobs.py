"""Backup jobs derived from the Plan (pure: no I/O).

A job is what one borg repository holds: a dedicated homeserver (id = the tenant's INSEE
code), the regional shared homeserver (id ``shared``: every matrix-shared commune lives in
its one database, so it is backed up and restored as one unit), or one XMPP commune (its
Prosody virtual host and group-chat component, restorable without touching the others).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from relais.errors import RelaisError
from relais.matrix.homeservers import (
    CONFIG_ROOT,
    DATA_ROOT,
    SHARED_ID,
    SYNAPSE_VENV,
    Homeserver,
    homeservers,
)
from relais.plan import Plan, PlannedBackup, PlannedTenant
from relais.xmpp.config import DATA_DIR as PROSODY_DATA_DIR

BORG_USER = "borg"
BORG_GROUP = "relais-borg"
BORG_HOME = "/srv/borg"
AGENT_PATH = "/usr/local/sbin/relais-backup"
CONFIG_DIR = "/etc/relais/backup"
STATE_DIR = "/var/lib/relais/backup"
EXCLUDED_TABLE_DATA = ("e2e_one_time_keys_json",)
"""Synapse's backup documentation: one-time keys must not be restored (reusing one breaks E2EE)."""
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SHARED_SECRET_PREFIX = "services/shared-homeserver"
BACKED_UP_STATUSES = ("active", "suspended")
"""Tenants with data: approved ones are not provisioned yet, offboarded ones are erased."""


class BackupError(RelaisError):
    """A backup, restore or drill cannot be done (or failed on a host)."""


@dataclass(frozen=True)
class BackupJob:
    id: str
    kind: str                       # matrix | xmpp
    host: str                       # where the data lives and the agent runs
    target_host: str                # backup host (another site)
    repository: str                 # path on the target host
    tenants: tuple[str, ...]        # INSEE codes whose data the job holds
    communes: tuple[str, ...]
    backup: PlannedBackup
    secret_prefix: str
    paths: tuple[str, ...]          # files and directories archived (besides the dump)
    restore_paths: tuple[str, ...]  # moved aside and replaced on restore
    config_paths: tuple[str, ...] = ()
    database: str | None = None
    unix_user: str | None = None
    service: str | None = None
    port: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def passphrase_ref(self) -> str:
        return f"{self.secret_prefix}/backup_passphrase"

    @property
    def ssh_key_ref(self) -> str:
        return f"{self.secret_prefix}/backup_ssh_key"

    @property
    def config_file(self) -> str:
        return f"{CONFIG_DIR}/{self.id}.json"

    @property
    def passphrase_file(self) -> str:
        return f"{CONFIG_DIR}/{self.id}.passphrase"

    @property
    def key_file(self) -> str:
        return f"{CONFIG_DIR}/{self.id}.key"

    @property
    def check_weekday(self) -> str:
        """Weekly `borg check --verify-data` rotates through jobs: a stable day per job."""
        return WEEKDAYS[zlib.crc32(self.id.encode()) % 7]

    @property
    def label(self) -> str:
        if self.id == SHARED_ID:
            return f"shared homeserver ({', '.join(self.communes) or 'no commune yet'})"
        return f"{self.communes[0]} ({self.id})" if self.communes else self.id


def prosody_escape(name: str) -> str:
    """Prosody's datamanager encodes every non-alphanumeric byte of a store name as %xx."""
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"%{b:02x}" for b in c.encode())
                   for c in name)


def _matrix_job(plan: Plan, hs: Homeserver) -> BackupJob | None:
    owner = [t for t in hs.communes if t.backup.target_host and t.backup.repository]
    if not owner:
        return None
    first = owner[0]
    target = first.backup.target_host
    assert target is not None
    repository = (f"{BORG_HOME}/{SHARED_ID}" if hs.shared else first.backup.repository) or ""
    return BackupJob(
        id=hs.id, kind="matrix", host=hs.host, target_host=target, repository=repository,
        tenants=tuple(t.id for t in hs.communes), communes=tuple(t.commune for t in hs.communes),
        backup=first.backup, secret_prefix=SHARED_SECRET_PREFIX if hs.shared else f"tenants/{hs.id}",
        paths=(hs.data_dir, hs.config_dir), restore_paths=(hs.data_dir,), config_paths=(hs.config_dir,),
        database=hs.database, unix_user=hs.unix_user, service=hs.unit, port=hs.port,
        extra={"synapse_venv": SYNAPSE_VENV, "config_dir": hs.config_dir, "data_dir": hs.data_dir})


def _xmpp_job(tenant: PlannedTenant) -> BackupJob | None:
    if tenant.host is None or not tenant.backup.target_host or not tenant.backup.repository:
        return None
    domain = tenant.domain or tenant.server_name
    stores = [f"{PROSODY_DATA_DIR}/{prosody_escape(name)}" for name in (domain, f"conference.{domain}")]
    return BackupJob(
        id=tenant.id, kind="xmpp", host=tenant.host, target_host=tenant.backup.target_host,
        repository=tenant.backup.repository, tenants=(tenant.id,), communes=(tenant.commune,),
        backup=tenant.backup, secret_prefix=f"tenants/{tenant.id}", paths=tuple(stores),
        restore_paths=tuple(stores), service="prosody.service", unix_user="prosody")


def backup_jobs(plan: Plan) -> list[BackupJob]:
    """Every job the Plan asks for, dedicated homeservers and XMPP communes by id, shared last."""
    jobs: list[BackupJob] = []
    for hs in homeservers(plan):
        job = _matrix_job(plan, hs)
        if job is not None:
            jobs.append(job)
    for tenant in plan.tenants:
        if tenant.flavor == "xmpp" and tenant.status in BACKED_UP_STATUSES:
            xmpp = _xmpp_job(tenant)
            if xmpp is not None:
                jobs.append(xmpp)
    return sorted(jobs, key=lambda j: (j.id == SHARED_ID, j.id))


def jobs_on(plan: Plan, host: str) -> list[BackupJob]:
    """Jobs whose data lives on `host` (the agent runs them there)."""
    return [j for j in backup_jobs(plan) if j.host == host]


def jobs_to(plan: Plan, host: str) -> list[BackupJob]:
    """Jobs whose repository lives on `host` (a backup host)."""
    return [j for j in backup_jobs(plan) if j.target_host == host]


def find_job(plan: Plan, name: str) -> BackupJob:
    """The job of a commune (INSEE code or name), or `shared` for the shared homeserver."""
    jobs = backup_jobs(plan)
    wanted = name.strip().casefold()
    for job in jobs:
        if job.id.casefold() == wanted:
            return job
    for job in jobs:
        if wanted in (c.casefold() for c in job.communes) or wanted in job.tenants:
            if job.id == SHARED_ID and wanted != SHARED_ID:
                raise BackupError(
                    f"{name} is a commune of the shared homeserver: its data is in the shared database",
                    hint="restore or drill the shared homeserver as one unit: "
                         "`relais backup restore shared` (every shared commune goes back together)")
            return job
    for tenant in plan.tenants:
        if wanted in (tenant.id.casefold(), tenant.commune.casefold()):
            raise BackupError(f"{tenant.commune} ({tenant.id}) has no backup job: its status is "
                              f"{tenant.status} and it is {'placed' if tenant.host else 'not placed'}",
                              hint="only placed tenants that are active or suspended are backed up")
    raise BackupError(f"no commune or backup job named {name!r}",
                      hint="jobs: " + ", ".join(j.id for j in jobs))


def job_config(job: BackupJob, plan: Plan) -> dict[str, object]:
    """/etc/relais/backup/<job>.json on the data host: read by the agent (no secret in it)."""
    target = plan.host(job.target_host)
    address = target.address or target.fqdn
    config: dict[str, object] = {
        "job": job.id,
        "kind": job.kind,
        "tenants": list(job.tenants),
        "repository": f"ssh://{BORG_USER}@{address}{job.repository}",
        "encryption": job.backup.encryption,
        "passphrase_file": job.passphrase_file,
        "ssh_key": job.key_file,
        "known_hosts": f"{CONFIG_DIR}/known_hosts",
        "paths": list(job.paths),
        "restore_paths": list(job.restore_paths),
        "config_paths": list(job.config_paths),
        "keep": {"daily": job.backup.keep_daily, "weekly": job.backup.keep_weekly,
                 "monthly": job.backup.keep_monthly},
        "service": job.service,
        "unix_user": job.unix_user,
    }
    if job.database:
        config.update(database=job.database, database_owner=job.database,
                      exclude_table_data=list(EXCLUDED_TABLE_DATA))
    if job.kind == "matrix" and job.port is not None:
        config["health_url"] = f"http://127.0.0.1:{job.port}/_matrix/client/versions"
        config.update(job.extra)
    return config


__all__ = ["AGENT_PATH", "BORG_GROUP", "BORG_HOME", "BORG_USER", "CONFIG_DIR", "CONFIG_ROOT", "DATA_ROOT",
           "BackupError", "BackupJob", "backup_jobs", "find_job", "job_config", "jobs_on", "jobs_to",
           "prosody_escape"]
