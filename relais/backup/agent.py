#!/usr/bin/python3
"""relais-backup: the host-side backup agent (installed as /usr/local/sbin/relais-backup).

Standard library only: it runs with the host's python3, as root, from the systemd units
that deploys/backup installs and from the controller (`relais backup ...` over SSH).
Every subcommand prints one JSON document on stdout; failures print
``{"ok": false, "error": "..."}`` and exit 1, so the controller never parses free text.

One job is one backup unit: a dedicated homeserver (id = INSEE code), the shared
homeserver (id ``shared``) or an XMPP commune (id = INSEE code). Its configuration is
``/etc/relais/backup/<job>.json`` (no secret in it); the passphrase and the SSH key of its
borg repository sit beside it in root-only files. borg reads the passphrase through
BORG_PASSCOMMAND, so it never appears on a command line or in an environment.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONFIG_DIR = Path("/etc/relais/backup")
STATE_DIR = Path("/var/lib/relais/backup")
STAGING_DIR = STATE_DIR / "staging"
RESTORE_DIR = Path("/var/lib/relais/restore")
DRILL_DIR = Path("/var/lib/relais/drill")
BORG_BASE_DIR = STATE_DIR / "borg"
LOCK_DIR = Path("/run/relais-backup")
TEXTFILE = Path("/var/lib/prometheus/node-exporter/relais_backup.prom")
META_FILE = "relais-backup-meta.json"
DUMP_FILE = "database.dump"
MESSAGE_QUERY = "SELECT count(*) FROM events WHERE type = 'm.room.message'"
ARCHIVE_TIME = "%Y-%m-%dT%H:%M:%S"
STAMP_TIME = "%Y%m%dT%H%M%S"

METRIC_SUCCESS = "relais_backup_last_success_timestamp_seconds"
METRIC_SIZE = "relais_backup_last_size_bytes"
METRIC_RUN = "relais_backup_last_run_timestamp_seconds"
METRIC_RUN_OK = "relais_backup_last_run_success"
METRIC_CHECK = "relais_backup_last_check_success_timestamp_seconds"


class AgentError(Exception):
    """A step failed; the message is meant for an operator."""


# --------------------------------------------------------------------------- helpers


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def load_job(job: str) -> dict[str, Any]:
    path = CONFIG_DIR / f"{job}.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise AgentError(f"no backup job {job} on this host ({path} is missing)") from None
    return loaded


def borg_env(cfg: dict[str, Any]) -> dict[str, str]:
    """borg's environment: the passphrase is read by BORG_PASSCOMMAND from a root-only file."""
    ssh = ["ssh", "-i", cfg["ssh_key"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={cfg['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null",
           "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
           "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update({
        "BORG_REPO": cfg["repository"],
        "BORG_RSH": " ".join(ssh),
        "BORG_PASSCOMMAND": f"cat {cfg['passphrase_file']}",
        "BORG_BASE_DIR": str(BORG_BASE_DIR / cfg["job"]),
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
        "BORG_EXIT_CODES": "legacy",
    })
    return env


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
        check: bool = True, stdout: Any = subprocess.PIPE, input_text: str | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), env=env, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          input=input_text, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise AgentError(f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed "
                         f"(exit {done.returncode}): {last_lines(done.stderr)}")
    return done


def last_lines(text: str | None, count: int = 3) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no error output"


def borg(cfg: dict[str, Any], *args: str, check: bool = True, cwd: str | Path | None = None,
         timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    done = run(["borg", *args], env=borg_env(cfg), cwd=cwd, check=False, timeout=timeout)
    # borg: 0 success, 1 warning (e.g. a file changed while read), 2 error.
    if check and done.returncode not in (0, 1):
        raise AgentError(explain_borg_error(cfg, args[0], done.stderr))
    return done


def explain_borg_error(cfg: dict[str, Any], command: str, stderr: str) -> str:
    text = stderr or ""
    target = cfg["repository"]
    if "Connection refused" in text or "No route to host" in text or "timed out" in text \
            or "Connection closed by remote host" in text or "Remote: ssh:" in text:
        return (f"borg {command}: the backup host of {target} cannot be reached "
                f"({last_lines(text, 1)}); live data was not touched")
    if "Permission denied" in text:
        return f"borg {command}: the backup host refused this tenant's key for {target}"
    if "passphrase supplied" in text or ("passphrase" in text.lower() and "incorrect" in text.lower()):
        return f"borg {command}: the passphrase does not open {target}"
    if "Failed to create/acquire the lock" in text:
        return f"borg {command}: {target} is locked by another run"
    return f"borg {command} on {target} failed: {last_lines(text)}"


def runuser_postgres(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run(["runuser", "-u", "postgres", "--", *argv], cwd="/", **kwargs)


def psql(database: str, sql: str, *, check: bool = True) -> str:
    done = runuser_postgres("psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", database, "-c", sql,
                            check=check)
    return done.stdout.strip()


def database_exists(name: str) -> bool:
    return psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def job_lock(job: str) -> Iterator[None]:
    """One run per job at a time (a timer and an operator's `relais backup run` may meet)."""
    LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(LOCK_DIR / f"{job}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentError(f"a backup or restore of {job} is already running on this host") from None
        yield


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


# --------------------------------------------------------------------------- status


def status_path(job: str) -> Path:
    return STATE_DIR / f"{job}.status.json"


def read_status(job: str) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(status_path(job).read_text())
        return loaded
    except (FileNotFoundError, ValueError):
        return {"job": job}


def record(job: str, key: str, result: dict[str, Any]) -> None:
    status = read_status(job)
    status["job"] = job
    status[key] = result
    if key == "last_run" and result.get("ok"):
        status["last_success"] = result
    if key == "last_check" and result.get("ok"):
        status["last_check_success"] = result
    write_atomic(status_path(job), json.dumps(status, indent=1, sort_keys=True) + "\n", 0o644)
    write_textfile()


def epoch(text: str | None) -> int | None:
    if not text:
        return None
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def render_textfile(statuses: list[dict[str, Any]], tenants_of: dict[str, list[str]]) -> str:
    """relais_backup.prom: one series per tenant (a shared homeserver's job covers several)."""
    series: dict[str, list[str]] = {METRIC_SUCCESS: [], METRIC_SIZE: [], METRIC_RUN: [], METRIC_RUN_OK: [],
                                    METRIC_CHECK: []}
    for status in sorted(statuses, key=lambda s: str(s.get("job"))):
        job = str(status.get("job"))
        success = status.get("last_success") or {}
        last = status.get("last_run") or {}
        check = status.get("last_check_success") or {}
        for tenant in tenants_of.get(job, [job]):
            label = '{tenant="' + tenant.replace("\\", "\\\\").replace('"', '\\"') + '"}'
            if epoch(success.get("finished")) is not None:
                series[METRIC_SUCCESS].append(f"{METRIC_SUCCESS}{label} {epoch(success.get('finished'))}")
                series[METRIC_SIZE].append(f"{METRIC_SIZE}{label} {int(success.get('size_bytes') or 0)}")
            if epoch(last.get("finished")) is not None:
                series[METRIC_RUN].append(f"{METRIC_RUN}{label} {epoch(last.get('finished'))}")
                series[METRIC_RUN_OK].append(f"{METRIC_RUN_OK}{label} {1 if last.get('ok') else 0}")
            if epoch(check.get("finished")) is not None:
                series[METRIC_CHECK].append(f"{METRIC_CHECK}{label} {epoch(check.get('finished'))}")
    helps = {
        METRIC_SUCCESS: "Unix time of the tenant's last successful backup.",
        METRIC_SIZE: "Original size of the tenant's last successful backup archive, in bytes.",
        METRIC_RUN: "Unix time the tenant's last backup run ended, successful or not.",
        METRIC_RUN_OK: "1 if the tenant's last backup run succeeded, else 0.",
        METRIC_CHECK: "Unix time of the tenant's last successful borg check --verify-data.",
    }
    lines: list[str] = []
    for name, values in series.items():
        lines += [f"# HELP {name} {helps[name]}", f"# TYPE {name} gauge", *values]
    return "\n".join(lines) + "\n"


def write_textfile() -> None:
    statuses, tenants_of = [], {}
    for path in sorted(CONFIG_DIR.glob("*.json")):
        with contextlib.suppress(ValueError, OSError):
            cfg = json.loads(path.read_text())
            tenants_of[cfg["job"]] = list(cfg.get("tenants") or [cfg["job"]])
            statuses.append(read_status(cfg["job"]))
    if TEXTFILE.parent.is_dir():
        write_atomic(TEXTFILE, render_textfile(statuses, tenants_of), 0o644)


# --------------------------------------------------------------------------- backup


def ensure_repository(cfg: dict[str, Any]) -> bool:
    """Create the repository on first use (repokey: its key lives in it, under the passphrase)."""
    info = borg(cfg, "info", "--json", check=False, timeout=120)
    if info.returncode in (0, 1):
        return False
    if "does not exist" not in info.stderr and "is not a valid repository" not in info.stderr:
        raise AgentError(explain_borg_error(cfg, "info", info.stderr))
    borg(cfg, "init", "--encryption", cfg["encryption"], timeout=300)
    return True


def message_count_and_dump(database: str, exclude: list[str], dest: Path) -> int:
    """pg_dump -Fc of a snapshot, and the message count of that same snapshot."""
    session = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d",
         database], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd="/")
    assert session.stdin is not None and session.stdout is not None
    try:
        session.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                            "SELECT pg_export_snapshot();\n")
        session.stdin.flush()
        snapshot = session.stdout.readline().strip()
        if not snapshot:
            raise AgentError(f"cannot open a snapshot of database {database}: "
                             f"{last_lines(session.stderr.read() if session.stderr else '')}")
        session.stdin.write("SELECT CASE WHEN to_regclass('public.events') IS NULL THEN 0 ELSE "
                            "(SELECT count(*) FROM events WHERE type = 'm.room.message') END;\n")
        session.stdin.flush()
        count = int(session.stdout.readline().strip() or 0)
        args = ["pg_dump", "-Fc", f"--snapshot={snapshot}", "-d", database]
        args += [f"--exclude-table-data={table}" for table in exclude]
        with open(dest, "wb") as out:
            done = subprocess.run(["runuser", "-u", "postgres", "--", *args], stdout=out,
                                  stderr=subprocess.PIPE, cwd="/", check=False)
        if done.returncode != 0:
            raise AgentError(f"pg_dump of {database} failed: {last_lines(done.stderr.decode())}")
        session.stdin.write("COMMIT;\n")
        session.stdin.close()
        session.wait(timeout=60)
        return count
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()


def stage(cfg: dict[str, Any], staging: Path, created: datetime) -> dict[str, Any]:
    if staging.exists():
        shutil.rmtree(staging)  # what an interrupted run left behind
    staging.mkdir(mode=0o700, parents=True)
    meta: dict[str, Any] = {"job": cfg["job"], "kind": cfg["kind"], "created": iso(created),
                            "tenants": cfg.get("tenants") or [cfg["job"]], "database": cfg.get("database"),
                            "paths": cfg["paths"], "message_count": None}
    if cfg.get("database"):
        meta["message_count"] = message_count_and_dump(cfg["database"], cfg.get("exclude_table_data", []),
                                                        staging / DUMP_FILE)
    (staging / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def archive_name(job: str, moment: datetime) -> str:
    return f"{job}-{moment.strftime(ARCHIVE_TIME)}"


def cmd_run(job: str) -> dict[str, Any]:
    cfg = load_job(job)
    started = now()
    result: dict[str, Any] = {"started": iso(started), "ok": False}
    try:
        with job_lock(job):
            created_repo = ensure_repository(cfg)
            staging = STAGING_DIR / job
            meta = stage(cfg, staging, started)
            name = archive_name(job, started)
            existing = [p for p in cfg["paths"] if Path(p).exists()]
            missing = sorted(set(cfg["paths"]) - set(existing))
            done = borg(cfg, "create", "--json", "--compression", "zstd,3", "--one-file-system",
                        "--exclude-caches", f"::{name}", str(staging), *existing, timeout=6 * 3600)
            stats = json.loads(done.stdout or "{}").get("archive", {}).get("stats", {})
            keep = cfg["keep"]
            borg(cfg, "prune", "--glob-archives", f"{job}-*", f"--keep-daily={keep['daily']}",
                 f"--keep-weekly={keep['weekly']}", f"--keep-monthly={keep['monthly']}", timeout=3600)
            shutil.rmtree(staging, ignore_errors=True)
            finished = now()
            result.update(ok=True, archive=name, finished=iso(finished),
                          duration_seconds=round((finished - started).total_seconds(), 1),
                          size_bytes=int(stats.get("original_size", 0)),
                          deduplicated_bytes=int(stats.get("deduplicated_size", 0)),
                          message_count=meta["message_count"], missing_paths=missing,
                          repository_created=created_repo, warning=done.returncode == 1)
    except (AgentError, subprocess.TimeoutExpired, OSError) as error:
        result.update(ok=False, finished=iso(now()), error=str(error))
    record(job, "last_run", result)
    return {"job": job, **result}


def cmd_check(job: str, verify_data: bool) -> dict[str, Any]:
    cfg = load_job(job)
    started = now()
    result: dict[str, Any] = {"started": iso(started), "ok": False, "verify_data": verify_data}
    try:
        with job_lock(job):
            args = ["check", *(["--verify-data"] if verify_data else [])]
            done = borg(cfg, *args, check=False, timeout=12 * 3600)
            if done.returncode not in (0, 1):
                raise AgentError(explain_borg_error(cfg, "check", done.stderr))
            result.update(ok=True, finished=iso(now()))
    except (AgentError, subprocess.TimeoutExpired, OSError) as error:
        result.update(ok=False, finished=iso(now()), error=str(error))
    record(job, "last_check", result)
    return {"job": job, **result}


def cmd_archives(job: str) -> dict[str, Any]:
    cfg = load_job(job)
    done = borg(cfg, "list", "--json", "--glob-archives", f"{job}-*", timeout=600)
    archives = json.loads(done.stdout or "{}").get("archives", [])
    return {"job": job, "archives": [{"name": a["name"], "time": a.get("time") or a.get("start")}
                                     for a in archives]}


def cmd_status() -> dict[str, Any]:
    jobs = []
    for path in sorted(CONFIG_DIR.glob("*.json")):
        with contextlib.suppress(ValueError, OSError, KeyError):
            cfg = json.loads(path.read_text())
            jobs.append({"config": {k: cfg[k] for k in ("job", "kind", "repository", "tenants", "keep")
                                    if k in cfg}, "status": read_status(cfg["job"]),
                         "pending_restore": read_pending(cfg["job"])})
    return {"jobs": jobs}


# --------------------------------------------------------------------------- restore


def latest_archive(cfg: dict[str, Any]) -> str:
    archives = cmd_archives(cfg["job"])["archives"]
    if not archives:
        raise AgentError(f"the repository of {cfg['job']} holds no archive yet")
    return str(archives[-1]["name"])


def extract(cfg: dict[str, Any], archive: str, dest: Path) -> dict[str, Any]:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(mode=0o700, parents=True)
    borg(cfg, "extract", f"::{archive}", cwd=dest, timeout=6 * 3600)
    staged = dest / str(STAGING_DIR / cfg["job"]).lstrip("/")
    meta: dict[str, Any] = json.loads((staged / META_FILE).read_text())
    meta["staged"] = str(staged)
    return meta


def restore_database(dump: Path, database: str, owner: str) -> None:
    if database_exists(database):
        raise AgentError(f"database {database} already exists: refusing to restore over it")
    runuser_postgres("createdb", "-O", owner, "-E", "UTF8", "--locale=C", "-T", "template0", database)
    # The dump is root-only: root opens it and hands it to pg_restore on standard input.
    with open(dump, "rb") as source:
        done = subprocess.run(["runuser", "-u", "postgres", "--", "pg_restore", "--no-owner",
                               f"--role={owner}", "--exit-on-error", "-d", database], stdin=source,
                              capture_output=True, cwd="/", check=False)
    if done.returncode != 0:
        raise AgentError(f"pg_restore into {database} failed: {last_lines(done.stderr.decode())}")


def pending_path(job: str) -> Path:
    return STATE_DIR / f"{job}.restore.json"


def read_pending(job: str) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(pending_path(job).read_text())
        return loaded
    except (FileNotFoundError, ValueError):
        return None


def cmd_restore_stage(job: str, archive: str | None, stamp: str) -> dict[str, Any]:
    """Extract an archive and load it into a fresh database: nothing live is touched."""
    cfg = load_job(job)
    with job_lock(job):
        if read_pending(job):
            raise AgentError(f"a restore of {job} awaits confirmation: confirm or roll it back first")
        archive = archive or latest_archive(cfg)
        dest = RESTORE_DIR / job / stamp
        try:
            meta = extract(cfg, archive, dest)
            result: dict[str, Any] = {"job": job, "archive": archive, "stamp": stamp,
                                      "created": meta["created"], "message_count": meta.get("message_count")}
            if cfg.get("database"):
                new_db = f"{cfg['database']}_restore_{stamp}".lower()
                restore_database(Path(meta["staged"]) / DUMP_FILE, new_db, cfg["database_owner"])
                result["database"] = new_db
                result["restored_message_count"] = count_messages(new_db)
            write_atomic(RESTORE_DIR / job / f"{stamp}.json", json.dumps(result) + "\n", 0o600)
        except BaseException:
            discard_staged(cfg, stamp)
            raise
        return result


def discard_staged(cfg: dict[str, Any], stamp: str) -> None:
    job = cfg["job"]
    if cfg.get("database"):
        db = f"{cfg['database']}_restore_{stamp}".lower()
        if database_exists(db):
            terminate_connections(db)
            psql("postgres", f"DROP DATABASE {quote_ident(db)}")
    shutil.rmtree(RESTORE_DIR / job / stamp, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (RESTORE_DIR / job / f"{stamp}.json").unlink()


def count_messages(database: str) -> int:
    return int(psql(database, "SELECT CASE WHEN to_regclass('public.events') IS NULL THEN 0 ELSE "
                              "(SELECT count(*) FROM events WHERE type = 'm.room.message') END") or 0)


def systemctl(*args: str, check: bool = True) -> None:
    run(["systemctl", *args], check=check, timeout=300)


def unit_of(cfg: dict[str, Any]) -> str | None:
    """The job's service, if this host has it (a restore onto a bare host has none yet)."""
    service = cfg.get("service")
    if not service:
        return None
    known = run(["systemctl", "cat", service], check=False, timeout=60)
    return str(service) if known.returncode == 0 else None


def terminate_connections(database: str) -> None:
    psql("postgres", f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
                     f"AND pid <> pg_backend_pid()")


def rename_database(old: str, new: str) -> None:
    terminate_connections(old)
    psql("postgres", f"ALTER DATABASE {quote_ident(old)} RENAME TO {quote_ident(new)}")


def cmd_restore_swap(job: str, stamp: str) -> dict[str, Any]:
    """Swap the staged state in; the live state is renamed aside, not deleted."""
    cfg = load_job(job)
    with job_lock(job):
        staged_info = json.loads((RESTORE_DIR / job / f"{stamp}.json").read_text())
        staged = RESTORE_DIR / job / stamp / str(STAGING_DIR / job).lstrip("/")
        if not staged.is_dir():
            raise AgentError(f"no staged restore {stamp} of {job}")
        pending: dict[str, Any] = {"stamp": stamp, "archive": staged_info["archive"], "moved": [],
                                   "swapped": iso(now())}
        service = unit_of(cfg)
        if service:
            systemctl("stop", service)
        if cfg.get("database"):
            live, before = cfg["database"], f"{cfg['database']}_before_{stamp}".lower()
            if database_exists(live):
                rename_database(live, before)
                pending["previous_database"] = before
            rename_database(staged_info["database"], live)
        for path in cfg["restore_paths"]:
            source = RESTORE_DIR / job / stamp / path.lstrip("/")
            live_path = Path(path)
            aside = Path(f"{path}.before-{stamp}")
            if live_path.exists():
                live_path.rename(aside)
                pending["moved"].append([str(live_path), str(aside)])
            else:
                pending["moved"].append([str(live_path), None])
            if source.exists():
                live_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), str(live_path))
        for path in cfg.get("config_paths", []):
            # Configuration comes from the deploy (Plan + vault); the archived copy only
            # fills a host that has none (a restore onto a fresh host).
            source = RESTORE_DIR / job / stamp / path.lstrip("/")
            if not Path(path).exists() and source.exists():
                shutil.copytree(str(source), path)
        write_atomic(pending_path(job), json.dumps(pending, indent=1) + "\n", 0o600)
        started = time.monotonic()
        if service:
            systemctl("start", service)
        serving = wait_serving(cfg, timeout=120) if service and cfg.get("health_url") else None
        shutil.rmtree(RESTORE_DIR / job / stamp, ignore_errors=True)
        return {"job": job, **pending, "serving": serving,
                "seconds_to_serving": round(time.monotonic() - started, 1) if serving else None}


def cmd_restore_finish(job: str, keep: str) -> dict[str, Any]:
    """keep='restored': erase the previous state; keep='previous': put the previous state back."""
    cfg = load_job(job)
    with job_lock(job):
        pending = read_pending(job)
        if pending is None:
            raise AgentError(f"no restore of {job} awaits confirmation")
        service = unit_of(cfg)
        if keep == "restored":
            if pending.get("previous_database"):
                terminate_connections(pending["previous_database"])
                psql("postgres", f"DROP DATABASE IF EXISTS {quote_ident(pending['previous_database'])}")
            for _live, aside in pending["moved"]:
                if aside:
                    shutil.rmtree(aside, ignore_errors=True)
        else:
            if service:
                systemctl("stop", service)
            if pending.get("previous_database"):
                failed = f"{cfg['database']}_failed_{pending['stamp']}".lower()
                rename_database(cfg["database"], failed)
                rename_database(pending["previous_database"], cfg["database"])
                psql("postgres", f"DROP DATABASE IF EXISTS {quote_ident(failed)}")
            for live, aside in pending["moved"]:
                shutil.rmtree(live, ignore_errors=True)
                if aside:
                    Path(aside).rename(live)
            if service:
                systemctl("start", service)
        pending_path(job).unlink()
        return {"job": job, "kept": keep, "stamp": pending["stamp"]}


def cmd_restore_abort(job: str, stamp: str) -> dict[str, Any]:
    """Throw a staged restore away (the operator declined the swap)."""
    cfg = load_job(job)
    with job_lock(job):
        discard_staged(cfg, stamp)
        return {"job": job, "aborted": stamp}


# --------------------------------------------------------------------------- drill


def wait_serving(cfg: dict[str, Any], *, timeout: float, url: str | None = None) -> bool:
    target = url or cfg["health_url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(target, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SCRATCH_CONFIG = r"""
import sys, yaml
src, dst, db, media, port, log = sys.argv[1:7]
with open(src) as f:
    c = yaml.safe_load(f)
c["database"]["args"]["dbname"] = db
c["media_store_path"] = media
c["listeners"] = [{"port": int(port), "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                   "resources": [{"names": ["client"], "compress": False}]}]
c["enable_metrics"] = False
c["log_config"] = log
c["send_federation"] = False
c["federation_domain_whitelist"] = []
c["start_pushers"] = False
c["signing_key_path"] = sys.argv[7]
c.pop("pid_file", None)
c["retention"] = {"enabled": False}
with open(dst, "w") as f:
    yaml.safe_dump(c, f)
"""

SCRATCH_LOG = """version: 1
formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
handlers: {console: {class: logging.StreamHandler, formatter: plain}}
root: {level: WARNING, handlers: [console]}
disable_existing_loggers: false
"""


def cmd_drill(job: str, archive: str | None) -> dict[str, Any]:
    """Restore the latest archive into a scratch instance, serve it, count, throw it away."""
    cfg = load_job(job)
    started_wall = now()
    started = time.monotonic()
    scratch = DRILL_DIR / job
    scratch_db = f"{cfg['database']}_drill".lower() if cfg.get("database") else None
    unit = f"relais-drill-{job}"
    result: dict[str, Any] = {"job": job, "ok": False}
    try:
        with job_lock(job):
            cleanup_drill(unit, scratch, scratch_db)
            archive = archive or latest_archive(cfg)
            meta = extract(cfg, archive, scratch)
            created = datetime.strptime(meta["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            result.update(archive=archive, archive_created=meta["created"],
                          rpo_seconds=round((started_wall - created).total_seconds()),
                          expected_message_count=meta.get("message_count"))
            if cfg["kind"] == "matrix" and scratch_db:
                restore_database(Path(meta["staged"]) / DUMP_FILE, scratch_db, cfg["database_owner"])
                serving, port = start_scratch_homeserver(cfg, scratch, scratch_db, unit)
                result["serving"] = serving
                result["rto_seconds"] = round(time.monotonic() - started, 1)
                if not serving:
                    raise AgentError(f"the scratch homeserver of {job} did not serve on port {port}: "
                                     f"{last_lines(journal(unit), 5)}")
                result["restored_message_count"] = count_messages(scratch_db)
            else:
                restored = [p for p in cfg["restore_paths"] if (scratch / p.lstrip("/")).exists()]
                result["serving"] = None
                result["restored_paths"] = restored
                result["rto_seconds"] = round(time.monotonic() - started, 1)
                result["restored_message_count"] = meta.get("message_count")
            expected = result.get("expected_message_count")
            result["messages_match"] = expected is None or expected == result["restored_message_count"]
            if not result["messages_match"]:
                raise AgentError(f"restored {result['restored_message_count']} messages, the backup "
                                 f"recorded {expected}")
            result["ok"] = True
    except (AgentError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as error:
        result["error"] = str(error)
    finally:
        cleanup_drill(unit, scratch, scratch_db)
    record(job, "last_drill", {**result, "finished": iso(now())})
    return result


def journal(unit: str) -> str:
    return run(["journalctl", "-u", unit, "--no-pager", "-n", "20", "-o", "cat"], check=False).stdout


def start_scratch_homeserver(cfg: dict[str, Any], scratch: Path, database: str,
                             unit: str) -> tuple[bool, int]:
    config_dir = scratch / cfg["config_dir"].lstrip("/")
    data_dir = scratch / cfg["data_dir"].lstrip("/")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "media").mkdir(exist_ok=True)
    port = free_port()
    log = scratch / "drill-log.yaml"
    log.write_text(SCRATCH_LOG)
    scratch_config = scratch / "drill-homeserver.yaml"
    python = f"{cfg['synapse_venv']}/bin/python"
    run([python, "-c", SCRATCH_CONFIG, str(config_dir / "homeserver.yaml"), str(scratch_config), database,
         str(data_dir / "media"), str(port), str(log), str(config_dir / "signing.key")])
    user = cfg["unix_user"]
    run(["chown", "-R", f"{user}:{user}", str(scratch)])
    os.chmod(scratch, 0o750)
    for parent in (DRILL_DIR,):
        os.chmod(parent, 0o711)
    run(["systemd-run", f"--unit={unit}", f"--uid={user}", f"--gid={user}", "--collect", "--quiet",
         f"--working-directory={data_dir}", "--property=MemoryMax=2G",
         python, "-m", "synapse.app.homeserver", f"--config-path={scratch_config}"])
    serving = wait_serving(cfg, timeout=300, url=f"http://127.0.0.1:{port}/_matrix/client/versions")
    return serving, port


def cleanup_drill(unit: str, scratch: Path, database: str | None) -> None:
    run(["systemctl", "stop", unit], check=False, timeout=120)
    run(["systemctl", "reset-failed", unit], check=False)
    if database and database_exists(database):
        terminate_connections(database)
        psql("postgres", f"DROP DATABASE {quote_ident(database)}")
    shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relais-backup", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "archives", "drill"):
        sub.add_parser(name).add_argument("job")
    sub.choices["drill"].add_argument("--archive")
    check = sub.add_parser("check")
    check.add_argument("job")
    check.add_argument("--verify-data", action="store_true")
    sub.add_parser("status")
    sub.add_parser("textfile")
    stage_p = sub.add_parser("restore-stage")
    stage_p.add_argument("job")
    stage_p.add_argument("--archive")
    stage_p.add_argument("--stamp", required=True)
    for name in ("restore-swap", "restore-abort"):
        p = sub.add_parser(name)
        p.add_argument("job")
        p.add_argument("--stamp", required=True)
    finish = sub.add_parser("restore-finish")
    finish.add_argument("job")
    finish.add_argument("--keep", choices=("restored", "previous"), required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.command == "run":
            out = cmd_run(args.job)
        elif args.command == "check":
            out = cmd_check(args.job, args.verify_data)
        elif args.command == "archives":
            out = cmd_archives(args.job)
        elif args.command == "status":
            out = cmd_status()
        elif args.command == "textfile":
            write_textfile()
            out = {"ok": True}
        elif args.command == "drill":
            out = cmd_drill(args.job, args.archive)
        elif args.command == "restore-stage":
            out = cmd_restore_stage(args.job, args.archive, args.stamp)
        elif args.command == "restore-swap":
            out = cmd_restore_swap(args.job, args.stamp)
        elif args.command == "restore-abort":
            out = cmd_restore_abort(args.job, args.stamp)
        else:
            out = cmd_restore_finish(args.job, args.keep)
    except (AgentError, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as error:
        print(json.dumps({"ok": False, "error": str(error)}))
        return 1
    out.setdefault("ok", True)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
