"""Facts read in one batch must be exactly what pyinfra reads one command at a time."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from pyinfra.api.command import MaskString, StringCommand
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State, StateStage

from relais.deploy import prefetch
from relais.deploy.prefetch import FactLog

COMMANDS = [
    "printf 'a\\nb'",                                   # no newline at the end
    "echo out; echo err >&2; exit 3",                  # both streams, failure
    "true",                                            # nothing at all
    "printf '\\n\\nx\\n\\n'",                           # empty lines kept
    "echo \"it's\" 'quoted' $((1 + 2))",               # quotes and expansions
    "printf 'relais-fact-0000 0 99 99\\n'",             # looks like a frame header
    "echo $0 >&2; cat",                                # no stdin: must not hang
    "exit 1",
]


@pytest.fixture()
def local_host() -> tuple[State, object]:
    state = State(inventory=Inventory((["@local"], {})), config=Config())
    connect_all(state)
    return state, state.inventory.get_host("@local")


def run_locally(script: str, sudo: bool) -> bytes:
    assert not sudo
    return subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, check=True).stdout


def test_batch_gives_what_pyinfra_reads_command_by_command(local_host: tuple[State, object]) -> None:
    _, host = local_host
    answers = prefetch.prefetch([(c, False) for c in COMMANDS], run_locally)
    for command in COMMANDS:
        status, output = host.run_shell_command(StringCommand(command))  # type: ignore[attr-defined]
        answer = answers[(command, False)]
        assert (answer.status_code == 0) is status, command
        assert answer.stdout == output.stdout_lines, command
        assert answer.stderr == output.stderr_lines, command


def test_bytes_that_are_not_utf8_do_not_break_the_batch() -> None:
    # pyinfra itself drops such output (its reader raises); the batch keeps the others.
    answers = prefetch.prefetch([("printf '\\377 x\\n'", False), ("echo next", False)], run_locally)
    assert answers[("printf '\\377 x\\n'", False)].stdout == ["\ufffd x"]
    assert answers[("echo next", False)].stdout == ["next"]


def test_a_truncated_or_foreign_batch_is_refused() -> None:
    script, marker = prefetch.batch_script(["echo hello", "echo world"])
    data = run_locally(script, False)
    assert [r.stdout for r in prefetch.parse_batch(data, marker, 2)] == [["hello"], ["world"]]
    with pytest.raises(ValueError, match="truncated"):
        prefetch.parse_batch(data[:-3], marker, 2)
    with pytest.raises(ValueError, match="not framed"):
        prefetch.parse_batch(data, "relais-fact-other", 2)
    with pytest.raises(ValueError, match="not framed"):
        prefetch.parse_batch(data, marker, 3)


def test_served_in_prepare_only_and_recorded_for_next_time(local_host: tuple[State, object], tmp_path: Path) -> None:
    state, host = local_host
    counter = tmp_path / "runs"
    command = f"echo run >> {counter}; wc -l < {counter}"
    log = FactLog(tmp_path / "record.json")
    answers = prefetch.prefetch([(command, False)], run_locally)  # the batch ran it once
    state.set_stage(StateStage.Prepare)
    restore = prefetch.serve(host, state, log, answers)
    try:
        for _ in range(3):  # answered from the batch: the command does not run again
            assert host.run_shell_command(StringCommand(command))[1].stdout_lines == ["1"]  # type: ignore[attr-defined]
        other = f"echo other >> {counter}"
        host.run_shell_command(StringCommand(other))  # type: ignore[attr-defined]  # not in the batch: runs
        secret = StringCommand("echo", MaskString("s3cret"))
        host.run_shell_command(secret)  # type: ignore[attr-defined]
        host.run_shell_command(StringCommand("pwd"), _chdir="/")  # type: ignore[attr-defined]
        state.set_stage(StateStage.Execute)  # executing reads live
        assert host.run_shell_command(StringCommand(command))[1].stdout_lines == ["3"]  # type: ignore[attr-defined]
    finally:
        restore()
    assert "run_shell_command" not in vars(host)
    assert log.commands == [(command, False), (other, False)]  # not the masked one, not the chdir one


def test_record_round_trip_private_and_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "facts" / "host.json"
    log = FactLog(path)
    log.add("cat /etc/group", True)
    log.add("cat /etc/group", True)
    log.add("uname -s", False)
    log.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FactLog.load(path).commands == [("cat /etc/group", True), ("uname -s", False)]
    path.write_text("{not json")
    assert FactLog.load(path).commands == []
    path.write_text('{"format": "relais.facts/v0", "commands": [["x", true]]}')
    assert FactLog.load(path).commands == []
    path.write_text('{"format": "relais.facts/v1", "commands": [["x", "yes"], ["y", true], 3]}')
    assert FactLog.load(path).commands == [("y", True)]


def test_record_is_per_host_as_reached() -> None:
    one = prefetch.record_path("msg-caen-1", "10.77.0.11", 22, "relais")
    assert one == prefetch.record_path("msg-caen-1", "10.77.0.11", 22, "relais")
    assert one != prefetch.record_path("msg-caen-1", "10.81.0.11", 22, "relais")  # another lab
    assert one != prefetch.record_path("msg-caen-1", "10.77.0.11", 22, "root")  # bootstrap


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"_sudo": True, "_timeout": 10, "_env": {}, "_success_exit_codes": [0], "_shell_executable": "sh"}, True),
    ({"_sudo": True, "_sudo_user": "postgres"}, False),
    ({"_sudo": False, "_env": {"LANG": "C"}}, False),
    ({"_stdin": "data"}, False),
    ({"_chdir": "/srv"}, False),
    ({"_unknown_argument": 1}, False),
])
def test_only_plain_commands_are_batched(arguments: dict[str, object], expected: bool) -> None:
    assert prefetch.batchable(arguments) is expected


def test_a_failed_batch_means_facts_read_one_by_one(local_host: tuple[State, object], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from paramiko import SSHException

    from relais.deploy.runner import _serve_facts
    from relais.deploy.targets import Target

    class BrokenClient:
        def exec_command(self, command: str) -> None:
            raise SSHException("channel refused")

    state, host = local_host
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = Target("h", "127.0.0.1", "relais", 22, tmp_path / "key", tmp_path / "known", lab=True)
    record = FactLog(prefetch.record_path("h", "127.0.0.1", 22, "relais"))
    record.add("echo live", False)
    record.save()
    host.connector.client = BrokenClient()  # type: ignore[attr-defined]
    state.set_stage(StateStage.Prepare)
    restore, log = _serve_facts(state, host, target)
    try:
        assert host.run_shell_command(StringCommand("echo live"))[1].stdout_lines == ["live"]  # type: ignore[attr-defined]
    finally:
        restore()
    assert log is not None and log.commands == [("echo live", False)]
