"""Read a host's facts in one SSH command instead of one command per fact.

pyinfra 3 keeps no facts between operations: preparing a host runs one command per fact
(several hundred for a messaging host), and each costs an SSH channel, a shell and sudo.
Nothing changes on a host while it is being prepared, so the facts a prepare reads are
those its commands print at its start. This module records, per host, the fact commands
a prepare ran (`FactLog`), and at the next prepare runs them all in one batch on the host
(`prefetch`), then answers the same commands from that batch (`serve`). A command not in
the batch (a new operation, other arguments) runs as usual, and is recorded for next time.

Only the prepare phase is served: executing re-reads every fact live. A command is
recorded only if it carries nothing masked (pyinfra's sensitive arguments) and runs with
plain connector arguments (sudo or not, no other user, environment or directory).
The record is a list of fact commands (paths, unit and package names) kept in the
controller's cache directory, readable by its owner only.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relais.referential import cache_dir

FORMAT = "relais.facts/v1"
MAX_COMMANDS = 5000

# Connector arguments a recorded command may carry, with the values it may have to be
# batched (anything else runs live: another user, an environment, a directory, stdin...).
_NEUTRAL: dict[str, tuple[object, ...]] = {
    "_sudo_user": (None, ""), "_use_sudo_login": (None, False), "_sudo_password": (None, ""),
    "_preserve_sudo_env": (None, False), "_su_user": (None, ""), "_use_su_login": (None, False),
    "_preserve_su_env": (None, False), "_su_shell": (None, "", False), "_su_password": (None, ""),
    "_doas": (None, False), "_doas_user": (None, ""), "_dzdo": (None, False), "_dzdo_user": (None, ""),
    "_shell_executable": (None, "sh"), "_chdir": (None, ""), "_env": (None, {}),
    "_get_pty": (None, False), "_stdin": (None,), "_success_exit_codes": (None, [0]),
    "_retry_until": (None,),
}
# Arguments that do not change what a command prints: the batch runs once, as root or not.
_ANY_VALUE = frozenset({"_sudo", "_timeout", "_temp_dir", "_retries", "_retry_delay"})


def record_path(name: str, address: str, port: int, user: str) -> Path:
    """One record per host as the controller reaches it (lab instances reuse host names)."""
    key = hashlib.sha256(f"{name}|{address}|{port}|{user}".encode()).hexdigest()[:24]
    return cache_dir() / "facts" / f"{key}.json"


def batchable(arguments: dict[str, Any]) -> bool:
    return all(key in _ANY_VALUE or value in _NEUTRAL.get(key, ()) for key, value in arguments.items())


@dataclass
class Result:
    status_code: int
    stdout: list[str]
    stderr: list[str]


def _lines(data: bytes) -> list[str]:
    """The lines pyinfra would read from a channel (split on newlines, none dropped)."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def batch_script(commands: list[str]) -> tuple[str, str]:
    """A POSIX shell script running each command as pyinfra would (`sh -c`), framing each
    result as `<marker> <exit code> <stdout bytes> <stderr bytes>` then the raw bytes."""
    marker = f"relais-fact-{secrets.token_hex(8)}"
    lines = [
        'd=$(mktemp -d) || exit 97',
        "trap 'rm -rf \"$d\"' EXIT",
        'run() { sh -c "$1" >"$d/o" 2>"$d/e" </dev/null; r=$?; '
        f'printf "{marker} %s %s %s\\n" "$r" "$(wc -c <"$d/o")" "$(wc -c <"$d/e")"; cat "$d/o" "$d/e"; }}',
    ]
    lines += [f"run {shlex.quote(command)}" for command in commands]
    return "\n".join(lines) + "\n", marker


def parse_batch(data: bytes, marker: str, count: int) -> list[Result]:
    results: list[Result] = []
    head = marker.encode() + b" "
    position = 0
    while len(results) < count:
        if not data.startswith(head, position):
            raise ValueError(f"fact batch: result {len(results)} not framed")
        end = data.index(b"\n", position)
        code, out_size, err_size = (int(v) for v in data[position + len(head):end].split())
        out_start = end + 1
        err_start = out_start + out_size
        position = err_start + err_size
        if position > len(data):
            raise ValueError(f"fact batch: result {len(results)} truncated")
        results.append(Result(code, _lines(data[out_start:err_start]), _lines(data[err_start:position])))
    return results


@dataclass
class FactLog:
    """The fact commands of one host's prepare, in order, for its next prepare."""

    path: Path
    commands: list[tuple[str, bool]] = field(default_factory=list)
    seen: set[tuple[str, bool]] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> FactLog:
        log = cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return log
        if isinstance(data, dict) and data.get("format") == FORMAT:
            for item in data.get("commands", [])[:MAX_COMMANDS]:
                if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                        and isinstance(item[1], bool)):
                    log.add(item[0], item[1])
        return log

    def add(self, command: str, sudo: bool) -> None:
        key = (command, sudo)
        if key not in self.seen and len(self.commands) < MAX_COMMANDS:
            self.seen.add(key)
            self.commands.append(key)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"format": FORMAT, "commands": [list(c) for c in self.commands]}, out)
        os.replace(temporary, self.path)


Runner = Callable[[str, bool], bytes]
"""Runs a script on the host (as root if True) and returns its standard output."""


def prefetch(commands: list[tuple[str, bool]], run: Runner) -> dict[tuple[str, bool], Result]:
    """Every command's result, from one run per privilege (sudo or not)."""
    answers: dict[tuple[str, bool], Result] = {}
    for sudo in (True, False):
        group = [command for command, privileged in commands if privileged is sudo]
        if not group:
            continue
        script, marker = batch_script(group)
        results = parse_batch(run(script, sudo), marker, len(group))
        answers.update({(command, sudo): result for command, result in zip(group, results, strict=True)})
    return answers


def serve(host: Any, state: Any, log: FactLog, answers: dict[tuple[str, bool], Result]) -> Callable[[], None]:
    """Answer `host`'s fact commands from `answers` while `state` prepares; record every
    batchable command in `log`. Returns the function that puts the host back as it was."""
    from pyinfra.api.command import StringCommand
    from pyinfra.api.state import StateStage
    from pyinfra.connectors.util import CommandOutput, OutputLine

    live: Callable[..., tuple[bool, Any]] = host.run_shell_command

    def run_shell_command(command: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        if state.current_stage != StateStage.Prepare or args:
            return live(command, *args, **kwargs)
        if isinstance(command, StringCommand):  # facts give strings or commands
            raw = command.get_raw_value()
            if command.get_masked_value() != raw:
                return live(command, *args, **kwargs)
        elif isinstance(command, str):
            raw = command
        else:
            return live(command, *args, **kwargs)
        arguments = {k: v for k, v in kwargs.items() if k.startswith("_")}
        if not batchable(arguments):
            return live(command, *args, **kwargs)
        key = (raw, bool(arguments.get("_sudo")))
        log.add(*key)
        answer = answers.get(key)
        if answer is None:
            return live(command, *args, **kwargs)
        lines = [OutputLine("stdout", line) for line in answer.stdout]
        lines += [OutputLine("stderr", line) for line in answer.stderr]
        codes = arguments.get("_success_exit_codes") or [0]
        return answer.status_code in codes, CommandOutput(lines)

    host.run_shell_command = run_shell_command

    def restore() -> None:
        del host.run_shell_command

    return restore


def ssh_runner(state: Any, host: Any) -> Runner:
    """Run a script through the host's own pyinfra SSH connection (stdin, raw stdout)."""
    from pyinfra.api.command import StringCommand
    from pyinfra.connectors.util import make_unix_command_for_host

    def run(script: str, sudo: bool) -> bytes:
        command = make_unix_command_for_host(state, host, StringCommand("sh", "-s"), _sudo=sudo)
        stdin, stdout, stderr = host.connector.client.exec_command(command.get_raw_value())
        stdin.write(script.encode())
        stdin.close()
        stdin.channel.shutdown_write()
        data: bytes = stdout.read()
        error = stderr.read().decode("utf-8", errors="replace").strip()
        code = stdout.channel.recv_exit_status()
        if code != 0:
            raise OSError(f"fact batch exited with {code}: {error[:200]}")
        return data

    return run
