"""The base deploy on real lab hosts: it converges, a second run changes nothing,
and the controller then logs in as the named deploy account, not as root."""

from __future__ import annotations

from relais.cli.context import default_inventory
from relais.deploy import DeployReport, deploy_plan
from relais.deploy.context import ADMIN_GROUP, DEPLOY_USER
from relais.lab import Lab
from relais.plan import Plan


def test_first_deploy_succeeds_on_every_host(deployed: DeployReport, plan: Plan) -> None:
    assert {h.host for h in deployed.hosts} == {h.name for h in plan.lab_hosts()}
    assert all(h.connected and h.failed == 0 for h in deployed.hosts)


def test_second_deploy_changes_nothing(deployed: DeployReport, plan: Plan) -> None:
    again = deploy_plan(plan, default_inventory())
    changed = {h.host: [o.name for o in h.operations if o.changed] for h in again.hosts if h.changed}
    assert again.ok and not changed, changed
    assert {h.user for h in again.hosts} == {DEPLOY_USER}


def test_accounts_and_sudo(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    for host in plan.lab_hosts():
        members = lab.exec(host.name, ["getent", "group", ADMIN_GROUP]).stdout.strip().split(":")[-1]
        assert set(members.split(",")) == {DEPLOY_USER, *(a.login for a in plan.admins)}
        keys = lab.exec(host.name, ["cat", f"/home/{plan.admins[0].login}/.ssh/authorized_keys"]).stdout
        assert plan.admins[0].ssh_keys[0] in keys
        assert lab.exec(host.name, ["su", "-", DEPLOY_USER, "-c", "sudo -n true"]).returncode == 0


def test_time_and_logs_policy(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    host = plan.lab_hosts()[0].name
    assert lab.exec(host, ["readlink", "/etc/localtime"]).stdout.strip().endswith("Europe/Paris")
    journald = lab.exec(host, ["cat", "/etc/systemd/journald.conf.d/relais.conf"]).stdout
    assert "MaxRetentionSec=" in journald
    assert lab.exec(host, ["systemctl", "is-active", "systemd-journald"]).stdout.strip() == "active"


def test_dry_run_reports_a_change_made_by_hand(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    host = plan.lab_hosts()[0].name
    lab.exec(host, ["sh", "-c", "echo Europe/London > /etc/timezone"])
    dry = deploy_plan(plan, default_inventory(), limit=[host], dry=True)
    pending = [o.name for h in dry.hosts for o in h.operations if o.changed]
    assert pending == ["Base system | Record the timezone"]
    assert lab.exec(host, ["cat", "/etc/timezone"]).stdout.strip() == "Europe/London"  # dry: untouched
    repaired = deploy_plan(plan, default_inventory(), limit=[host])
    assert repaired.ok and repaired.changed == 1
    assert lab.exec(host, ["cat", "/etc/timezone"]).stdout.strip() == "Europe/Paris"
