"""Glue between the Plan, the targets and the deploys package."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from relais.deploy.context import HostContext
from relais.deploy.targets import Target
from relais.pki import Pki
from relais.plan import Plan
from relais.secrets import SecretStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_deploys() -> Callable[[HostContext], list[Callable[..., object]]]:
    if str(REPO_ROOT) not in sys.path:  # deploys/ sits beside relais/ in a checkout
        sys.path.insert(0, str(REPO_ROOT))
    from deploys import deploys_for

    return deploys_for


def build_context(plan: Plan, target: Target, inventory: Path) -> HostContext:
    host = plan.host(target.name)
    public_key = target.private_key.with_suffix(".pub").read_text().strip()
    return HostContext(plan=plan, host=host, controller_public_key=public_key, lab=target.lab,
                       apt_proxy=None, secret=lambda ref: _store(inventory).get(ref),
                       certificate=lambda name, sans: _pki(inventory, plan.syndicate.name).certificate(
                           name, sans),
                       ca_pem=lambda: _pki(inventory, plan.syndicate.name).ca_pem())


@cache
def _store(inventory: Path) -> SecretStore:
    return SecretStore.open(inventory)


@cache
def _pki(inventory: Path, organisation: str) -> Pki:
    return Pki(inventory, _store(inventory), organisation)
