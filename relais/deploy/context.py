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
    certificate: Callable[[str, list[str]], tuple[str, str]]
    ca_pem: Callable[[], str]
    templates: Path = field(default=Path(__file__).resolve().parents[2] / "deploys")

    @property
    def tenants(self) -> list[PlannedTenant]:
        placed = set(self.host.tenants)
        return [t for t in self.plan.tenants if t.id in placed]

    def has_role(self, role: str) -> bool:
        return role in self.host.roles

    def tls_names(self) -> dict[str, list[str]]:
        """Certificates this host serves: name -> DNS names (its own, and every service
        name whose A record points at it, with the XMPP group-chat component)."""
        addresses = {a for a in (self.host.address, self.host.public_address) if a}
        names: dict[str, list[str]] = {self.host.fqdn: [self.host.fqdn]}
        for record in self.plan.dns:
            if record.type == "A" and record.value in addresses and record.name != self.host.fqdn:
                names[record.name] = [record.name]
        for tenant in self.tenants:
            if tenant.flavor == "xmpp" and tenant.domain:
                names[tenant.domain] = sorted({tenant.domain, f"conference.{tenant.domain}"})
        return names
