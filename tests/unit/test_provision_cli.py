"""`relais provision`: offline preview, the clear error without the pulumi CLI, and the
addresses written back for the planner."""

# Fixtures shared with test_stacks_openstack are imported, then requested by name.
# ruff: noqa: F811

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from relais import referential
from relais.cli import _root
from relais.cli.provision import app as provision_app
from relais.plan import Plan
from relais.planner import plan_directory
from relais.provision import ProvisionError, PulumiMissing, controller_keys, default_state_dir, stack_options
from relais.provision.automation import missing_credentials, pulumi_cli, run_operation
from relais.provision.outputs import (
    ProvisionedHost,
    hosts_from_outputs,
    provisioned_path,
    read_provisioned,
    remove_provisioned,
    write_provisioned,
)
from relais.provision.paths import backend_url
from tests.conftest import FIXTURES
from tests.unit.test_stacks_openstack import KEY, key_env  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

cli = typer.Typer()
cli.callback()(_root)
cli.add_typer(provision_app, name="provision")


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("RELAIS_PULUMI", raising=False)


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def test_offline_preview_renders_the_example_region(inventory_dir: Path, key_env: Path, no_pulumi: None) -> None:
    result = CliRunner().invoke(cli, ["-i", str(inventory_dir), "provision", "preview", "--offline",
                                      "--stack", "openstack"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "review only" in out and "CrossGuard: no violation" in out
    for host in ("msg-caen-1", "msg-rouen-1", "backup-rouen", "mon-caen"):
        assert f"openstack:compute/instance:Instance  {host}-instance" in out
    assert "tcp/22 from 10.77.0.1/32" in out and "tcp/22 from 0.0.0.0/0" not in out
    assert "4 Instance" in out


def test_offline_preview_json_and_commune_records(inventory_dir: Path, key_env: Path, no_pulumi: None) -> None:
    result = CliRunner().invoke(cli, ["-i", str(inventory_dir), "provision", "preview", "--offline",
                                      "--stack", "dns", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"] == {"openstack:dns/recordSet:RecordSet": 14}
    assert {r["name"] for r in data["commune_records"]} >= {"saint-lo.fr", "caen.fr", "xmpp.lesloges.fr"}
    assert data["violations"] == []


def test_offline_preview_exits_2_on_a_violation(ref: referential.Referential, tmp_path: Path, key_env: Path) -> None:
    inventory = tmp_path / "inventory"
    import shutil

    shutil.copytree(FIXTURES / "stacks-region", inventory)
    hosting = inventory / "hosting.yaml"
    hosting.write_text(hosting.read_text().replace("region: fr-par", "region: us-east"))
    result = CliRunner().invoke(cli, ["-i", str(inventory), "provision", "preview", "--offline",
                                      "--stack", "scaleway"])
    assert result.exit_code == 2, result.output
    assert "RELAIS-SOV-01" in result.stdout and "us-east" in result.stdout


@pytest.mark.parametrize("command", ["preview", "up", "refresh", "destroy"])
def test_without_the_pulumi_cli_a_clear_error(inventory_dir: Path, no_pulumi: None, command: str) -> None:
    result = CliRunner().invoke(cli, ["-i", str(inventory_dir), "provision", command, "--stack", "openstack"])
    assert isinstance(result.exception, PulumiMissing)
    assert "`pulumi` CLI is not installed" in result.exception.message
    assert "install" in (result.exception.hint or "") and "--offline" in (result.exception.hint or "")


def test_pulumi_cli_detection(tmp_path: Path) -> None:
    with pytest.raises(PulumiMissing):
        pulumi_cli({"PATH": str(tmp_path)})
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert pulumi_cli({"PATH": str(tmp_path)}) == str(fake)
    assert pulumi_cli({"RELAIS_PULUMI": str(fake), "PATH": ""}) == str(fake)


def test_credentials_come_from_the_environment(ref: referential.Referential, tmp_path: Path, key_env: Path) -> None:
    assert missing_credentials("openstack", {"OS_CLOUD": "region"}) == []
    assert missing_credentials("openstack", {}) == ["OS_AUTH_URL"]
    assert missing_credentials("scaleway", {"SCW_ACCESS_KEY": "x"}) == ["SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"]
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    plan = plan_directory(FIXTURES / "stacks-region", referential=ref).plan
    with pytest.raises(ProvisionError) as caught:
        run_operation(plan, stack_options("scaleway"), "up", inventory=tmp_path, state_dir=tmp_path / "state",
                      environ={"PATH": str(fake.parent)})
    assert "SCW_ACCESS_KEY" in caught.value.message and "never reads" in (caught.value.hint or "")
    with pytest.raises(ProvisionError) as caught:
        run_operation(plan, stack_options("openstack"), "up", inventory=tmp_path, state_dir=tmp_path / "state",
                      environ={"PATH": str(fake.parent), "OS_CLOUD": "caen"})
    assert "PULUMI_CONFIG_PASSPHRASE" in caught.value.message
    assert not (tmp_path / "state").exists()  # nothing is touched before every check passes


def test_up_refuses_a_review_only_stack(ref: referential.Referential, tmp_path: Path, key_env: Path,
                                        inventory_dir: Path) -> None:
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    plan: Plan = plan_directory(inventory_dir, referential=ref).plan
    with pytest.raises(ProvisionError, match="no host has provider openstack"):
        run_operation(plan, stack_options("openstack", review_lab=True), "up", inventory=inventory_dir,
                      state_dir=tmp_path / "state", environ={"RELAIS_PULUMI": str(fake)})


def test_addresses_written_back_where_the_planner_reads_them(tmp_path: Path) -> None:
    hosts = hosts_from_outputs({"hosts": {
        "msg-caen-1": {"address": "10.160.23.5", "public_address": "203.0.113.7"},
        "mon-caen": {"address": "10.160.23.6", "public_address": None},
    }})
    path = write_provisioned(tmp_path, "openstack", hosts)
    assert path == provisioned_path(tmp_path, "openstack") == tmp_path / "provisioned" / "openstack.yaml"
    write_provisioned(tmp_path, "scaleway", {"msg-rouen-1": ProvisionedHost("172.16.4.2", "2001:db8::7")})
    assert read_provisioned(tmp_path) == {
        "msg-caen-1": ProvisionedHost("10.160.23.5", "203.0.113.7", "openstack"),
        "mon-caen": ProvisionedHost("10.160.23.6", None, "openstack"),
        "msg-rouen-1": ProvisionedHost("172.16.4.2", "2001:db8::7", "scaleway"),
    }
    remove_provisioned(tmp_path, "scaleway")
    assert set(read_provisioned(tmp_path)) == {"msg-caen-1", "mon-caen"}
    assert read_provisioned(tmp_path / "nowhere") == {}


def test_provisioned_files_are_checked(tmp_path: Path) -> None:
    write_provisioned(tmp_path, "openstack", {"msg-caen-1": ProvisionedHost("10.0.0.5")})
    write_provisioned(tmp_path, "scaleway", {"msg-caen-1": ProvisionedHost("10.0.0.6")})
    with pytest.raises(ProvisionError, match="also provisioned by stack openstack"):
        read_provisioned(tmp_path)
    (tmp_path / "provisioned" / "scaleway.yaml").write_text("version: 1\nhosts:\n  x: {address: not-an-ip}\n")
    with pytest.raises(ProvisionError, match="not an IP address"):
        read_provisioned(tmp_path)
    with pytest.raises(ProvisionError, match="not a mapping"):
        hosts_from_outputs({"hosts": ["a"]})


def test_state_dir_and_controller_key(tmp_path: Path) -> None:
    assert default_state_dir({"RELAIS_PULUMI_STATE": str(tmp_path / "s")}) == tmp_path / "s"
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "relais" / "pulumi"
    assert backend_url(tmp_path) == f"file://{tmp_path.resolve()}"
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    assert controller_keys(key, {}) == (KEY,)
    private = tmp_path / "id"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    with pytest.raises(ProvisionError, match="not an OpenSSH public key"):
        controller_keys(private, {})
    with pytest.raises(ProvisionError, match="cannot read"):
        controller_keys(tmp_path / "missing.pub", {})
