"""Run the deploys of the Plan on its hosts with pyinfra's Python API.

One pyinfra State for the whole run: operations are added per host (facts are
gathered then), `--dry` stops after that prepare phase and reports what would
change, otherwise `run_ops` executes them. Results are read from pyinfra's
operation metadata, never parsed from output.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from relais.deploy import prefetch
from relais.deploy.context import HostContext
from relais.deploy.prefetch import FactLog
from relais.deploy.targets import Target
from relais.errors import RelaisError
from relais.plan import Plan

os.environ.setdefault("PYINFRA_PROGRESS", "off")  # our own progress display owns the terminal


class DeployError(RelaisError):
    """A deploy could not run (connection, facts, or an operation that failed)."""


@dataclass
class OperationResult:
    name: str
    changed: bool
    success: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "changed": self.changed, "success": self.success, "error": self.error}


@dataclass
class HostReport:
    host: str
    user: str
    connected: bool = False
    error: str | None = None
    operations: list[OperationResult] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(1 for op in self.operations if op.changed and op.success)

    @property
    def failed(self) -> int:
        return sum(1 for op in self.operations if not op.success) + (0 if self.error is None else 1)

    @property
    def unchanged(self) -> int:
        return sum(1 for op in self.operations if not op.changed and op.success)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "user": self.user, "connected": self.connected, "error": self.error,
                "changed": self.changed, "unchanged": self.unchanged, "failed": self.failed,
                "operations": [op.as_dict() for op in self.operations]}


@dataclass
class DeployReport:
    dry: bool
    hosts: list[HostReport]

    @property
    def ok(self) -> bool:
        return all(h.failed == 0 for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {"dry": self.dry, "ok": self.ok, "changed": self.changed,
                "hosts": [h.as_dict() for h in self.hosts]}


class Reporter:
    """Progress of a deploy; the CLI plugs a rich display in, tests a silent one."""

    def preparing(self, host: str, step: str) -> None: ...
    def host_started(self, host: str, operations: int) -> None: ...
    def operation_done(self, host: str, name: str, changed: bool, success: bool) -> None: ...
    def message(self, text: str) -> None: ...


DeployFunc = Callable[..., object]


def run_deploy(
    plan: Plan,
    targets: Iterable[Target],
    deploys_for: Callable[[HostContext], list[DeployFunc]],
    context_for: Callable[[Target], HostContext],
    *,
    dry: bool,
    reporter: Reporter | None = None,
) -> DeployReport:
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import BaseStateCallback, State, StateStage

    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
    progress = reporter or Reporter()
    targets = list(targets)
    reports = {t.name: HostReport(t.name, t.user) for t in targets}
    if not targets:
        return DeployReport(dry, [])

    inventory = Inventory(([(t.name, t.pyinfra_data()) for t in targets], {}))
    # Uploads go through /tmp: the hardening's pam_tmpdir gives root a private TMPDIR that
    # the deploy account cannot write to before sudo.
    config = Config(CONNECT_TIMEOUT=10, FAIL_PERCENT=100, TEMP_DIR="/tmp")
    state = State(inventory=inventory, config=config)

    class Callback(BaseStateCallback):
        @staticmethod
        def operation_host_success(state: State, host: Any, op_hash: str, retry_count: int = 0) -> None:
            # pyinfra marks the operation complete after its callbacks: show the predicted change.
            op_data = state.get_op_data_for_host(host, op_hash)
            changed = bool(op_data.operation_meta._maybe_is_change) and _condition_held(
                op_data.global_arguments.get("_if"))
            progress.operation_done(host.name, op_name(host.name, op_hash), changed, True)

        @staticmethod
        def operation_host_error(state: State, host: Any, op_hash: str, retry_count: int = 0,
                                 max_retries: int = 0) -> None:
            progress.operation_done(host.name, op_name(host.name, op_hash), False, False)

    state.add_callback_handler(Callback())
    state.set_stage(StateStage.Connect)
    connect_all(state)
    by_name = {t.name: t for t in targets}
    active = {h.name: h for h in state.inventory.iter_activated_hosts()}
    for host in active.values():
        _no_delay(host)
    for name, report in reports.items():
        report.connected = name in active
        if not report.connected:
            report.error = f"cannot connect over SSH as {by_name[name].user}@{by_name[name].address}"

    state.set_stage(StateStage.Prepare)
    # pyinfra keys operations by their place in the code, shared by every host: a loop
    # that names one operation per certificate gives one key several names. The name
    # a host added is the one that appeared while its deploy was being added.
    names: dict[tuple[str, str], str] = {}

    def op_name(host_name: str, op_hash: str) -> str:
        return names.get((host_name, op_hash), op_hash)

    for name, host in active.items():
        ctx = context_for(by_name[name])
        before = {h: set(m.names) for h, m in state.op_meta.items()}
        progress.preparing(name, "its last deploy (one batch)")
        restore, log = _serve_facts(state, host, by_name[name])
        try:
            for func in deploys_for(ctx):
                progress.preparing(name, getattr(func, "deploy_name", func.__name__))
                add_deploy(state, func, ctx, host=host)
        except (PyinfraError, OSError) as exc:
            reports[name].error = f"preparing the deploy failed: {exc}"
            state.fail_hosts({host})
        except RelaisError:
            raise
        else:
            _save_quietly(log)
        finally:
            restore()
        for op_hash in state.ops[host]:
            known = state.op_meta[op_hash].names
            added = known - before.get(op_hash, set())
            candidates = sorted(added or known)
            names[(name, op_hash)] = candidates[0] if len(candidates) == 1 else " / ".join(candidates)
        progress.host_started(name, len(state.get_meta_for_host(host).op_hashes))

    if dry:
        for name, host in active.items():
            if reports[name].error:
                continue
            for op_hash in state.get_op_order():
                if op_hash in state.ops[host]:
                    op_data = state.get_op_data_for_host(host, op_hash)
                    # Operations guarded by `_if` (reloads after a change) only run if what
                    # they follow changes: they are not changes of their own.
                    guarded = bool(op_data.global_arguments["_if"])
                    will = bool(op_data.operation_meta._maybe_is_change) and not guarded
                    reports[name].operations.append(OperationResult(op_name(host.name, op_hash), will, True))
        disconnect_all(state)
        return DeployReport(True, list(reports.values()))

    # pyinfra keeps no facts between its phases: executing re-reads every fact. A host on
    # which no unguarded operation would change anything has nothing to execute (those
    # guarded by `_if` only follow changes of earlier ones): its results are the prepare's.
    settled: dict[str, list[OperationResult]] = {}
    for name, host in active.items():
        if reports[name].error:
            continue
        order = [op_hash for op_hash in state.get_op_order() if op_hash in state.ops[host]]
        data = [state.get_op_data_for_host(host, op_hash) for op_hash in order]
        if not any(d.operation_meta._maybe_is_change and not d.global_arguments["_if"] for d in data):
            settled[name] = [OperationResult(op_name(name, op_hash), False, True) for op_hash in order]
            for result in settled[name]:
                progress.operation_done(name, result.name, False, True)
            state.ops[host] = {}

    state.set_stage(StateStage.Execute)
    try:
        run_ops(state)
    except PyinfraError as exc:
        progress.message(f"deploy stopped: {exc}")
    state.set_stage(StateStage.Disconnect)
    for name, host in active.items():
        if reports[name].error:
            continue
        if name in settled:
            reports[name].operations.extend(settled[name])
            continue
        for op_hash in state.get_op_order():
            if op_hash not in state.ops[host]:
                continue
            meta = state.get_op_data_for_host(host, op_hash).operation_meta
            if not meta.is_complete():
                reports[name].operations.append(
                    OperationResult(op_name(host.name, op_hash), False, False,
                                    "not run (an earlier operation failed)"))
                continue
            success = meta.did_succeed()
            reports[name].operations.append(OperationResult(
                op_name(host.name, op_hash), meta.did_change(), success,
                None if success else _error_text(meta)))
    disconnect_all(state)
    return DeployReport(False, list(reports.values()))


def _serve_facts(state: Any, host: Any, target: Target) -> tuple[Callable[[], None], FactLog | None]:
    """Answer this prepare's fact commands from one batch run on the host (the commands
    its last prepare ran); a failed batch only means facts are read one by one, and so
    does RELAIS_FACT_BATCH=off (pyinfra's own way, for comparison or doubt)."""
    if getattr(host.connector, "client", None) is None:
        return (lambda: None), None
    path = prefetch.record_path(target.name, target.address, target.port, target.user)
    known = FactLog.load(path)
    answers: dict[tuple[str, bool], prefetch.Result] = {}
    if known.commands and os.environ.get("RELAIS_FACT_BATCH", "on") != "off":
        from paramiko import SSHException

        try:
            answers = prefetch.prefetch(known.commands, prefetch.ssh_runner(state, host))
        except (OSError, ValueError, EOFError, SSHException) as exc:
            logging.getLogger(__name__).debug("fact batch on %s failed: %s", target.name, exc)
    log = FactLog(path)
    return prefetch.serve(host, state, log, answers), log


def _save_quietly(log: FactLog | None) -> None:
    if log is not None:
        try:
            log.save()
        except OSError as exc:  # a read-only cache costs speed, never the deploy
            logging.getLogger(__name__).debug("cannot record fact commands: %s", exc)


def _no_delay(host: Any) -> None:
    """Send each command at once: paramiko leaves Nagle's algorithm on, and its small
    packets then wait for the peer's delayed acknowledgement (about 40 ms per command)."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _condition_held(conditions: Any) -> bool:
    """Whether an operation guarded by `_if` ran (pyinfra evaluates the same conditions)."""
    if isinstance(conditions, list):
        return all(condition() for condition in conditions)
    return conditions() if callable(conditions) else True


def _error_text(meta: Any) -> str:
    """The last lines the failed command wrote on stderr (pyinfra keeps them per host)."""
    output = getattr(meta, "_combined_output", None)
    lines = [str(line) for line in (getattr(output, "stderr_lines", None) or [])]
    return " ".join(lines[-3:])[:500] if lines else "operation failed"
