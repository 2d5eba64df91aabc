"""Probes: is each tenant served, from a client's point of view? And is a message delivered?

Each flavor registers its health probe here (`register`): `relais.probes.matrix` for the
Matrix flavors, `relais.probes.xmpp` (when present) for XMPP. A probe only talks to the
addresses the Plan gives (the lab's, or the syndicate's hosts), and trusts the syndicate's CA
(`<inventory>/pki/ca.crt`) on top of the system's.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from relais.plan import Plan, PlannedTenant
from relais.probes.net import ProbeContext

__all__ = ["Aspect", "Check", "ProbeContext", "TenantHealth", "health", "register", "registered_flavors"]

Status = Literal["ok", "failed", "skipped"]
Aspect = Literal["service", "tls", "expiry", "registration", "admin"]
"""What a check says of a tenant: its service answers, its certificate is trusted, it does not
expire soon, registration is closed, the admin API is hidden. `relais drift` reports each
aspect under its own rule."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    aspect: Aspect = "service"


@dataclass
class TenantHealth:
    tenant: str
    commune: str
    flavor: str
    status_in_plan: str
    host: str | None
    address: str
    health: Status
    checks: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


HealthProbe = Callable[[ProbeContext, PlannedTenant], TenantHealth]
_PROBES: dict[str, HealthProbe] = {}
_FLAVOR_MODULES = ("relais.probes.matrix", "relais.probes.xmpp")


def register(flavors: Iterable[str], probe: HealthProbe) -> None:
    for flavor in flavors:
        _PROBES[flavor] = probe


def _load() -> None:
    for module in _FLAVOR_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def registered_flavors() -> list[str]:
    _load()
    return sorted(_PROBES)


def service_address(tenant: PlannedTenant) -> str:
    if tenant.flavor == "xmpp":
        return tenant.server_name
    return f"https://{tenant.server_name}"


def skipped(tenant: PlannedTenant, reason: str) -> TenantHealth:
    return TenantHealth(tenant.id, tenant.commune, tenant.flavor, tenant.status, tenant.host,
                        service_address(tenant), "skipped", [Check("probe", True, reason)])


def health(ctx: ProbeContext, tenants: Iterable[PlannedTenant]) -> list[TenantHealth]:
    """One health summary per tenant; tenants that are not served are reported as skipped."""
    _load()
    results = []
    for tenant in tenants:
        if tenant.host is None or tenant.status not in ("active", "suspended"):
            results.append(skipped(tenant, f"not deployed ({tenant.status})"))
            continue
        probe = _PROBES.get(tenant.flavor)
        if probe is None:
            results.append(skipped(tenant, f"no probe registered for {tenant.flavor}"))
            continue
        results.append(probe(ctx, tenant))
    return results


def select(plan: Plan, communes: list[str] | None) -> list[PlannedTenant]:
    """Tenants named by INSEE code or commune name (all when none is given)."""
    if not communes:
        return list(plan.tenants)
    wanted = {c.casefold() for c in communes}
    return [t for t in plan.tenants if t.id.casefold() in wanted or t.commune.casefold() in wanted]
