"""The Plan: the single, fully resolved desired state (schema `relais.plan/v1`).

Everything downstream (lab, deploys, stacks, checks, reports) reads this, never
raw YAML. The Plan holds references to secrets, never their values. Its JSON
form (``relais plan --json``) is a public interface: fields are only added
within a schema version; renaming or removing one bumps the version. The JSON
schema is in ``docs/plan.schema.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_SCHEMA = "relais.plan/v1"


class NotPlanned(list[Any]):
    """Stands in the Plan for a part that was not built.

    `relais check` asks the planner for the Plan the policies read: without the
    operational parts no rule reads (agents' accounts, secret references, probes, DNS
    records), which are two thirds of a region's Plan objects. Any use of a part left
    out raises, so a rule that starts reading one fails on its first run (every test
    of the shipped region runs the check) instead of seeing an empty list.
    """

    __slots__ = ("part",)

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NotPlannedError(
            f"the Plan was built without its {self.part} (build_plan(..., operational=False), "
            "as `relais check` does); plan them in full to read them")

    __iter__ = __len__ = __getitem__ = __contains__ = __reversed__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __add__ = __mul__ = _refuse
    index = count = copy = _refuse
    # Nor may anything be put in it.
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __hash__ = None

    def __repr__(self) -> str:
        return f"NotPlanned({self.part!r})"


class NotPlannedError(RuntimeError):
    """A rule or tool read a part of the Plan that was not built (see NotPlanned)."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Usage(Frozen):
    ram_mib: int
    disk_mib: int


class HostCapacity(Frozen):
    ram_mib: int
    disk_mib: int
    vcpu: int


class FirewallRule(Frozen):
    """One inbound allowance; everything else is dropped."""

    protocol: Literal["tcp", "udp"]
    port: int
    sources: list[str] = Field(description="CIDRs allowed, or ['any'] for the public")
    purpose: str


class PlannedHost(Frozen):
    name: str
    fqdn: str = Field(description="Name under which every host and tool reaches it")
    site: str
    country: str
    city: str
    region: str | None = Field(description="Cloud provider region of the host's site, if any")
    roles: list[str]
    provider: str
    address: str | None = Field(description="Private IPv4 address (lab: on the lab bridge)")
    public_address: str | None = None
    capacity: HostCapacity
    reserved: Usage = Field(description="Capacity set aside for the system and shared services")
    used: Usage = Field(description="Reserved plus every placed tenant")
    tenants: list[str] = Field(description="Ids of the tenants placed on this host")
    services: list[str] = Field(description="Services this host runs, derived from roles and tenants")
    firewall: list[FirewallRule] = Field(description="Inbound allowances; default drop")


class SecretRef(Frozen):
    ref: str = Field(description="Path in the secret store, e.g. tenants/14118/db_password")
    kind: Literal["password", "token", "signing-key", "passphrase", "ssh-key", "tls-key"]


class Probe(Frozen):
    kind: Literal["https", "matrix-client", "matrix-federation", "xmpp-c2s", "xmpp-s2s", "node", "metrics"]
    target: str


class DnsRecord(Frozen):
    name: str
    type: Literal["A", "AAAA", "CNAME", "SRV", "TXT"]
    value: str
    ttl: int = 3600
    managed_by: Literal["syndicate", "commune"] = Field(
        description="syndicate: in the syndicate's zone; commune: the commune must create it"
    )


class PlannedAgent(Frozen):
    name: str
    email: str
    login: str
    address: str = Field(description="Matrix ID (@login:server) or JID (login@domain)")
    password: SecretRef


class PlannedRetention(Frozen):
    messages_days: int
    logs_days: int
    logs_justification: str | None


class PlannedBackup(Frozen):
    target_host: str | None
    repository: str | None = Field(description="borg repository path on the target host")
    time: str
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    encryption: Literal["repokey-blake2", "keyfile-blake2", "none"]


class PlannedMessaging(Frozen):
    registration_open: bool
    url_previews: bool
    url_preview_ip_blacklist: list[str]
    admin_api_exposed: bool


class PlannedTenant(Frozen):
    id: str = Field(description="The commune's INSEE code: one tenant per commune")
    insee: str
    commune: str
    siren: str = Field(description="Empty where the official list has none (some overseas collectivities)")
    departement: str
    region: str
    population: int | None
    source: str = Field(description="Declaration file, relative to the inventory")
    flavor: Literal["matrix-dedicated", "matrix-shared", "xmpp"]
    status: Literal["requested", "approved", "active", "suspended", "offboarded"]
    domain: str | None = Field(description="DNS domain of the service (None for matrix-shared)")
    own_domain: bool = Field(description="True when the commune owns the domain (DNS on its side)")
    server_name: str = Field(description="Matrix server_name or XMPP virtual host")
    host: str | None = Field(description="Host the tenant is placed on (None when not placed)")
    placement: Literal["locked", "new", "unplaced", "none"]
    unix_user: str | None
    database: str | None
    port: int | None = Field(description="Local listener of a dedicated homeserver")
    metrics_port: int | None
    memory_mib: int = Field(description="Memory reserved for placement")
    memory_limit_mib: int = Field(description="MemoryMax of the tenant's service")
    disk_mib: int
    accounts: int
    agents: list[PlannedAgent]
    retention: PlannedRetention
    backup: PlannedBackup
    messaging: PlannedMessaging
    federation_extra: list[str] = Field(
        description="Domains this tenant may federate with beyond Plan.federation"
    )
    mairie: str
    dpo_name: str
    dpo_email: str
    probes: list[Probe]
    secrets: list[SecretRef]


class Unplaced(Frozen):
    tenant: str
    reason: str
    missing_ram_mib: int
    missing_disk_mib: int


class SharedService(Frozen):
    host: str
    server_name: str
    unix_user: str
    database: str | None
    port: int | None
    metrics_port: int | None
    memory_limit_mib: int
    tenants: list[str]
    secrets: list[SecretRef]
    backup_target: str | None = Field(description="Backup host of the service's own data, if any")
    backup_repository: str | None


class PlannedSyndicate(Frozen):
    name: str
    domain: str
    contact: str
    phone: str | None
    web_client: str = Field(description="The syndicate's own Matrix web client")


class LabNetwork(Frozen):
    subnet: str
    bridge: str
    gateway: str = Field(description="Controller's address on the lab bridge (DNS, package proxy)")


class PlannedAdmin(Frozen):
    login: str
    name: str
    email: str
    ssh_keys: list[str]


class PlannedFederation(Frozen):
    """Federation is limited to the syndicate's own servers unless the inventory widens it."""

    matrix: list[str] = Field(description="Every Matrix server_name the syndicate runs")
    xmpp: list[str] = Field(description="Every XMPP domain the syndicate runs")
    allow: list[str] = Field(description="Domains every tenant may also federate with (defaults)")


class PlannedWaiver(Frozen):
    rule: str
    subject: str = Field(description="Host name, tenant id, or '*' for every subject")
    reason: str
    expires: str = Field(description="ISO date; an expired waiver no longer applies")


class Plan(Frozen):
    schema_: str = Field(default=PLAN_SCHEMA, alias="schema")
    syndicate: PlannedSyndicate
    referential: str = Field(description="Version of the official list of communes used")
    hosts: list[PlannedHost]
    tenants: list[PlannedTenant]
    unplaced: list[Unplaced]
    shared_homeserver: SharedService | None
    xmpp_services: list[SharedService] = Field(description="One Prosody per host carrying xmpp tenants")
    admins: list[PlannedAdmin]
    dns: list[DnsRecord]
    federation: PlannedFederation
    admin_sources: list[str] = Field(description="Operators' networks (SSH allowed from them)")
    monitoring: dict[str, Any] = Field(
        description="The inventory's monitoring settings (schema: relais.monitoring.MonitoringSettings)")
    waivers: list[PlannedWaiver]
    lab: LabNetwork

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def host(self, name: str) -> PlannedHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def tenant(self, tenant_id: str) -> PlannedTenant:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(tenant_id)

    def lab_hosts(self) -> list[PlannedHost]:
        return [h for h in self.hosts if h.provider == "lab"]

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)
