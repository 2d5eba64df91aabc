"""Time `relais deploy` of the example region: a first deploy of fresh lab hosts, then no-op
re-deploys, next to the raw SSH round-trip floor measured in the same run.

- first: the lab is brought down and up (fresh hosts from the cached base image), then
  every host is converged (bootstrap as root, every concern of deploys.ORDER);
- no-op: the same deploy again, rounds times (it must change nothing: checked);
- no-op, each host alone (`--limit`), the figure of the "under 10 s" target, and the same
  with RELAIS_FACT_BATCH=off: facts read one SSH command at a time, pyinfra's own way (the
  baseline of the batch, relais/deploy/prefetch.py);
- with `--concerns base,harden`: the same no-op figures for those deploys only (what the
  hardening costs, apart from the messaging deploys of other concerns);
- SSH floor: `ssh <host> true` as the deploy account with the controller's options
  (connection + authentication + one command), and a paramiko connection plus one command
  (pyinfra's transport), median of 10 each.

Needs root. Follows RELAIS_INVENTORY / RELAIS_LAB_* like the CLI. Leaves the lab up.

    sudo .venv/bin/python bench/deploy.py [--rounds 3] [--skip-first] [--concerns base,harden] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from relais.cli.context import State, default_inventory, load_plan
from relais.deploy import DeployReport, deploy_plan
from relais.deploy.context import HostContext
from relais.deploy.targets import resolve
from relais.errors import RelaisError
from relais.lab import Lab, RichReporter
from relais.lab import system as lab_system
from relais.secrets import init_key_file

T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def ssh_floor(target_name: str, plan_hosts: object, rounds: int = 10) -> dict[str, object]:
    import paramiko

    from relais.plan import Plan

    assert isinstance(plan_hosts, Plan)
    target = resolve(plan_hosts, plan_hosts.host(target_name))
    ssh_times = [timed(lambda: target.run("true"))[0] for _ in range(rounds)]

    def paramiko_once() -> None:
        client = paramiko.SSHClient()
        client.load_host_keys(str(target.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            target.address,
            port=target.port,
            username=target.user,
            key_filename=str(target.private_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command("true")
        stdout.channel.recv_exit_status()
        client.close()

    paramiko_times = [timed(paramiko_once)[0] for _ in range(rounds)]
    return {
        "ssh_true_s": round(statistics.median(ssh_times), 3),
        "paramiko_connect_command_s": round(statistics.median(paramiko_times), 3),
        "as": target.user,
    }


def check(report: DeployReport, *, noop: bool) -> None:
    if not report.ok:
        failures = [(h.host, h.error, [o.name for o in h.operations if not o.success]) for h in report.hosts]
        raise SystemExit(f"deploy failed: {failures}")
    if noop and report.changed:
        changed = {h.host: [o.name for o in h.operations if o.changed] for h in report.hosts if h.changed}
        raise SystemExit(f"the no-op re-deploy changed something: {changed}")


def deploy_only(
    plan: object, inventory: object, concerns: list[str], limit: list[str] | None
) -> DeployReport:
    """`deploy_plan` restricted to some packages of deploys.ORDER."""
    import importlib
    from pathlib import Path

    from relais.deploy.hosts import build_context, load_deploys
    from relais.deploy.runner import run_deploy
    from relais.deploy.targets import select_hosts
    from relais.plan import Plan

    assert isinstance(plan, Plan) and isinstance(inventory, Path)
    load_deploys()  # puts deploys/ on sys.path

    def deploys_for(ctx: HostContext) -> list[Callable[..., object]]:
        functions: list[Callable[..., object]] = []
        for name in concerns:
            functions.extend(importlib.import_module(f"deploys.{name}").steps(ctx))
        return functions

    targets = [resolve(plan, h) for h in select_hosts(plan, limit)]
    return run_deploy(plan, targets, deploys_for, lambda t: build_context(plan, t, inventory), dry=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="no-op rounds (default 3)")
    parser.add_argument("--skip-first", action="store_true", help="keep the lab as it is (no first deploy)")
    parser.add_argument("--concerns", default="", help="also time no-op deploys of these packages only")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args()

    lab_system.require_root("up")
    inventory = default_inventory()
    plan = load_plan(State(inventory=inventory))
    lab = Lab(plan, reporter=RichReporter(quiet=True))
    init_key_file()
    figures: dict[str, object] = {"hosts": len(plan.lab_hosts())}
    if not args.skip_first:
        lab.down()
        figures["lab_up_s"] = round(timed(lab.up)[0], 2)
        seconds, first = timed(lambda: deploy_plan(plan, inventory))
        check(first, noop=False)
        figures["first_deploy_s"] = round(seconds, 2)
        figures["first_deploy_changed_ops"] = first.changed
    else:
        lab.up()
    noop = []
    for _ in range(args.rounds):
        seconds, again = timed(lambda: deploy_plan(plan, inventory))
        check(again, noop=True)
        noop.append(seconds)
        figures["noop_operations"] = sum(len(h.operations) for h in again.hosts)
    figures["noop_deploy_s"] = {"median": round(statistics.median(noop), 2), "min": round(min(noop), 2)}
    # Each host alone (the figure of the "under 10 s" target), next to the baseline measured
    # in the same run: RELAIS_FACT_BATCH=off, pyinfra's own way (one SSH command per fact).
    per_host: dict[str, dict[str, object]] = {}
    for host in plan.lab_hosts():
        figures_host: dict[str, object] = {}
        for label, batch in (("batched", "on"), ("fact_by_fact", "off")):
            os.environ["RELAIS_FACT_BATCH"] = batch
            times = []
            try:
                for _ in range(args.rounds):
                    seconds, again = timed(lambda h=host.name: deploy_plan(plan, inventory, limit=[h]))
                    check(again, noop=True)
                    times.append(seconds)
            finally:
                del os.environ["RELAIS_FACT_BATCH"]
            figures_host[f"{label}_median_s"] = round(statistics.median(times), 2)
            figures_host[f"{label}_min_s"] = round(min(times), 2)
        figures_host["operations"] = sum(len(h.operations) for h in again.hosts)
        per_host[host.name] = figures_host
    figures["noop_one_host"] = per_host
    one = plan.lab_hosts()[0].name
    if args.concerns:
        concerns = args.concerns.split(",")
        limits: list[tuple[str, list[str] | None]] = [("region", None), ("one_host", [one])]
        for label, limit in limits:
            times = []
            for _ in range(args.rounds):

                def run(limit: list[str] | None = limit) -> DeployReport:
                    return deploy_only(plan, inventory, concerns, limit)

                seconds, again = timed(run)
                check(again, noop=True)
                times.append(seconds)
                ops = sum(len(h.operations) for h in again.hosts)
            figures[f"noop_{'_'.join(concerns)}_{label}_s"] = {
                "median": round(statistics.median(times), 2),
                "operations": ops,
            }
    figures["ssh_floor"] = ssh_floor(one, plan)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RelaisError as error:
        print(f"error: {error.format()}", file=sys.stderr)
        sys.exit(1)
