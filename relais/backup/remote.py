"""The controller's side of backups: run the host agent over SSH and read its JSON answers."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relais.backup.jobs import AGENT_PATH, BackupError, BackupJob
from relais.plan import Plan

Runner = Callable[[str, str, int], "subprocess.CompletedProcess[str]"]
"""(host name, shell command, timeout seconds) -> completed process; tests plug a fake in."""


def ssh_runner(plan: Plan) -> Runner:
    from relais.deploy.targets import TargetError, resolve

    targets: dict[str, Any] = {}

    def run(host: str, command: str, timeout: int) -> subprocess.CompletedProcess[str]:
        if host not in targets:
            try:
                targets[host] = resolve(plan, plan.host(host))
            except TargetError as error:
                raise BackupError(error.message, hint=error.hint) from None
            except KeyError:
                raise BackupError(f"no host {host} in the Plan",
                                  hint="hosts: " + ", ".join(h.name for h in plan.hosts)) from None
        target = targets[host]
        sudo = "" if target.user == "root" else "sudo -n "
        try:
            done: subprocess.CompletedProcess[str] = target.run(sudo + command, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BackupError(f"{host}: `{command}` did not finish within {timeout} s") from None
        return done

    return run


@dataclass
class Agent:
    """The relais-backup agent of one host."""

    host: str
    runner: Runner

    def call(self, *args: str, timeout: int = 3600, allow_failure: bool = False) -> dict[str, Any]:
        command = " ".join(shlex.quote(a) for a in (AGENT_PATH, *args))
        done = self.runner(self.host, command, timeout)
        try:
            answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
            if done.returncode == 255:
                raise BackupError(f"cannot reach {self.host} over SSH: {detail[0]}",
                                  hint="check that the host is up (`relais lab status`)") from None
            raise BackupError(f"the backup agent on {self.host} did not answer ({detail[0]})",
                              hint=f"deploy backups first: `relais deploy --limit {self.host}`") from None
        if not answer.get("ok", False) and not allow_failure:
            raise BackupError(f"{self.host}: {answer.get('error', 'the backup agent failed')}")
        return answer


def agent_for(job: BackupJob, runner: Runner, host: str | None = None) -> Agent:
    return Agent(host or job.host, runner)


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")


def age_seconds(finished: str | None, now: datetime) -> float | None:
    if not finished:
        return None
    moment = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (now - moment).total_seconds()
