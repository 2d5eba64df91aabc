"""pyinfra deploys, one package per concern, each a small `@deploy` function over a HostContext.

`deploys_for(ctx)` is the order Relais converges a host in: the base system and
its hardening first, then certificates, then what the host's roles and tenants
need. Each package exposes `steps(ctx) -> list of deploy functions` that applies
to this host (an empty list when the host has nothing of that concern).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from relais.deploy.context import HostContext

ORDER = ("base", "harden", "tls", "database", "matrix", "xmpp", "proxy", "backup", "monitor")


def deploys_for(ctx: HostContext) -> list[Callable[..., object]]:
    functions: list[Callable[..., object]] = []
    for name in ORDER:
        module = importlib.import_module(f"deploys.{name}")
        functions.extend(module.steps(ctx))
    return functions
