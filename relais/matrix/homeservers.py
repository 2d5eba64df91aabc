"""Which Synapse homeservers the Plan asks for, and everything a deploy needs about each.

A dedicated tenant (`matrix-dedicated`) is one homeserver; the regional shared homeserver
(`plan.shared_homeserver`) is one more, carrying every `matrix-shared` commune. Only
tenants whose status is active or suspended are deployed: requested and approved ones
are not provisioned yet, offboarded ones are gone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from relais.plan import Plan, PlannedTenant

DEPLOYED_STATUSES = ("active", "suspended")
SYNAPSE_VENV = "/opt/relais/synapse/venv"
CONFIG_ROOT = "/etc/relais/synapse"
DATA_ROOT = "/var/lib/relais/synapse"
SHARED_ID = "shared"
ADMIN_LOCALPART = "relais-admin"


@dataclass(frozen=True)
class Homeserver:
    """One Synapse process: a dedicated tenant's, or the shared regional one."""

    id: str                       # tenant id (INSEE) or "shared"
    server_name: str
    host: str
    unix_user: str
    database: str                 # PostgreSQL database, and the role that owns it
    port: int                     # client + federation listener (behind nginx)
    metrics_port: int | None
    memory_limit_mib: int
    running: bool                 # False: a suspended dedicated tenant (unit stopped, data kept)
    secret_prefix: str            # tenants/<id> or services/shared-homeserver
    retention_days: int
    federation_extra: tuple[str, ...]
    url_previews: bool
    communes: tuple[PlannedTenant, ...]  # the tenant itself, or the shared communes

    @property
    def shared(self) -> bool:
        return self.id == SHARED_ID

    @property
    def unit(self) -> str:
        return f"synapse-{self.id}.service"

    @property
    def config_dir(self) -> str:
        return f"{CONFIG_ROOT}/{self.id}"

    @property
    def data_dir(self) -> str:
        return f"{DATA_ROOT}/{self.id}"

    @property
    def base_url(self) -> str:
        return f"https://{self.server_name}"

    @property
    def admin_user(self) -> str:
        return f"@{ADMIN_LOCALPART}:{self.server_name}"

    def secret_ref(self, name: str) -> str:
        return f"{self.secret_prefix}/{name}"


def _deployed(tenant: PlannedTenant) -> bool:
    return tenant.host is not None and tenant.status in DEPLOYED_STATUSES


def homeservers(plan: Plan) -> list[Homeserver]:
    """Every homeserver to deploy, dedicated ones first (by tenant id), then the shared one."""
    servers: list[Homeserver] = []
    for tenant in sorted(plan.tenants, key=lambda t: t.id):
        if tenant.flavor != "matrix-dedicated" or not _deployed(tenant):
            continue
        if tenant.port is None or tenant.unix_user is None or tenant.database is None:
            continue  # not placed on a slot yet: nothing to deploy
        assert tenant.host is not None
        servers.append(Homeserver(
            id=tenant.id, server_name=tenant.server_name, host=tenant.host, unix_user=tenant.unix_user,
            database=tenant.database, port=tenant.port, metrics_port=tenant.metrics_port,
            memory_limit_mib=tenant.memory_limit_mib, running=tenant.status == "active",
            secret_prefix=f"tenants/{tenant.id.lower()}", retention_days=tenant.retention.messages_days,
            federation_extra=tuple(tenant.federation_extra), url_previews=tenant.messaging.url_previews,
            communes=(tenant,)))
    shared = plan.shared_homeserver
    if shared is not None and shared.port is not None and shared.database is not None:
        members = set(shared.tenants)
        communes = tuple(t for t in sorted(plan.tenants, key=lambda t: t.id)
                         if t.id in members and t.flavor == "matrix-shared" and _deployed(t))
        extra = sorted({d for t in communes for d in t.federation_extra})
        retention = max((t.retention.messages_days for t in communes), default=365)
        servers.append(Homeserver(
            id=SHARED_ID, server_name=shared.server_name, host=shared.host, unix_user=shared.unix_user,
            database=shared.database, port=shared.port, metrics_port=shared.metrics_port,
            memory_limit_mib=shared.memory_limit_mib, running=True,
            secret_prefix="services/shared-homeserver", retention_days=retention,
            federation_extra=tuple(extra), url_previews=any(t.messaging.url_previews for t in communes),
            communes=communes))
    return servers


def homeservers_on(plan: Plan, host: str) -> list[Homeserver]:
    return [hs for hs in homeservers(plan) if hs.host == host]


def homeserver_of(plan: Plan, tenant: PlannedTenant) -> Homeserver | None:
    for hs in homeservers(plan):
        if any(t.id == tenant.id for t in hs.communes):
            return hs
    return None


def federation_allow_list(plan: Plan, hs: Homeserver) -> list[str]:
    """The syndicate's own homeservers, the region-wide allowances, and this tenant's extras."""
    return sorted({*plan.federation.matrix, *plan.federation.allow, *hs.federation_extra, hs.server_name})


def trusted_key_servers(plan: Plan, hs: Homeserver) -> list[str]:
    """Only the syndicate's own homeservers vouch for keys: no third-party key server."""
    return sorted(set(plan.federation.matrix) - {hs.server_name})


def address_of_name(plan: Plan, name: str) -> str | None:
    """The address a service name points at (A record of the Plan's DNS), if any."""
    for record in plan.dns:
        if record.type == "A" and record.name == name:
            return record.value
    return None


def private_federation_addresses(plan: Plan) -> list[str]:
    """Private addresses of the syndicate's own homeservers. Synapse refuses outbound requests
    to private ranges by default (SSRF protection); these, and only these, are let through."""
    found: set[str] = set()
    for name in plan.federation.matrix:
        address = address_of_name(plan, name)
        if address and ipaddress.ip_address(address).is_private:
            found.add(address)
    return sorted(found)


def proxy_backend(plan: Plan, hs: Homeserver, proxy_host: str) -> str:
    """Where nginx on `proxy_host` reaches the homeserver: loopback on its own host."""
    if proxy_host == hs.host:
        return f"127.0.0.1:{hs.port}"
    address = plan.host(hs.host).address
    return f"{address}:{hs.port}"


def listen_address(plan: Plan, hs: Homeserver) -> str:
    """Synapse listens on loopback unless a proxy on another host serves its name."""
    target = address_of_name(plan, hs.server_name)
    own = {a for a in (plan.host(hs.host).address, plan.host(hs.host).public_address) if a}
    if target is None or target in own:
        return "127.0.0.1"
    return plan.host(hs.host).address or "127.0.0.1"


def admin_password(registration_secret: str) -> str:
    """The password of the homeserver's own admin account (it converges accounts and spaces
    over the admin API on loopback). Derived from the registration secret so that the Plan
    needs no new secret; it changes when that secret is rotated."""
    return hmac.new(registration_secret.encode(), b"relais-admin-password", hashlib.sha256).hexdigest()
