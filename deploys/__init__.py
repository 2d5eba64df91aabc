"""pyinfra deploys, one package per concern, each a small `@deploy` function over a HostContext.

`deploys_for(ctx)` is the order Relais converges a host in: the base system and
its hardening first, then certificates, then what the host's roles and tenants
need. Each package exposes `steps(ctx) -> list of deploy functions` that applies
to this host (an empty list when the host has nothing of that concern).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from relais.deploy.context import HostContext
from relais.errors import RelaisError

ALL = ("base", "harden", "tls", "database", "matrix", "xmpp", "proxy", "backup", "monitor")
# What `relais deploy` runs: every concern, in this order. RELAIS_DEPLOY_STEPS (a comma list,
# or `all`) narrows it for development work on one concern (docs/developing.md).
INTEGRATED = ALL


def _order() -> tuple[str, ...]:
    wanted = os.environ.get("RELAIS_DEPLOY_STEPS", "").strip()
    if not wanted:
        return INTEGRATED
    if wanted == "all":
        return ALL
    names = tuple(n.strip() for n in wanted.split(",") if n.strip())
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise RelaisError(f"RELAIS_DEPLOY_STEPS names unknown concerns: {', '.join(unknown)}",
                          hint=f"choose among {', '.join(ALL)} (or 'all')")
    return tuple(n for n in ALL if n in names)


ORDER = _order()


def deploys_for(ctx: HostContext) -> list[Callable[..., object]]:
    functions: list[Callable[..., object]] = []
    for name in ORDER:
        module = importlib.import_module(f"deploys.{name}")
        functions.extend(module.steps(ctx))
    return functions
