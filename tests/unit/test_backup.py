"""Backups, without hosts: jobs from the Plan, rendered files, the agent's pure parts, the
controller's orchestration with a fake runner, and the backup policies."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from policies import backups as backup_policies
from policies.engine import Context
from relais.backup import agent, render, service
from relais.backup.jobs import BackupError, backup_jobs, find_job, job_config, prosody_escape
from relais.backup.remote import Agent
from relais.cli.context import SHIPPED_INVENTORY, State
from relais.findings import Status
from relais.plan import Plan
from relais.planner import plan_directory


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_directory(SHIPPED_INVENTORY).plan


def test_jobs_cover_every_backed_up_tenant(plan: Plan) -> None:
    jobs = {j.id: j for j in backup_jobs(plan)}
    dedicated = {t.id for t in plan.tenants if t.flavor == "matrix-dedicated" and t.status == "active"}
    xmpp = {t.id for t in plan.tenants if t.flavor == "xmpp" and t.status == "active" and t.host}
    assert dedicated | xmpp | {"shared"} == set(jobs)
    shared = jobs["shared"]
    assert set(shared.tenants) == {t.id for t in plan.tenants
                                   if t.flavor == "matrix-shared" and t.status == "active"}
    for job in jobs.values():
        assert plan.host(job.target_host).site != plan.host(job.host).site
        assert job.repository == f"/srv/borg/{job.id}"


def test_find_job_by_name_and_shared_hint(plan: Plan) -> None:
    assert find_job(plan, "caen").id == "14118"
    assert find_job(plan, "14118").id == "14118"
    with pytest.raises(BackupError) as shared:
        find_job(plan, "Bayeux")
    assert "shared homeserver" in shared.value.message and shared.value.hint
    with pytest.raises(BackupError, match="no backup job"):
        find_job(plan, "Flers")  # requested, not placed
    with pytest.raises(BackupError, match="no commune"):
        find_job(plan, "Paris")


def test_prosody_store_names() -> None:
    assert prosody_escape("xmpp.lesloges.fr") == "xmpp%2elesloges%2efr"
    assert prosody_escape("hautot-sur-seine.example") == "hautot%2dsur%2dseine%2eexample"


def test_config_has_no_secret_and_excludes_one_time_keys(plan: Plan) -> None:
    job = find_job(plan, "14118")
    config = job_config(job, plan)
    assert config["repository"] == f"ssh://borg@{plan.host(job.target_host).address}/srv/borg/14118"
    assert config["exclude_table_data"] == ["e2e_one_time_keys_json"]
    assert config["passphrase_file"] == "/etc/relais/backup/14118.passphrase"
    text = render.config_json(job, plan)
    assert "passphrase\":" not in text and "BEGIN OPENSSH" not in text


def test_authorized_key_is_forced_append_only_and_restricted(plan: Plan) -> None:
    job = find_job(plan, "14118")
    line = render.authorized_key(job, "ssh-ed25519 AAAAkey")
    assert line == ('command="borg serve --append-only --restrict-to-path /srv/borg/14118",restrict '
                    "ssh-ed25519 AAAAkey relais-backup-14118")


def test_timers_follow_the_plan_and_checks_rotate(plan: Plan) -> None:
    jobs = backup_jobs(plan)
    for job in jobs:
        assert f"OnCalendar=*-*-* {job.backup.time}:00" in render.backup_timer(job)
        assert f"OnCalendar={job.check_weekday} *-*-* 04:30:00" in render.check_timer(job)
    assert len({j.check_weekday for j in jobs}) > 1  # not every check on the same night
    assert "--verify-data" in render.check_service()


def test_compact_script_lists_repositories() -> None:
    script = render.compact_script(["/srv/borg/1", "/srv/borg/2"])
    assert "for repo in /srv/borg/1 /srv/borg/2; do" in script
    assert render.compact_script([]).count("borg compact") == 0


def test_textfile_uses_monitoring_names_per_tenant() -> None:
    from relais.monitoring.metrics import BACKUP_LAST_SIZE, BACKUP_LAST_SUCCESS

    statuses = [{"job": "shared", "last_success": {"finished": "2025-01-01T00:00:00Z", "size_bytes": 10},
                 "last_run": {"finished": "2025-01-02T00:00:00Z", "ok": False}},
                {"job": "14118"}]
    text = agent.render_textfile(statuses, {"shared": ["14047", "14327"], "14118": ["14118"]})
    assert f'{BACKUP_LAST_SUCCESS}{{tenant="14047"}} 1735689600' in text
    assert f'{BACKUP_LAST_SIZE}{{tenant="14327"}} 10' in text
    assert 'relais_backup_last_run_success{tenant="14047"} 0' in text
    assert 'tenant="14118"' not in text  # never backed up: no series (the alert sees it absent)


def test_borg_errors_are_explained() -> None:
    cfg = {"repository": "ssh://borg@10.0.0.1/srv/borg/1"}
    down = agent.explain_borg_error(cfg, "create", "Remote: ssh: connect to host 10.0.0.1 port 22: "
                                                   "Connection timed out\nConnection closed by remote host")
    assert "cannot be reached" in down and "live data was not touched" in down
    assert "refused" in agent.explain_borg_error(cfg, "list", "borg@10.0.0.1: Permission denied (publickey).")


def test_passphrase_never_in_borg_environment() -> None:
    cfg = {"repository": "r", "ssh_key": "/k", "known_hosts": "/kh", "passphrase_file": "/p", "job": "1"}
    env = agent.borg_env(cfg)
    assert env["BORG_PASSCOMMAND"] == "cat /p" and "BORG_PASSPHRASE" not in env


class FakeHosts:
    """Canned answers of the agents, keyed by (host, first word after the agent path)."""

    def __init__(self, answers: dict[tuple[str, str], dict[str, object]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, host: str, command: str, timeout: int) -> subprocess.CompletedProcess[str]:
        self.calls.append((host, command))
        verb = command.split()[1]
        if (host, verb) not in self.answers:
            return subprocess.CompletedProcess([], 255, "", "ssh: connect to host: No route to host")
        answer = {"ok": True, **self.answers[(host, verb)]}
        return subprocess.CompletedProcess([], 0, json.dumps(answer) + "\n", "")


def test_run_reports_each_job_and_unreachable_hosts(plan: Plan) -> None:
    jobs = [find_job(plan, "14118"), find_job(plan, "76540")]
    fake = FakeHosts({(jobs[0].host, "run"): {"ok": True, "archive": "14118-x"}})
    outcomes = service.run_backups(jobs, fake)
    assert outcomes[0].ok and outcomes[0].as_dict()["archive"] == "14118-x"
    assert not outcomes[1].ok and "cannot reach" in str(outcomes[1].error)


def test_agent_failure_is_an_error_with_its_message() -> None:
    fake = FakeHosts({("h", "status"): {"ok": False, "error": "no backup job 1 on this host"}})
    with pytest.raises(BackupError, match="no backup job"):
        Agent("h", fake).call("status")


def test_statuses_and_live_policies(plan: Plan) -> None:
    job = find_job(plan, "14118")
    now = datetime(2025, 1, 2, 12, tzinfo=UTC)
    keep = {"daily": job.backup.keep_daily, "weekly": job.backup.keep_weekly, "monthly": job.backup.keep_monthly}
    answer = {"jobs": [{"config": {"job": "14118", "keep": keep},
                        "status": {"last_success": {"finished": "2025-01-02T02:30:00Z", "ok": True}},
                        "pending_restore": None},
                       {"config": {"job": "50502", "keep": {**keep, "daily": 1}},
                        "status": {"last_success": {"finished": "2024-12-30T02:30:00Z", "ok": True}}}]}
    fake = FakeHosts({(job.host, "status"): answer})
    found = service.statuses(plan, fake, [job, find_job(plan, "50502"), find_job(plan, "76540")])
    assert [s.reachable for s in found] == [True, True, False]
    report = backup_policies.live_report(plan, [s.as_dict(now) for s in found], now=now)
    failed = {(f.rule, f.subject) for f in report.findings if f.status is Status.FAILED}
    assert failed == {("BACKUP-02", "backup:50502"), ("BACKUP-03", "backup:50502"),
                      ("BACKUP-02", "backup:76540")}
    assert report.exit_code() == 2


def test_plan_rule_backup_declared(plan: Plan) -> None:
    outcomes = list(backup_policies.backup_declared.check(plan, Context(today=date(2025, 1, 1))))
    assert outcomes and all(o.message is None for o in outcomes)
    bad_tenant = plan.tenants[1].model_copy(update={"backup": plan.tenants[1].backup.model_copy(
        update={"time": "25:00", "keep_daily": 0})})
    bad = plan.model_copy(update={"tenants": [plan.tenants[0], bad_tenant, *plan.tenants[2:]]})
    messages = [o.message for o in backup_policies.backup_declared.check(bad, Context(today=date(2025, 1, 1)))
                if o.message]
    assert len(messages) == 1 and "not HH:MM" in messages[0] and "keep_daily is 0" in messages[0]


def test_plan_rule_backup_declared_names_corsican_repositories_as_the_planner_does(plan: Plan) -> None:
    from relais.planner import BACKUP_ROOT

    def with_repository(repository: str) -> Plan:
        tenant = plan.tenants[0].model_copy(update={"id": "2A004", "backup": plan.tenants[0].backup.model_copy(
            update={"repository": repository})})
        return plan.model_copy(update={"tenants": [tenant]})

    def messages(p: Plan) -> list[str]:
        return [o.message for o in backup_policies.backup_declared.check(p, Context(today=date(2025, 1, 1)))
                if o.message]

    assert messages(with_repository(f"{BACKUP_ROOT}/2a004")) == []
    assert "is not /srv/borg/2a004" in messages(with_repository(f"{BACKUP_ROOT}/2A004"))[0]


def test_cli_errors_are_one_line_not_tracebacks(plan: Plan) -> None:
    from relais.cli.backup import app

    result = CliRunner().invoke(app, ["run"], obj=State(inventory=SHIPPED_INVENTORY))
    assert isinstance(result.exception, BackupError) and "which commune" in result.exception.message
    result = CliRunner().invoke(app, ["restore", "Bayeux", "--yes"], obj=State(inventory=SHIPPED_INVENTORY))
    assert isinstance(result.exception, BackupError)


def test_agent_is_standard_library_only() -> None:
    source = Path(agent.__file__).read_text()
    assert "import relais" not in source and "from relais" not in source
