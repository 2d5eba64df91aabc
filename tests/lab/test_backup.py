"""Backups on real lab hosts: borg over SSH to a backup host of the other site, restores into a
fresh database then a swap, an interrupted run, the backup host unreachable.

Everything runs on the deployed region (the `deployed` fixture: every concern): the tenant
is Rouen's real homeserver on msg-rouen-1 (Synapse on PostgreSQL, backed up to mon-caen in
Caen); its messages are sent by a real Matrix client (matrix-nio) through the proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from relais.backup.jobs import find_job
from relais.cli.backup import app
from relais.cli.context import State, default_inventory
from relais.deploy.runner import DeployReport
from relais.lab import Lab
from relais.plan import Plan, PlannedTenant
from relais.probes.matrix import deliver
from relais.probes.net import ProbeContext

JOB = "76540"          # Rouen: dedicated homeserver on msg-rouen-1, backed up to mon-caen (Caen)
HOST = "msg-rouen-1"
DB = "synapse_76540"
DATA = "/var/lib/relais/synapse/76540"
MESSAGE_COUNT = "SELECT count(*) FROM events WHERE type = 'm.room.message'"


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args], obj=State(inventory=default_inventory()))
    return result


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def sh(lab: Lab, host: str, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return lab.exec(host, ["sh", "-c", f"cd / && {script}"], timeout=timeout)


def psql(lab: Lab, sql: str, db: str = DB) -> str:
    done = sh(lab, HOST, f"runuser -u postgres -- psql -X -At -d {db} -c \"{sql}\"")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def rouen(plan: Plan) -> PlannedTenant:
    return next(t for t in plan.tenants if t.id == JOB)


@pytest.fixture(scope="module")
def probe(plan: Plan, deployed: DeployReport) -> ProbeContext:
    return ProbeContext.for_inventory(plan, default_inventory(), timeout=180)


@pytest.fixture(scope="module")
def backups(lab: Lab, plan: Plan, deployed: DeployReport, probe: ProbeContext) -> int:
    """Rouen's homeserver holds real messages and a media file; returns its message count."""
    tenant = rouen(plan)
    assert deliver(probe, tenant.agents[0], tenant.agents[1]).delivered
    done = sh(lab, HOST, f"install -d -o synapse-{JOB} -g synapse-{JOB} {DATA}/media/local_content && "
                         f"echo photo > {DATA}/media/local_content/photo.jpg")
    assert done.returncode == 0, done.stderr
    # A one-time key: Synapse's backup documentation says never to restore them.
    psql(lab, "INSERT INTO e2e_one_time_keys_json VALUES ('@test:x', 'DEV', 'signed_curve25519', "
              "'otk', 0, '{}')")
    return int(psql(lab, MESSAGE_COUNT))


def test_secrets_never_on_disk_in_clear_outside_root_files(backups: int, lab: Lab) -> None:
    listing = sh(lab, HOST, "stat -c '%a %U %n' /etc/relais/backup/*").stdout.split("\n")
    modes = {line.split()[2]: line.split()[0] for line in listing if line}
    assert modes[f"/etc/relais/backup/{JOB}.passphrase"] == "600"
    assert modes[f"/etc/relais/backup/{JOB}.key"] == "600"
    keys = sh(lab, "mon-caen", "cat /srv/borg/.ssh/authorized_keys").stdout
    assert f'command="borg serve --append-only --restrict-to-path /srv/borg/{JOB}",restrict ssh-ed25519' in keys


def test_timers_from_the_plan(backups: int, lab: Lab, plan: Plan) -> None:
    job = find_job(plan, JOB)
    timer = sh(lab, HOST, f"systemctl cat relais-backup-{JOB}.timer").stdout
    assert f"OnCalendar=*-*-* {job.backup.time}:00" in timer
    check = sh(lab, HOST, f"systemctl cat relais-backup-check-{JOB}.timer").stdout
    assert f"OnCalendar={job.check_weekday} " in check
    assert sh(lab, HOST, f"systemctl is-enabled relais-backup-{JOB}.timer").stdout.strip() == "enabled"
    assert sh(lab, "mon-caen", "systemctl is-enabled relais-borg-compact.timer").stdout.strip() == "enabled"


def test_run_then_restore_after_data_loss(backups: int, lab: Lab) -> None:
    code, runs = cli_json("run", JOB)
    assert code == 0, runs
    assert runs[0]["ok"] and runs[0]["message_count"] == backups
    # The prom file monitoring reads, with the metric names of relais/monitoring.
    prom = sh(lab, HOST, "cat /var/lib/prometheus/node-exporter/relais_backup.prom").stdout
    assert f'relais_backup_last_success_timestamp_seconds{{tenant="{JOB}"}}' in prom
    assert f'relais_backup_last_size_bytes{{tenant="{JOB}"}}' in prom
    # Disaster by hand: the database is dropped and the media deleted.
    sh(lab, HOST, f"systemctl stop synapse-{JOB}.service && runuser -u postgres -- dropdb {DB} "
                  f"&& rm -rf {DATA}/media")
    restored = cli("restore", JOB, "--yes")
    assert restored.exit_code == 0, restored.output
    assert psql(lab, MESSAGE_COUNT) == str(backups)
    # One-time keys are never restored (Synapse's backup documentation).
    assert psql(lab, "SELECT count(*) FROM e2e_one_time_keys_json") == "0"
    assert sh(lab, HOST, f"cat {DATA}/media/local_content/photo.jpg").stdout.strip() == "photo"
    assert sh(lab, HOST, "runuser -u postgres -- psql -At -c \"SELECT datname FROM pg_database\"").stdout \
        .count("_before_") == 0  # there was no live database to keep aside
    finish = cli("restore", JOB, "--confirm-swap", "--yes")
    assert finish.exit_code == 0, finish.output


def test_restore_keeps_the_live_state_until_confirmed(backups: int, lab: Lab, plan: Plan,
                                                      probe: ProbeContext) -> None:
    assert cli("run", JOB).exit_code == 0
    backed_up = int(psql(lab, MESSAGE_COUNT))
    tenant = rouen(plan)
    assert deliver(probe, tenant.agents[1], tenant.agents[0]).delivered  # after the backup
    live = int(psql(lab, MESSAGE_COUNT))
    assert live > backed_up
    declined = CliRunner().invoke(app, ["restore", JOB], input="n\n", obj=State(inventory=default_inventory()))
    assert declined.exit_code == 1
    assert psql(lab, MESSAGE_COUNT) == str(live)
    assert cli("restore", JOB, "--yes").exit_code == 0
    assert psql(lab, MESSAGE_COUNT) == str(backed_up)
    databases = psql(lab, "SELECT datname FROM pg_database", db="postgres").split()
    before = [d for d in databases if d.startswith(f"{DB}_before_")]
    assert len(before) == 1
    assert psql(lab, MESSAGE_COUNT, db=before[0]) == str(live)
    assert cli("restore", JOB, "--rollback", "--yes").exit_code == 0
    assert psql(lab, MESSAGE_COUNT) == str(live)
    assert not [d for d in psql(lab, "SELECT datname FROM pg_database", db="postgres").split()
                if "_before_" in d or "_restore_" in d or "_failed_" in d]
    # the homeserver serves again after the rollback
    assert deliver(probe, tenant.agents[0], tenant.agents[1]).delivered


def test_append_only_key_cannot_delete(backups: int, lab: Lab) -> None:
    assert cli("run", JOB).exit_code == 0
    env = (f"BORG_RSH='ssh -i /etc/relais/backup/{JOB}.key -o IdentitiesOnly=yes "
           f"-o UserKnownHostsFile=/etc/relais/backup/known_hosts -o StrictHostKeyChecking=yes' "
           f"BORG_PASSCOMMAND='cat /etc/relais/backup/{JOB}.passphrase' BORG_BASE_DIR=/var/lib/relais/backup/borg/{JOB}")
    repo = json.loads(sh(lab, HOST, f"cat /etc/relais/backup/{JOB}.json").stdout)["repository"]
    other = repo.replace(f"/srv/borg/{JOB}", "/srv/borg/shared")
    outside = sh(lab, HOST, f"{env} borg list {other}")
    assert outside.returncode != 0  # --restrict-to-path: another tenant's repository is out of reach
    before = sh(lab, HOST, f"{env} borg list --short {repo}").stdout.split()
    sh(lab, HOST, f"{env} BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=YES borg delete --force {repo}::{before[0]}")
    # In append-only mode the delete is only a new transaction: the segments stay on the
    # backup host, where an operator can roll the repository back (docs/backups.md).
    segments = sh(lab, "mon-caen", f"find /srv/borg/{JOB}/data -type f | wc -l").stdout.strip()
    assert int(segments) > 0


def test_interrupted_backup_leaves_the_repository_consistent(backups: int, lab: Lab) -> None:
    # Enough data that borg is still running when it is killed.
    sh(lab, HOST, f"head -c 300M /dev/urandom > {DATA}/media/local_content/big.bin")
    started = sh(lab, HOST, f"systemd-run --unit=relais-test-kill --collect /usr/local/sbin/relais-backup run {JOB}")
    assert started.returncode == 0, started.stderr
    for _ in range(300):
        if sh(lab, HOST, "pgrep -x borg >/dev/null && echo yes").stdout.strip() == "yes":
            break
        time.sleep(0.1)
    killed = sh(lab, HOST, "pkill -KILL -x borg; echo $?")
    assert killed.stdout.strip() == "0"
    for _ in range(200):
        if sh(lab, HOST, "systemctl is-active relais-test-kill").stdout.strip() != "active":
            break
        time.sleep(0.1)
    code, checked = cli_json("verify", JOB)
    assert code == 0, checked
    code, runs = cli_json("run", JOB)
    assert code == 0 and runs[0]["ok"], runs
    sh(lab, HOST, f"rm -f {DATA}/media/local_content/big.bin")


def _bridge_link(host: str) -> str:
    instance = os.environ.get("RELAIS_LAB_INSTANCE", "")
    name = f"vb-{instance}-{host}" if instance else f"vb-{host}"
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[0].split("@")[0] == name for line in links.splitlines() if line.strip()):
        pytest.fail(f"no lab link {name} for {host}")
    return name


def test_backup_host_unreachable_fails_clearly_and_recovers(backups: int, lab: Lab) -> None:
    link = _bridge_link("mon-caen")
    before = psql(lab, "SELECT count(*) FROM events")
    subprocess.run(["ip", "link", "set", link, "down"], check=True)
    try:
        code, runs = cli_json("run", JOB)
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    assert code == 1 and not runs[0]["ok"]
    assert "cannot be reached" in runs[0]["error"] and "live data was not touched" in runs[0]["error"]
    assert psql(lab, "SELECT count(*) FROM events") == before
    status = json.loads(sh(lab, HOST, f"cat /var/lib/relais/backup/{JOB}.status.json").stdout)
    assert status["last_run"]["ok"] is False and status["last_success"]["ok"] is True
    prom = sh(lab, HOST, "cat /var/lib/prometheus/node-exporter/relais_backup.prom").stdout
    assert f'relais_backup_last_run_success{{tenant="{JOB}"}} 0' in prom
    code, runs = cli_json("run", JOB)
    assert code == 0 and runs[0]["ok"], runs


def test_list_reports_every_job(backups: int, plan: Plan) -> None:
    code, listed = cli_json("list")
    assert code == 0
    by_job = {item["job"]: item for item in listed}
    assert by_job[JOB]["last_success"]["ok"] and by_job[JOB]["age_seconds"] is not None
    assert by_job[JOB]["target"] == "mon-caen"
