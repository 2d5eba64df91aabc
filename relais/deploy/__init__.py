"""`relais deploy`: converge hosts to the Plan with pyinfra, through its Python API."""

from __future__ import annotations

from pathlib import Path

from relais.deploy.context import HostContext
from relais.deploy.runner import DeployReport, HostReport, OperationResult, Reporter, run_deploy
from relais.plan import Plan

__all__ = ["DeployReport", "HostContext", "HostReport", "OperationResult", "deploy_plan", "run_deploy"]


def deploy_plan(plan: Plan, inventory: Path, *, limit: list[str] | None = None, dry: bool = False,
                reporter: Reporter | None = None) -> DeployReport:
    """Converge the hosts selected by `limit` (all by default) to the Plan."""
    from relais.deploy.hosts import build_context, load_deploys
    from relais.deploy.safety import check_deploy
    from relais.deploy.targets import resolve, select_hosts
    from relais.secrets import SecretStore

    hosts = select_hosts(plan, limit)
    check_deploy(plan, hosts)  # before any connection: a deploy must not lock anyone out
    # Every secret the Plan refers to exists before a host needs it (creates only missing ones).
    SecretStore.open(inventory).ensure_plan(plan)
    targets = [resolve(plan, host) for host in hosts]
    return run_deploy(plan, targets, load_deploys(), lambda t: build_context(plan, t, inventory),
                      dry=dry, reporter=reporter)
