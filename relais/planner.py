"""Inventory -> Plan: pure and deterministic.

Only this module knows how declarations map to infrastructure. Given the same
inventory, referential and lock it returns the same Plan and the same new
lock. Placement is stable: a tenant in the lock keeps its host, slot and
backup target whatever else is added or removed; new tenants are placed in
INSEE order on the messaging host with the most free memory (XMPP tenants
prefer a host that already runs Prosody) and never beyond a host's capacity.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from relais import referential as referential_mod
from relais.firewall import HostFacts, host_rules
from relais.inventory import CommuneDecl, Inventory, gc_paused, load_inventory
from relais.lock import Lock, Placement, read_lock
from relais.model import Flavor, MessagingSettings, Role, Status
from relais.plan import (
    DnsRecord,
    FirewallRule,
    HostCapacity,
    LabNetwork,
    NotPlanned,
    Plan,
    PlannedAdmin,
    PlannedAgent,
    PlannedBackup,
    PlannedFederation,
    PlannedHost,
    PlannedMessaging,
    PlannedRetention,
    PlannedSyndicate,
    PlannedTenant,
    PlannedWaiver,
    Probe,
    SecretRef,
    SharedService,
    Unplaced,
    Usage,
)
from relais.sizing import PROSODY, SHARED_HOMESERVER, Need, backup_disk, host_reserved, tenant_need

SLOT_COUNT = 500
DEDICATED_HTTP_BASE = 8100
DEDICATED_METRICS_BASE = 8600
SHARED_HTTP_PORT = 8008
SHARED_METRICS_PORT = 9092
PROSODY_METRICS_PORT = 5280
NODE_EXPORTER_PORT = 9100
BACKUP_ROOT = "/srv/borg"
LAB_FIRST_AUTO = 10


M = TypeVar("M", bound=BaseModel)


def _make(cls: type[M], **values: Any) -> M:
    """Build a trusted Plan object without validation.

    The planner is the Plan's only producer and builds hundreds of thousands of
    small objects for a whole country; pydantic's `model_construct` costs ~7 µs
    each. Every field must be given (tests round-trip the Plan through
    `Plan.model_validate` to keep this honest).

    Every object of a class shares one set of field names as its `model_fields_set`
    (every field is given, so the sets would be equal): a set per object took a sixth of
    planning and half of the Plan's memory for all of France (394 -> 192 MiB). Plan
    objects are frozen, and pydantic copies the set before changing it
    (`model_copy(update=...)`).
    """
    obj = _new(cls)
    _set_dict(obj, values)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = set(cls.__pydantic_fields__)
    _set_fields_set(obj, names if len(names) == len(values) else set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


_FIELD_NAMES: dict[type[BaseModel], set[str]] = {}


# BaseModel's slot descriptors, called directly: what `object.__setattr__` finds, minus the lookup.
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


@dataclass
class PlanResult:
    plan: Plan
    lock: Lock
    inventory: Inventory


@dataclass(eq=False)
class _HostState:
    """A host as placement fills it. Compared by identity: `state in allowed` asks whether it
    is that host (compared field by field, tenant lists included, this cost 0.8 s per plan of
    a locked France)."""

    name: str
    roles: list[Role]
    site: str
    ram: int
    disk: int
    used_ram: int
    used_disk: int
    tenants: list[str] = field(default_factory=list)
    slots: set[int] = field(default_factory=set)
    prosody: bool = False
    shared: bool = False
    backup_disk: int = 0

    def free_ram(self) -> int:
        return self.ram - self.used_ram

    def free_disk(self) -> int:
        return self.disk - self.used_disk

    def extra_for(self, flavor: Flavor) -> Need:
        if flavor is Flavor.XMPP and not self.prosody:
            return PROSODY
        if flavor is Flavor.MATRIX_SHARED and not self.shared:
            return SHARED_HOMESERVER
        return Need(0, 0)

    def take(self, tenant_id: str, need: Need, flavor: Flavor) -> None:
        extra = self.extra_for(flavor)
        self.used_ram += need.ram_mib + extra.ram_mib
        self.used_disk += need.disk_mib + extra.disk_mib
        self.tenants.append(tenant_id)
        if flavor is Flavor.XMPP:
            self.prosody = True
        elif flavor is Flavor.MATRIX_SHARED:
            self.shared = True


def plan_directory(root: Path, *, referential: referential_mod.Referential | None = None,
                   operational: bool = True) -> PlanResult:
    """Load the inventory in `root` with its lock and plan it (reads files, writes nothing).

    `operational=False` leaves out what only deploys and probes read (see `build_plan`)."""
    from relais.provision.outputs import read_provisioned

    # Unless given, the referential is loaded while the first commune files are read.
    official = referential_mod.load_or_fetch if referential is None else referential
    inventory = load_inventory(root, official)
    provisioned = {name: (host.address, host.public_address)
                   for name, host in read_provisioned(root).items()}
    if provisioned:
        inventory = replace(inventory, provisioned=provisioned)
    return build_plan(inventory, read_lock(root), operational=operational)


def build_plan(inventory: Inventory, lock: Lock, *, operational: bool = True) -> PlanResult:
    """Plan `inventory`: placement (keeping `lock`'s), then every object of the Plan.

    With `operational=False`, the agents' accounts, secret references, probes and DNS
    records are left out (each list is a `NotPlanned`, which refuses any use): the
    policies read none of them, and they are two thirds of the objects of a region's
    Plan. Placement, and every other field, are the same.
    """
    with gc_paused():
        return _build_plan(inventory, lock, operational)


def _build_plan(inventory: Inventory, lock: Lock, operational: bool = True) -> PlanResult:
    hosting = inventory.hosting
    syndicate_domain = hosting.syndicate.domain
    shared_cfg = hosting.shared_homeserver
    shared_server_name = (shared_cfg.server_name or syndicate_domain) if shared_cfg else None

    states: dict[str, _HostState] = {}
    for name in sorted(hosting.hosts):
        host = hosting.hosts[name]
        reserved = host_reserved(host.roles)
        states[name] = _HostState(name, list(host.roles), host.site, host.capacity.ram,
                                  host.capacity.disk, reserved.ram_mib, reserved.disk_mib)
    messaging = [s for s in states.values() if Role.MESSAGING in s.roles]
    backups = [s for s in states.values() if Role.BACKUP in s.roles]

    decls = sorted(inventory.communes, key=lambda d: d.insee)
    needs: dict[str, Need] = {}
    need_of: dict[tuple[Flavor, int], Need] = {}  # a Need is frozen; most tenants share a few
    for d in decls:
        tenant = d.data.tenant
        key = (tenant.flavor, tenant.accounts)
        need = need_of.get(key)
        if need is None:
            need = need_of[key] = tenant_need(*key)
        needs[d.insee] = need
    placed: dict[str, Placement] = {}
    unplaced: list[Unplaced] = []
    origin: dict[str, str] = {}

    def allowed_hosts(flavor: Flavor) -> list[_HostState]:
        if flavor is Flavor.MATRIX_SHARED:
            return [states[shared_cfg.host]] if shared_cfg and shared_cfg.host in states else []
        return messaging

    allowed_names = {f: {s.name for s in allowed_hosts(f)} for f in Flavor}
    # 1. Locked placements first: they never move.
    pending: list[CommuneDecl] = []
    for decl in decls:
        tenant = decl.data.tenant
        if not tenant.status.holds_capacity:
            continue
        entry = lock.get(decl.insee)
        if entry is None:
            pending.append(decl)
            continue
        state = states.get(entry.host)
        if state is None or entry.host not in allowed_names[tenant.flavor]:
            why = ("is no longer declared" if state is None
                   else f"cannot carry a {tenant.flavor} tenant")
            unplaced.append(Unplaced(
                tenant=decl.insee,
                reason=f"locked on host {entry.host}, which {why}; move it on purpose: migrate its "
                       f"data, then delete its line from placements.lock",
                missing_ram_mib=0, missing_disk_mib=0))
            continue
        slot = entry.slot
        if tenant.flavor is Flavor.MATRIX_DEDICATED:
            if slot is None or slot in state.slots or not 0 <= slot < SLOT_COUNT:
                slot = _free_slot(state)
            state.slots.add(slot)
        else:
            slot = None
        state.take(decl.insee, needs[decl.insee], tenant.flavor)
        placed[decl.insee] = Placement(state.name, slot, entry.backup)
        origin[decl.insee] = "locked"

    # 2. New tenants, in INSEE order, never beyond capacity.
    freest = _FreestFirst(messaging)
    for decl in pending:
        tenant = decl.data.tenant
        need = needs[decl.insee]
        candidates = allowed_hosts(tenant.flavor)
        if not candidates:
            unplaced.append(Unplaced(tenant=decl.insee, reason=f"no host can carry {tenant.flavor} tenants",
                                     missing_ram_mib=need.ram_mib, missing_disk_mib=need.disk_mib))
            continue
        best = (freest.best(need, tenant.flavor) if candidates is messaging
                else _best_of(candidates, need, tenant.flavor))
        if best is None:
            ram, disk = min(
                (max(need.ram_mib + s.extra_for(tenant.flavor).ram_mib - s.free_ram(), 0),
                 max(need.disk_mib + s.extra_for(tenant.flavor).disk_mib - s.free_disk(), 0))
                for s in candidates)
            unplaced.append(Unplaced(
                tenant=decl.insee,
                reason=f"no {'shared homeserver ' if tenant.flavor is Flavor.MATRIX_SHARED else 'messaging '}"
                       "host has enough free capacity",
                missing_ram_mib=ram, missing_disk_mib=disk))
            continue
        state = best
        slot = None
        if tenant.flavor is Flavor.MATRIX_DEDICATED:
            slot = _free_slot(state)
            state.slots.add(slot)
        used_before = state.used_ram
        state.take(decl.insee, need, tenant.flavor)
        freest.moved(state, used_before)
        placed[decl.insee] = Placement(state.name, slot, None)
        origin[decl.insee] = "new"

    # 3. Backup targets: on another site than the tenant's host, locked once chosen.
    elsewhere = {s.site: [b for b in backups if b.site != s.site] for s in states.values()}
    backup_names = {b.name for b in backups}
    for insee in sorted(placed):
        placement = placed[insee]
        host_site = states[placement.host].site
        size = backup_disk(needs[insee].disk_mib)
        target = states.get(placement.backup) if placement.backup else None
        if target is None or target.name not in backup_names or target.site == host_site:
            others = elsewhere[host_site]
            target = max(others, key=lambda b: (b.free_disk() - b.backup_disk, b.name)) if others else None
        if target is not None:
            target.backup_disk += size
            target.used_disk += size
        placed[insee] = Placement(placement.host, placement.slot, target.name if target else None)

    new_lock: Lock = dict(placed)
    plan = _assemble(inventory, decls, placed, origin, needs, states, unplaced, shared_server_name,
                     operational)
    return PlanResult(plan, new_lock, inventory)


# Synapse's recommended URL-preview block list: never fetch private or local addresses.
DEFAULT_PREVIEW_BLACKLIST = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "192.0.0.0/24", "169.254.0.0/16", "192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "::1/128", "fe80::/10", "fc00::/7",
    "2001:db8::/32", "ff00::/8", "fec0::/10",
]


def _messaging(tenant: MessagingSettings, defaults: MessagingSettings) -> PlannedMessaging:
    def pick(name: str) -> Any:
        value = getattr(tenant, name)
        return value if value is not None else getattr(defaults, name)

    blacklist = pick("url_preview_ip_blacklist")
    previews = bool(pick("url_previews"))
    return _make(
        PlannedMessaging,
        registration_open=pick("registration") == "open",
        url_previews=previews,
        url_preview_ip_blacklist=[str(n) for n in blacklist] if blacklist is not None else [],
        admin_api_exposed=bool(pick("admin_api_exposed")),
    )


def _fits(state: _HostState, need: Need, flavor: Flavor) -> bool:
    extra = state.extra_for(flavor)
    return (need.ram_mib + extra.ram_mib <= state.ram - state.used_ram
            and need.disk_mib + extra.disk_mib <= state.disk - state.used_disk
            and not (flavor is Flavor.MATRIX_DEDICATED and len(state.slots) >= SLOT_COUNT))


def _best_of(candidates: list[_HostState], need: Need, flavor: Flavor) -> _HostState | None:
    """The host a new tenant goes to: among those it fits on, XMPP tenants prefer one
    already running Prosody, then the most free memory wins, then the name."""
    best: _HostState | None = None
    best_key: tuple[bool, int, str] | None = None
    xmpp = flavor is Flavor.XMPP
    for state in candidates:
        if _fits(state, need, flavor):
            key = (xmpp and not state.prosody, state.used_ram - state.ram, state.name)
            if best_key is None or key < best_key:
                best, best_key = state, key
    return best


class _FreestFirst:
    """The messaging hosts kept in the order `_best_of` prefers them: most free
    memory first, then name. The best host is then the first one the tenant fits
    on (for XMPP, the first running Prosody, else the first at all), usually the
    first looked at, instead of a look at every host for every tenant."""

    def __init__(self, hosts: list[_HostState]) -> None:
        self.order = sorted((s.used_ram - s.ram, s.name) for s in hosts)
        self.hosts = {s.name: s for s in hosts}

    def best(self, need: Need, flavor: Flavor) -> _HostState | None:
        hosts = self.hosts
        if flavor is not Flavor.XMPP:
            for _, name in self.order:
                if _fits(hosts[name], need, flavor):
                    return hosts[name]
            return None
        fallback: _HostState | None = None
        for _, name in self.order:
            state = hosts[name]
            if (state.prosody or fallback is None) and _fits(state, need, flavor):
                if state.prosody:
                    return state
                fallback = state
        return fallback

    def moved(self, state: _HostState, used_before: int) -> None:
        """`state` took a tenant (its used memory was `used_before`): keep the order."""
        if self.hosts.get(state.name) is not state:
            return
        order = self.order
        del order[bisect_left(order, (used_before - state.ram, state.name))]
        insort(order, (state.used_ram - state.ram, state.name))


def _free_slot(state: _HostState) -> int:
    slot = 0
    while slot in state.slots:
        slot += 1
    return slot


def _lab_addresses(inventory: Inventory) -> dict[str, str]:
    hosting = inventory.hosting
    subnet = hosting.lab.subnet
    used = {str(h.address) for h in hosting.hosts.values() if h.address is not None}
    addresses: dict[str, str] = {}
    pool = (str(a) for a in subnet.hosts() if int(a) - int(subnet.network_address) >= LAB_FIRST_AUTO)
    for name in sorted(hosting.hosts):
        host = hosting.hosts[name]
        if host.address is not None:
            addresses[name] = str(host.address)
        elif inventory.provisioned.get(name, (None, None))[0]:
            addresses[name] = str(inventory.provisioned[name][0])
        elif host.provider == "lab":
            candidate = next(pool, None)
            while candidate is not None and candidate in used:
                candidate = next(pool, None)
            if candidate is not None:
                addresses[name] = candidate
                used.add(candidate)
    return addresses


def _assemble(
    inventory: Inventory,
    decls: list[CommuneDecl],
    placed: dict[str, Placement],
    origin: dict[str, str],
    needs: dict[str, Need],
    states: dict[str, _HostState],
    unplaced: list[Unplaced],
    shared_server_name: str | None,
    operational: bool,
) -> Plan:
    hosting = inventory.hosting
    domain = hosting.syndicate.domain
    defaults = hosting.defaults
    addresses = _lab_addresses(inventory)
    fqdn = {name: f"{name}.infra.{domain}" for name in hosting.hosts}
    unplaced_ids = {u.tenant for u in unplaced}

    def find_proxy(host_name: str) -> str:
        host = hosting.hosts[host_name]
        if Role.PROXY in host.roles:
            return host_name
        same_site = [n for n in sorted(hosting.hosts) if Role.PROXY in hosting.hosts[n].roles
                     and hosting.hosts[n].site == host.site]
        anywhere = [n for n in sorted(hosting.hosts) if Role.PROXY in hosting.hosts[n].roles]
        return (same_site or anywhere or [host_name])[0]

    def find_public_ip(host_name: str) -> str | None:
        host = hosting.hosts[host_name]
        if host.public_address:
            return str(host.public_address)
        return inventory.provisioned.get(host_name, (None, None))[1] or addresses.get(host_name)

    # Both depend on the host only, and are asked once or twice per tenant.
    proxies: dict[str, str] = {}
    public_ips: dict[str, str | None] = {}

    def proxy_for(host_name: str) -> str:
        if host_name not in proxies:
            proxies[host_name] = find_proxy(host_name)
        return proxies[host_name]

    def public_ip(host_name: str) -> str | None:
        if host_name not in public_ips:
            public_ips[host_name] = find_public_ip(host_name)
        return public_ips[host_name]

    not_planned = NotPlanned("agents, secret references, probes and DNS records")
    # Most tenants keep the syndicate's messaging defaults: plan those settings once.
    default_settings = MessagingSettings()
    default_messaging = _messaging(default_settings, defaults.messaging)

    dns: list[DnsRecord] = []
    for name in sorted(hosting.hosts):
        if name in addresses:
            dns.append(_make(DnsRecord, name=fqdn[name], type="A", value=addresses[name],
                                                 ttl=3600, managed_by="syndicate"))

    tenants: list[PlannedTenant] = []
    # Loop invariants, looked up once instead of once per tenant.
    shared_flavor, dedicated_flavor, xmpp_flavor = Flavor.MATRIX_SHARED, Flavor.MATRIX_DEDICATED, Flavor.XMPP
    flavor_values = {f: f.value for f in Flavor}
    status_values = {s: s.value for s in Status}
    probed = (Status.ACTIVE, Status.APPROVED)
    default_messages = defaults.retention.messages
    default_logs = defaults.retention.logs
    default_justification = defaults.retention.logs_justification
    backup_time = defaults.backup.time
    keep_daily = defaults.backup.keep.daily
    keep_weekly = defaults.backup.keep.weekly
    keep_monthly = defaults.backup.keep.monthly
    encryption = defaults.backup.encryption
    dot_domain = "." + domain
    shared_name = shared_server_name or domain
    dedicated_secrets = (("db_password", "password"), ("signing_key", "signing-key"),
                         ("macaroon_secret", "token"), ("form_secret", "token"),
                         ("registration_secret", "token"))
    for decl in decls:
        data = decl.data
        tenant = data.tenant
        insee = data.commune.insee
        key = insee.lower()
        flavor = tenant.flavor
        placement = placed.get(insee)
        tenant_domain = tenant.domain
        if flavor is shared_flavor:
            server_name = shared_name
            service_domain = None
            own = False
        else:
            service_domain = tenant_domain or f"{decl.slug}.{domain}"
            server_name = service_domain
            own = tenant_domain is not None and not (
                tenant_domain == domain or tenant_domain.endswith(dot_domain))
        need = needs[insee]
        declared = tenant.retention
        retention = _make(PlannedRetention,
            messages_days=declared.messages or default_messages or 365,
            logs_days=declared.logs or default_logs or 180,
            logs_justification=declared.logs_justification or default_justification,
        )
        unix_user = database = None
        port = metrics_port = None
        if flavor is dedicated_flavor:
            unix_user = f"synapse-{key}"
            database = f"synapse_{key}"
            if placement is not None and placement.slot is not None:
                port = DEDICATED_HTTP_BASE + placement.slot
                metrics_port = DEDICATED_METRICS_BASE + placement.slot
        elif flavor is shared_flavor:
            unix_user = "synapse-shared"
            database = "synapse_shared"
        else:
            unix_user = "prosody"
        host_name = placement.host if placement else None
        secrets: list[SecretRef] = not_planned
        agents: list[PlannedAgent] = not_planned
        probes: list[Probe] = not_planned
        if operational:
            prefix = f"tenants/{key}"
            secrets = []
            if flavor is dedicated_flavor:
                for name_, kind in dedicated_secrets:
                    secrets.append(_make(SecretRef, ref=f"{prefix}/{name_}", kind=kind))
            secrets.append(_make(SecretRef, ref=f"{prefix}/backup_passphrase", kind="passphrase"))
            secrets.append(_make(SecretRef, ref=f"{prefix}/backup_ssh_key", kind="ssh-key"))
            agents = []
            for agent, login in zip(tenant.agents, decl.logins, strict=True):
                if flavor is shared_flavor:
                    login = f"{decl.slug}.{login}"
                address = f"{login}@{server_name}" if flavor is xmpp_flavor else f"@{login}:{server_name}"
                agents.append(_make(PlannedAgent,
                    name=agent.name, email=agent.email, login=login, address=address,
                    password=_make(SecretRef, ref=f"{prefix}/agents/{login}", kind="password")))
            probes = []
            if host_name is not None and tenant.status in probed:
                if flavor is xmpp_flavor:
                    probes += [_make(Probe, kind="xmpp-c2s", target=f"{server_name}:5222"),
                               _make(Probe, kind="xmpp-s2s", target=f"{server_name}:5269")]
                else:
                    probes += [_make(Probe, kind="matrix-client",
                                     target=f"https://{server_name}/_matrix/client/versions")]
                    if flavor is dedicated_flavor:
                        probes.append(_make(Probe, kind="matrix-federation", target=f"{server_name}:8448"))
                        if metrics_port is not None and host_name in addresses:
                            probes.append(_make(Probe,
                                kind="metrics", target=f"{addresses[host_name]}:{metrics_port}"))
            if host_name is not None and service_domain is not None:
                proxy = proxy_for(host_name)
                ip = public_ip(proxy)
                managed = "commune" if own else "syndicate"
                if ip:
                    dns.append(_make(DnsRecord, name=service_domain, type="A", value=ip,
                                     ttl=3600, managed_by=managed))
                if flavor is xmpp_flavor:
                    target = f"{fqdn[host_name]}."
                    dns += [
                        _make(DnsRecord, name=f"_xmpp-client._tcp.{service_domain}", type="SRV",
                              value=f"0 5 5222 {target}", ttl=3600, managed_by=managed),
                        _make(DnsRecord, name=f"_xmpp-server._tcp.{service_domain}", type="SRV",
                              value=f"0 5 5269 {target}", ttl=3600, managed_by=managed),
                        _make(DnsRecord, name=f"conference.{service_domain}", type="CNAME",
                              value=f"{service_domain}.", ttl=3600, managed_by=managed),
                    ]
        if insee in unplaced_ids:
            state_label = "unplaced"
        elif placement is None:
            state_label = "none"
        else:
            state_label = origin[insee]
        backup_target = placement.backup if placement else None
        contacts = data.contacts
        tenants.append(_make(PlannedTenant,
            id=insee, insee=insee, commune=decl.official_name, siren=data.commune.siren or "",
            departement=decl.departement, region=decl.region, population=decl.population,
            source=decl.file, flavor=flavor_values[flavor], status=status_values[tenant.status],
            domain=service_domain, own_domain=own, server_name=server_name,
            host=host_name, placement=state_label, unix_user=unix_user, database=database,
            port=port, metrics_port=metrics_port, memory_mib=need.ram_mib,
            memory_limit_mib=need.limit_mib, disk_mib=need.disk_mib, accounts=tenant.accounts,
            agents=agents, retention=retention,
            backup=_make(PlannedBackup,
                target_host=backup_target,
                repository=f"{BACKUP_ROOT}/{key}" if backup_target else None,
                time=backup_time, keep_daily=keep_daily,
                keep_weekly=keep_weekly, keep_monthly=keep_monthly,
                encryption=encryption),
            messaging=(default_messaging if not (settings := tenant.messaging).model_fields_set
                       or settings == default_settings
                       else _messaging(tenant.messaging, defaults.messaging)),
            federation_extra=sorted(set(allow)) if (allow := tenant.federation.allow) else [],
            mairie=contacts.mairie, dpo_name=contacts.dpo.name,
            dpo_email=contacts.dpo.email, probes=probes, secrets=secrets,
        ))

    matrix_servers = sorted({t.server_name for t in tenants if t.host and t.flavor != "xmpp"})
    xmpp_servers = sorted({t.server_name for t in tenants if t.host and t.flavor == "xmpp"})

    shared_service = None
    shared_cfg = hosting.shared_homeserver
    if shared_cfg is not None and shared_server_name is not None:
        members = sorted(t.id for t in tenants if t.flavor == "matrix-shared" and t.host)
        # The regional homeserver is backed up as one job, next to its communes' backups.
        member_ids = set(members)
        shared_backup = next((t.backup.target_host for t in tenants
                              if t.id in member_ids and t.backup.target_host), None)
        shared_service = _make(SharedService,
            backup_target=shared_backup,
            backup_repository=f"{BACKUP_ROOT}/shared" if shared_backup else None,
            host=shared_cfg.host, server_name=shared_server_name, unix_user="synapse-shared",
            database="synapse_shared", port=SHARED_HTTP_PORT, metrics_port=SHARED_METRICS_PORT,
            memory_limit_mib=SHARED_HOMESERVER.limit_mib, tenants=members,
            secrets=[_make(SecretRef, ref=f"services/shared-homeserver/{n}", kind=k)
                     for n, k in (("db_password", "password"), ("signing_key", "signing-key"),
                                  ("macaroon_secret", "token"), ("form_secret", "token"),
                                  ("registration_secret", "token"), ("backup_passphrase", "passphrase"),
                                  ("backup_ssh_key", "ssh-key"))])
        ip = public_ip(proxy_for(shared_cfg.host))
        if ip:
            dns.append(_make(DnsRecord, name=shared_server_name, type="A", value=ip,
                                                 ttl=3600, managed_by="syndicate"))
    xmpp_by_host: dict[str, list[str]] = {}
    for t in tenants:
        if t.host and t.flavor == "xmpp":
            xmpp_by_host.setdefault(t.host, []).append(t.id)
    xmpp_services = [
        _make(SharedService,
            host=state.name, server_name=fqdn[state.name], unix_user="prosody", database=None,
            port=5222, metrics_port=PROSODY_METRICS_PORT, memory_limit_mib=PROSODY.limit_mib,
            tenants=sorted(xmpp_by_host.get(state.name, ())), secrets=[],
            backup_target=None, backup_repository=None)
        for state in states.values() if state.prosody
    ]

    dedicated_ids = {t.id for t in tenants if t.flavor == "matrix-dedicated"}
    database_hosts = {t.host for t in tenants if t.host and t.flavor != "xmpp"}
    matrix_proxies = {proxy_for(t.host) for t in tenants if t.host and t.flavor != "xmpp"}
    metrics_ports: dict[str, set[int]] = {}
    backup_clients: dict[str, set[str]] = {}
    for t in tenants:
        if t.host and t.metrics_port:
            metrics_ports.setdefault(t.host, set()).add(t.metrics_port)
        if t.host and t.backup.target_host:
            backup_clients.setdefault(t.backup.target_host, set()).add(t.host)
    if shared_service is not None and shared_service.tenants and shared_service.metrics_port:
        metrics_ports.setdefault(shared_service.host, set()).add(shared_service.metrics_port)
    for service in xmpp_services:
        if service.metrics_port:
            metrics_ports.setdefault(service.host, set()).add(service.metrics_port)
    monitors = [n for n in sorted(hosting.hosts) if Role.MONITOR in hosting.hosts[n].roles]
    admin_sources = [str(n) for n in hosting.network.admin_sources]
    subnet = hosting.lab.subnet
    gateway = str(ipaddress.IPv4Address(next(subnet.hosts())))
    hosts = []
    for name in sorted(hosting.hosts):
        host = hosting.hosts[name]
        state = states[name]
        reserved = host_reserved(host.roles)
        site = hosting.sites.get(host.site)
        services = ["sshd", "node-exporter"]
        if Role.DATABASE in host.roles and name in database_hosts:
            services.append("postgresql")
        if Role.PROXY in host.roles:
            services.append("nginx")
        if state.shared:
            services.append("synapse-shared")
        services += [f"synapse-{t.lower()}" for t in sorted(state.tenants) if t in dedicated_ids]
        if state.prosody:
            services.append("prosody")
        if Role.BACKUP in host.roles:
            services.append("borg-server")
        if Role.MONITOR in host.roles:
            services += ["prometheus", "alertmanager", "blackbox-exporter"]
        hosts.append(_make(PlannedHost,
            name=name, fqdn=fqdn[name], site=host.site,
            country=site.country if site else "", city=site.city if site else "",
            roles=[r.value for r in host.roles], provider=host.provider,
            address=addresses.get(name),
            public_address=(str(host.public_address) if host.public_address
                            else inventory.provisioned.get(name, (None, None))[1]),
            capacity=_make(HostCapacity, ram_mib=state.ram, disk_mib=state.disk,
                                                  vcpu=host.capacity.vcpu),
            reserved=_make(Usage, ram_mib=reserved.ram_mib, disk_mib=reserved.disk_mib),
            used=_make(Usage, ram_mib=state.used_ram, disk_mib=state.used_disk),
            tenants=sorted(state.tenants), services=services,
            region=site.region if site else None,
            firewall=[
                _make(FirewallRule, protocol=proto, port=port, sources=sources, purpose=purpose)
                for proto, port, sources, purpose in host_rules(
                    HostFacts(name=name, roles=tuple(r.value for r in host.roles),
                              provider=host.provider, address=addresses.get(name),
                              proxies_matrix=name in matrix_proxies, runs_prosody=state.prosody,
                              metrics_ports=tuple(sorted(metrics_ports.get(name, ()))),
                              backup_clients=tuple(sorted(backup_clients.get(name, ())))),
                    admin_sources=admin_sources,
                    controller=gateway if host.provider == "lab" else None,
                    monitors=monitors, addresses=addresses)
            ],
        ))

    return _make(Plan,
        schema_="relais.plan/v1",
        syndicate=_make(PlannedSyndicate, name=hosting.syndicate.name, domain=domain,
                        contact=hosting.syndicate.contact, phone=hosting.syndicate.phone,
                        web_client=hosting.syndicate.web_client or f"https://element.{domain}"),
        referential=inventory.referential_version,
        hosts=hosts, tenants=tenants,
        unplaced=sorted(unplaced, key=lambda u: u.tenant),
        shared_homeserver=shared_service, xmpp_services=xmpp_services,
        admins=[_make(PlannedAdmin, login=login, name=a.name, email=a.email,
                                             ssh_keys=list(a.ssh_keys))
                for login, a in sorted(hosting.admins.items())],
        dns=sorted(dns, key=lambda r: (r.name, r.type, r.value)) if operational else not_planned,
        federation=_make(PlannedFederation,
            matrix=matrix_servers, xmpp=xmpp_servers, allow=sorted(defaults.federation.allow)),
        admin_sources=admin_sources,
        monitoring=hosting.monitoring.model_dump(mode="json", by_alias=True),
        waivers=[_make(PlannedWaiver, rule=w.rule, subject=w.subject, reason=w.reason,
                       expires=w.expires.isoformat()) for w in hosting.waivers],
        lab=_make(LabNetwork, subnet=str(subnet), bridge=hosting.lab.bridge, gateway=gateway),
    )
