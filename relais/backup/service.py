"""What `relais backup` does, host by host, independent of how it is displayed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relais.backup.jobs import BackupError, BackupJob, backup_jobs, find_job
from relais.backup.remote import Agent, Runner, age_seconds, stamp
from relais.plan import Plan


def select_jobs(plan: Plan, names: Iterable[str], all_jobs: bool) -> list[BackupJob]:
    names = list(names)
    if all_jobs and names:
        raise BackupError("name communes or use --all, not both")
    if all_jobs:
        jobs = backup_jobs(plan)
        if not jobs:
            raise BackupError("the Plan has no backup job",
                              hint="tenants are backed up once active and placed")
        return jobs
    if not names:
        raise BackupError("which commune?",
                          hint="name a commune (INSEE code or name), `shared`, or use --all")
    chosen: dict[str, BackupJob] = {}
    for name in names:
        job = find_job(plan, name)
        chosen[job.id] = job
    return list(chosen.values())


@dataclass
class JobOutcome:
    job: BackupJob
    answer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.answer.get("ok"))

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job.id, "tenants": list(self.job.tenants), "host": self.job.host,
                "target": self.job.target_host, "ok": self.ok,
                "error": self.error or self.answer.get("error"), **{k: v for k, v in self.answer.items()
                                                                    if k not in ("job", "ok", "error")}}


def _each(jobs: list[BackupJob], runner: Runner, *args: str, timeout: int) -> list[JobOutcome]:
    outcomes = []
    for job in jobs:
        try:
            answer = Agent(job.host, runner).call(*args, job.id, timeout=timeout, allow_failure=True)
            outcomes.append(JobOutcome(job, answer))
        except BackupError as error:
            outcomes.append(JobOutcome(job, error=error.message))
    return outcomes


def run_backups(jobs: list[BackupJob], runner: Runner) -> list[JobOutcome]:
    return _each(jobs, runner, "run", timeout=6 * 3600)


def verify_backups(jobs: list[BackupJob], runner: Runner, *, verify_data: bool) -> list[JobOutcome]:
    args = ("check", "--verify-data") if verify_data else ("check",)
    return _each(jobs, runner, *args, timeout=12 * 3600)


def drill(jobs: list[BackupJob], runner: Runner) -> list[JobOutcome]:
    return _each(jobs, runner, "drill", timeout=3600)


@dataclass
class JobStatus:
    job: BackupJob
    status: dict[str, Any] | None
    pending_restore: dict[str, Any] | None
    reachable: bool
    error: str | None = None
    applied_keep: dict[str, Any] | None = None

    def age_seconds(self, now: datetime) -> float | None:
        success = (self.status or {}).get("last_success") or {}
        return age_seconds(success.get("finished"), now)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        status = self.status or {}
        return {"job": self.job.id, "tenants": list(self.job.tenants), "communes": list(self.job.communes),
                "host": self.job.host, "target": self.job.target_host, "repository": self.job.repository,
                "reachable": self.reachable, "error": self.error,
                "last_success": status.get("last_success"), "last_run": status.get("last_run"),
                "last_check": status.get("last_check"), "last_drill": status.get("last_drill"),
                "age_seconds": self.age_seconds(now), "pending_restore": self.pending_restore,
                "keep": {"daily": self.job.backup.keep_daily, "weekly": self.job.backup.keep_weekly,
                         "monthly": self.job.backup.keep_monthly},
                "applied_keep": self.applied_keep}


def statuses(plan: Plan, runner: Runner, jobs: list[BackupJob] | None = None) -> list[JobStatus]:
    """What each data host recorded of its jobs' last runs (one SSH call per host)."""
    jobs = backup_jobs(plan) if jobs is None else jobs
    by_host: dict[str, list[BackupJob]] = {}
    for job in jobs:
        by_host.setdefault(job.host, []).append(job)
    found: list[JobStatus] = []
    for host, host_jobs in by_host.items():
        try:
            answer = Agent(host, runner).call("status", timeout=60)
        except BackupError as error:
            found += [JobStatus(j, None, None, False, error.message) for j in host_jobs]
            continue
        recorded = {str(j["config"]["job"]): j for j in answer.get("jobs", [])}
        for job in host_jobs:
            entry = recorded.get(job.id)
            if entry is None:
                found.append(JobStatus(job, None, None, True, "not deployed on its host yet"))
            else:
                found.append(JobStatus(job, entry.get("status"), entry.get("pending_restore"), True,
                                       applied_keep=entry["config"].get("keep")))
    order = {j.id: i for i, j in enumerate(jobs)}
    return sorted(found, key=lambda s: order[s.job.id])


def archives(job: BackupJob, runner: Runner) -> list[dict[str, Any]]:
    answer = Agent(job.host, runner).call("archives", job.id, timeout=600)
    result: list[dict[str, Any]] = answer.get("archives", [])
    return result


# --------------------------------------------------------------------------- restore


def stage_restore(job: BackupJob, runner: Runner, *, archive: str | None, host: str | None,
                  when: datetime | None = None) -> dict[str, Any]:
    args = ["restore-stage", job.id, "--stamp", stamp(when or datetime.now(UTC))]
    if archive:
        args += ["--archive", archive]
    return Agent(host or job.host, runner).call(*args, timeout=6 * 3600)


def abort_restore(job: BackupJob, runner: Runner, staged: dict[str, Any], host: str | None) -> dict[str, Any]:
    return Agent(host or job.host, runner).call("restore-abort", job.id, "--stamp", staged["stamp"],
                                                timeout=600)


def swap_restore(job: BackupJob, runner: Runner, staged: dict[str, Any], host: str | None) -> dict[str, Any]:
    return Agent(host or job.host, runner).call("restore-swap", job.id, "--stamp", staged["stamp"],
                                                timeout=1800)


def finish_restore(job: BackupJob, runner: Runner, *, keep: str, host: str | None) -> dict[str, Any]:
    return Agent(host or job.host, runner).call("restore-finish", job.id, "--keep", keep, timeout=1800)


def pending_restore(job: BackupJob, runner: Runner, host: str | None) -> dict[str, Any] | None:
    answer = Agent(host or job.host, runner).call("status", timeout=60)
    for entry in answer.get("jobs", []):
        if str(entry["config"]["job"]) == job.id:
            pending: dict[str, Any] | None = entry.get("pending_restore")
            return pending
    raise BackupError(f"no backup job {job.id} on {host or job.host}",
                      hint=f"deploy it there first: `relais deploy --limit {host or job.host}`")
