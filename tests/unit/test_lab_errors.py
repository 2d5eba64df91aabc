"""The lab's user-facing failures are one clear line and a hint, without root."""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relais.errors import LabError
from relais.lab import system
from relais.lab.paths import LabPaths
from relais.lab.ssh import SshParams, ssh_params


def test_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root") as error:
        system.require_root("up")
    assert error.value.hint == "run it as root, e.g. `sudo relais lab up`"


def test_missing_tools_name_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("systemd-nspawn", "debootstrap") else "/x")
    with pytest.raises(LabError, match="systemd-nspawn, debootstrap not found") as error:
        system.require_tools("systemd-nspawn", "debootstrap", "ip")
    assert error.value.hint is not None
    assert "apt-get install debootstrap systemd-container" in error.value.hint
    assert "lab-prereqs.sh" in error.value.hint


def test_disk_full(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10, 10, 100 * 1024 * 1024))
    with pytest.raises(LabError, match="disk full: 100 MiB free") as error:
        system.require_space(tmp_path / "not" / "yet", 1500, "building the base image")
    assert error.value.hint is not None and "--purge" in error.value.hint


def test_failed_command_names_itself() -> None:
    with pytest.raises(LabError, match="`false` failed"):
        system.run(["false"])


def test_ssh_params_when_the_lab_is_not_up(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="the lab is not up"):
        ssh_params("msg-caen-1", LabPaths(state=tmp_path, cache=tmp_path))


def test_ssh_command_line_checks_host_keys() -> None:
    params = SshParams("h", "h.example", "10.77.0.11", 22, "root", Path("/k"), Path("/kh"), Path("/c"))
    argv = params.argv(["echo", "a b"])
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/kh" in argv
    assert argv[-3:] == ["10.77.0.11", "--", "echo 'a b'"]


def test_cli_lab_up_not_root_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from relais.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["lab", "status"])
    assert result.exit_code == 1
    assert isinstance(result.exception, LabError)
    assert "needs root" in result.exception.message


def test_a_host_whose_nspawn_ended_says_so_with_its_log(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from relais.lab.lab import _boot_failure

    log = tmp_path / "nspawn.log"
    log.write_text("Spawning container mon-caen on /var/lib/relais/...\nDirectory tree is busy.\n\n")
    ended = SimpleNamespace(processes=lambda: SimpleNamespace(nspawn=[]), log=log)
    assert _boot_failure("mon-caen", ended) == "mon-caen: systemd-nspawn ended (Directory tree is busy.)"  # type: ignore[arg-type]
    # nspawn's banner and its complaint on exit about /run (not a tmpfs) hide the cause otherwise.
    log.write_text(
        "Spawning container mon-caen on /var/lib/relais/lab/hosts/mon-caen/root.\n"
        "Press ^] three times within 1s to kill container.\n"
        "Failed to add new veth interfaces (vb-mon-caen:host0): File exists\n"
        'Attempted to remove disk file system under "/run/systemd/nspawn/propagate/mon-caen", and we can\'t allow that.\n'
    )
    assert _boot_failure("mon-caen", ended) == (  # type: ignore[arg-type]
        "mon-caen: systemd-nspawn ended (Failed to add new veth interfaces (vb-mon-caen:host0): File exists)"
    )
    log.write_text("Spawning container mon-caen on /var/lib/relais/lab/hosts/mon-caen/root.\n")
    assert _boot_failure("mon-caen", ended) == "mon-caen: systemd-nspawn ended"  # type: ignore[arg-type]
    running = SimpleNamespace(processes=lambda: SimpleNamespace(nspawn=[4242]), log=log)
    assert _boot_failure("mon-caen", running) == "mon-caen: did not answer over SSH within 120 s"  # type: ignore[arg-type]


def test_a_network_interface_is_found_by_its_index() -> None:
    # How a lab host's link to the bridge is named: its host0's peer index, looked up here.
    from relais.lab import system

    loopback = int(Path("/sys/class/net/lo/ifindex").read_text())
    assert system.link_named_by_index(loopback) == "lo"
    assert system.link_named_by_index(2**31 - 1) is None
