"""Glue between the Plan, the targets and the deploys package."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from relais.deploy.context import HostContext
from relais.deploy.targets import Target
from relais.plan import Plan

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_deploys() -> Callable[[HostContext], list[Callable[..., object]]]:
    if str(REPO_ROOT) not in sys.path:  # deploys/ sits beside relais/ in a checkout
        sys.path.insert(0, str(REPO_ROOT))
    from deploys import deploys_for

    return deploys_for


def build_context(plan: Plan, target: Target, inventory: Path) -> HostContext:
    host = plan.host(target.name)
    public_key = target.private_key.with_suffix(".pub").read_text().strip()
    store_holder: dict[str, object] = {}

    def secret(ref: str) -> str:
        if "store" not in store_holder:
            from relais.secrets import SecretStore

            store_holder["store"] = SecretStore.open(inventory)
        store = store_holder["store"]
        return store.get(ref)  # type: ignore[attr-defined,no-any-return]

    return HostContext(plan=plan, host=host, controller_public_key=public_key, lab=target.lab,
                       apt_proxy=None, secret=secret)
