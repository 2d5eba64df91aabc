"""pyinfra deploys, one package per role, each a small `@deploy` function over a HostContext.

`deploys_for(ctx)` is the order Relais converges a host in: the base system and
its hardening first, then what the host's roles and tenants need.
"""

from __future__ import annotations

from collections.abc import Callable

from relais.deploy.context import HostContext


def deploys_for(ctx: HostContext) -> list[Callable[..., object]]:
    from deploys.base import base

    return [base]
