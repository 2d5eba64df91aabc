"""What a deploy function knows about the host it converges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from relais.plan import Plan, PlannedHost, PlannedTenant

DEPLOY_USER = "relais"
ADMIN_GROUP = "relais-admins"


@dataclass(frozen=True)
class HostContext:
    """Passed to every deploy: the Plan, this host, and how to read secrets.

    Secrets are read lazily (`secret(ref)`) and only ever written to files on the
    host (templates, mode 0600/0640), never put into command lines or operation
    names, which pyinfra logs.
    """

    plan: Plan
    host: PlannedHost
    controller_public_key: str
    lab: bool
    apt_proxy: str | None
    secret: Callable[[str], str]
    templates: Path = field(default=Path(__file__).resolve().parents[2] / "deploys")

    @property
    def tenants(self) -> list[PlannedTenant]:
        placed = set(self.host.tenants)
        return [t for t in self.plan.tenants if t.id in placed]

    def has_role(self, role: str) -> bool:
        return role in self.host.roles
