"""From the Plan to a stack: which resources a stack holds (pure, :func:`describe`) and the
Pulumi program that creates them (:func:`run`).

Stacks, by name:

- ``openstack``: every host whose ``provider`` is ``openstack``, the network of each of
  their sites, and a backup bucket (Swift container) per site;
- ``scaleway``: the same for ``provider: scaleway`` hosts, on Scaleway;
- ``dns``: the records of the syndicate's zone (its domain), at the provider chosen by
  ``dns_provider`` (Designate on OpenStack, or Scaleway Domains and DNS).

A stack with no host of its provider but lab hosts can be *reviewed* (``review_lab``): the
lab hosts are rendered in that provider's shape, so the shipped example region shows what
provisioning it would create. Only the offline preview does that.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import pulumi

from relais.plan import DnsRecord, Plan, PlannedHost, PlannedTenant
from stacks.components.args import (
    BackupBucketArgs,
    DnsZoneArgs,
    HostArgs,
    HostFirewallArgs,
    Ingress,
    SiteNetworkArgs,
    ZoneRecord,
)
from stacks.components.cloudinit import user_data
from stacks.components.sizing import (
    OPENSTACK_FLAVORS,
    SCALEWAY_TYPES,
    NoSizeFits,
    Size,
    parse_catalogue,
    pick,
)

STACK_KINDS: Mapping[str, str] = {
    "openstack": "hosts with provider openstack: networks, security groups, instances, volumes, "
                 "backup containers",
    "scaleway": "hosts with provider scaleway: private networks, security groups, instances, "
                "volumes, backup buckets",
    "dns": "records of the syndicate's DNS zone",
}
CLOUD_PROVIDERS = ("openstack", "scaleway")
WORLD = ("0.0.0.0/0", "::/0")
REVIEW_SCALEWAY_REGION = "fr-par"
MIN_DATA_DISK_GIB = 10
DEFAULT_NONCURRENT_DAYS = 31


class StackSpecError(ValueError):
    """The Plan cannot be turned into this stack (relais.provision adds the hint)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class StackOptions:
    kind: str
    controller_keys: tuple[str, ...] = ()
    dns_provider: str = "openstack"
    review_lab: bool = False
    external_network: str = "public"
    openstack_image: str = "debian-12"
    scaleway_image: str = "debian_bookworm"
    openstack_flavors: tuple[Size, ...] = OPENSTACK_FLAVORS
    scaleway_types: tuple[Size, ...] = SCALEWAY_TYPES

    @classmethod
    def from_env(cls, kind: str, environ: Mapping[str, str] | None = None, **values: object) -> StackOptions:
        """Site-specific names (images, external network, flavor catalogue) from ``RELAIS_*``."""
        env = os.environ if environ is None else environ
        options = cls(kind=kind)
        try:
            options = replace(
                options,
                dns_provider=env.get("RELAIS_DNS_PROVIDER", options.dns_provider),
                external_network=env.get("RELAIS_OS_EXTERNAL_NETWORK", options.external_network),
                openstack_image=env.get("RELAIS_OS_IMAGE", options.openstack_image),
                scaleway_image=env.get("RELAIS_SCW_IMAGE", options.scaleway_image),
                openstack_flavors=parse_catalogue(env["RELAIS_OPENSTACK_FLAVORS"])
                if env.get("RELAIS_OPENSTACK_FLAVORS") else options.openstack_flavors,
                scaleway_types=parse_catalogue(env["RELAIS_SCALEWAY_TYPES"])
                if env.get("RELAIS_SCALEWAY_TYPES") else options.scaleway_types,
            )
        except ValueError as error:
            raise StackSpecError(f"size catalogue: {error}",
                                 "write it as name:vcpu:ram_mib,name:vcpu:ram_mib") from None
        return replace(options, **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HostSpec:
    name: str
    fqdn: str
    site: str
    country: str
    region: str | None
    roles: tuple[str, ...]
    size: Size
    data_disk_gib: int
    public: bool
    user_data: str
    rules: tuple[Ingress, ...]


@dataclass(frozen=True)
class SiteSpec:
    name: str
    country: str
    region: str | None
    cidr: str


@dataclass(frozen=True)
class StackSpec:
    kind: str
    provider: str
    project: str
    hosts: tuple[HostSpec, ...] = ()
    sites: tuple[SiteSpec, ...] = ()
    buckets: tuple[BackupBucketArgs, ...] = ()
    zone: str | None = None
    records: tuple[ZoneRecord, ...] = ()
    commune_records: tuple[DnsRecord, ...] = ()
    """Records in a commune's own zone: the commune must create them (listed, never created)."""
    outside_zone: tuple[DnsRecord, ...] = ()
    unresolved: tuple[str, ...] = ()
    """Firewall sources naming hosts outside this stack whose address is not known yet."""
    notes: tuple[str, ...] = field(default=())
    review: bool = False


# --------------------------------------------------------------------------- pure: Plan -> spec


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def site_cidr(site: str) -> str:
    """A stable /24 for a site's private network, from its name alone (adding a site never
    renumbers another) inside 10.128.0.0/10, away from the lab's 10.77.0.0/24."""
    digest = hashlib.sha256(site.encode()).digest()
    return f"10.{128 + digest[0] % 64}.{digest[1]}.0/24"


def bucket_name(domain: str, site: str) -> str:
    """Globally unique in practice (the syndicate's domain), at most 63 characters."""
    name = f"relais-{slug(domain)}-{site}-backups"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:46].rstrip('-')}-{digest}-backups"


def backup_window_days(tenant: PlannedTenant) -> int:
    """How far back a tenant's backups reach: the oldest archive borg keeps, no longer than
    the tenant may keep its messages at all."""
    keep = tenant.backup
    window = max(keep.keep_daily, 7 * keep.keep_weekly, 31 * keep.keep_monthly, 1)
    return min(window, tenant.retention.messages_days)


def _expand(host: PlannedHost, members: set[str]) -> tuple[list[Ingress], list[str]]:
    rules: list[Ingress] = []
    unresolved: list[str] = []
    for rule in host.firewall:
        for source in rule.sources:
            if source == "any":
                rules += [Ingress(rule.protocol, rule.port, world, rule.purpose) for world in WORLD]
            elif source.startswith("host:"):
                peer = source.removeprefix("host:")
                if peer in members:
                    rules.append(Ingress(rule.protocol, rule.port, source, rule.purpose))
                else:
                    unresolved.append(f"{host.name} {rule.protocol}/{rule.port} from {peer}")
            else:
                ipaddress.ip_network(source, strict=False)  # the Plan only holds CIDRs here
                rules.append(Ingress(rule.protocol, rule.port, source, rule.purpose))
    return rules, unresolved


def _hosts_of(plan: Plan, options: StackOptions) -> tuple[list[PlannedHost], bool]:
    own = [h for h in plan.hosts if h.provider == options.kind]
    if own or not options.review_lab:
        return own, False
    return plan.lab_hosts(), bool(plan.lab_hosts())


def describe(plan: Plan, options: StackOptions) -> StackSpec:
    """What the stack holds for this Plan: pure, no Pulumi, no network."""
    if options.kind not in STACK_KINDS:
        raise StackSpecError(f"unknown stack {options.kind!r}",
                             f"choose one of: {', '.join(STACK_KINDS)}")
    if options.kind == "dns":
        return _describe_dns(plan, options)
    return _describe_hosts(plan, options)


def _describe_dns(plan: Plan, options: StackOptions) -> StackSpec:
    if options.dns_provider not in CLOUD_PROVIDERS:
        raise StackSpecError(f"unknown DNS provider {options.dns_provider!r}",
                             f"choose one of: {', '.join(CLOUD_PROVIDERS)} (RELAIS_DNS_PROVIDER)")
    zone = plan.syndicate.domain
    records: list[ZoneRecord] = []
    outside: list[DnsRecord] = []
    private = 0
    for record in plan.dns:
        if record.managed_by != "syndicate":
            continue
        if record.name == zone or record.name.endswith("." + zone):
            relative = "@" if record.name == zone else record.name[: -len(zone) - 1]
            records.append(ZoneRecord(relative, record.name, record.type, record.value, record.ttl))
            if record.type in ("A", "AAAA") and ipaddress.ip_address(record.value).is_private:
                private += 1
        else:
            outside.append(record)
    notes = []
    if private:
        notes.append(f"{private} address records point to private addresses (lab or not yet "
                     "provisioned hosts): provision the hosts, then preview this stack again")
    if outside:
        notes.append(f"{len(outside)} syndicate records are outside the zone {zone}: create them "
                     "where their domain is managed")
    return StackSpec(
        kind="dns", provider=options.dns_provider, project="relais-dns", zone=zone,
        records=tuple(records),
        commune_records=tuple(r for r in plan.dns if r.managed_by == "commune"),
        outside_zone=tuple(outside), notes=tuple(notes))


def _describe_hosts(plan: Plan, options: StackOptions) -> StackSpec:
    provider = options.kind
    hosts, review = _hosts_of(plan, options)
    notes: list[str] = []
    if review:
        notes.append(f"review only: no host has provider {provider}; the lab hosts are shown as "
                     f"{provider} would create them (`up` provisions only provider: {provider} hosts)")
    elif not hosts:
        notes.append(f"no host has provider {provider}: the stack is empty")
    if hosts and not options.controller_keys:
        notes.append("no controller SSH key: the hosts would be unreachable by `relais deploy`")
    members = {h.name for h in hosts}
    catalogue = options.openstack_flavors if provider == "openstack" else options.scaleway_types
    sites: dict[str, SiteSpec] = {}
    specs: list[HostSpec] = []
    unresolved: list[str] = []
    for host in hosts:
        region = host.region
        if provider == "scaleway" and region is None:
            if not review:
                raise StackSpecError(f"site {host.site} of {host.name} has no region",
                                     f"set `sites.{host.site}.region` in hosting.yaml, e.g. fr-par")
            region = REVIEW_SCALEWAY_REGION
        try:
            size = pick(catalogue, vcpu=host.capacity.vcpu, ram_mib=host.capacity.ram_mib)
        except NoSizeFits as error:
            variable = "RELAIS_OPENSTACK_FLAVORS" if provider == "openstack" else "RELAIS_SCALEWAY_TYPES"
            raise StackSpecError(f"{host.name}: {error}",
                                 f"lower the host's capacity or add a size to the catalogue ({variable})",
                                 ) from None
        rules, missing = _expand(host, members)
        unresolved += missing
        sites.setdefault(host.site, SiteSpec(host.site, host.country, region, site_cidr(host.site)))
        specs.append(HostSpec(
            name=host.name, fqdn=host.fqdn, site=host.site, country=host.country, region=region,
            roles=tuple(host.roles), size=size,
            data_disk_gib=max(MIN_DATA_DISK_GIB, math.ceil(host.capacity.disk_mib / 1024)),
            public=any(r.source in WORLD for r in rules),
            user_data=user_data(hostname=host.name, fqdn=host.fqdn,
                                controller_keys=list(options.controller_keys)),
            rules=tuple(rules)))
    cidrs = [s.cidr for s in sites.values()]
    if len(set(cidrs)) != len(cidrs):
        raise StackSpecError("two sites got the same private network",
                             "rename one of the sites (their networks derive from their names)")
    if unresolved:
        notes.append(f"{len(unresolved)} firewall sources are hosts of another stack whose address "
                     "is not known yet; they are left out (default drop) until that stack is up: "
                     + "; ".join(unresolved))
    buckets = []
    for site in sites.values():
        on_site = {h.name for h in plan.hosts if h.site == site.name}
        tenants = [t for t in plan.tenants if t.host in on_site or t.backup.target_host in on_site]
        days = max((backup_window_days(t) for t in tenants), default=DEFAULT_NONCURRENT_DAYS)
        buckets.append(BackupBucketArgs(site=site.name, country=site.country, region=site.region,
                                        name=bucket_name(plan.syndicate.domain, site.name),
                                        noncurrent_days=days))
    return StackSpec(kind=provider, provider=provider, project=f"relais-{provider}", hosts=tuple(specs),
                     sites=tuple(sites.values()), buckets=tuple(buckets), unresolved=tuple(unresolved),
                     notes=tuple(notes), review=review)


# --------------------------------------------------------------------------- the Pulumi program


class _Network(Protocol):
    @property
    def network_id(self) -> pulumi.Output[str]: ...

    @property
    def subnet_id(self) -> pulumi.Output[str] | None: ...


class _Host(Protocol):
    @property
    def security_group_id(self) -> pulumi.Output[str]: ...

    @property
    def address(self) -> pulumi.Output[str | None]: ...

    @property
    def public_address(self) -> pulumi.Output[str | None]: ...


def run(spec: StackSpec, options: StackOptions) -> None:
    """The body of a Pulumi program: create the stack's components, export host addresses."""
    if spec.kind == "dns":
        from stacks.components.openstack import OpenStackDnsZone
        from stacks.components.scaleway import ScalewayDnsZone

        zone_class = OpenStackDnsZone if spec.provider == "openstack" else ScalewayDnsZone
        assert spec.zone is not None
        zone_class("zone", DnsZoneArgs(zone=spec.zone, records=spec.records))
        pulumi.export("zone", spec.zone)
        pulumi.export("records", [r.fqdn for r in spec.records])
        return
    if spec.provider == "openstack":
        from stacks.components import openstack as impl_os

        network_class: Callable[[str, SiteNetworkArgs], _Network] = impl_os.OpenStackSiteNetwork
        host_class: Callable[[str, HostArgs], _Host] = impl_os.OpenStackHost
        firewall_class: Callable[[str, HostFirewallArgs], object] = impl_os.OpenStackHostFirewall
        bucket_class: Callable[[str, BackupBucketArgs], object] = impl_os.OpenStackBackupBucket
    else:
        from stacks.components import scaleway as impl_scw

        network_class = impl_scw.ScalewaySiteNetwork
        host_class = impl_scw.ScalewayHost
        firewall_class = impl_scw.ScalewayHostFirewall
        bucket_class = impl_scw.ScalewayBackupBucket
    networks = {
        site.name: network_class(f"site-{site.name}", SiteNetworkArgs(
            site=site.name, country=site.country, region=site.region, cidr=site.cidr,
            external_network=options.external_network))
        for site in spec.sites
    }
    image = options.openstack_image if spec.provider == "openstack" else options.scaleway_image
    hosts: dict[str, _Host] = {}
    for host in spec.hosts:
        network = networks[host.site]
        hosts[host.name] = host_class(host.name, HostArgs(
            name=host.name, fqdn=host.fqdn, site=host.site, country=host.country, region=host.region,
            roles=host.roles, size=host.size.name, data_disk_gib=host.data_disk_gib, image=image,
            user_data=host.user_data, network_id=network.network_id, subnet_id=network.subnet_id,
            public=host.public, external_network=options.external_network))
    for host in spec.hosts:
        peers = {r.peer for r in host.rules if r.peer}
        firewall_class(f"{host.name}-firewall", HostFirewallArgs(
            host=host.name, region=host.region, security_group_id=hosts[host.name].security_group_id,
            rules=host.rules,
            peer_groups={p: hosts[p].security_group_id for p in sorted(peers)},
            peer_addresses={p: hosts[p].address.apply(lambda a: a or "") for p in sorted(peers)}))
    for bucket in spec.buckets:
        bucket_class(f"backups-{bucket.site}", bucket)
    pulumi.export("hosts", {
        name: {"address": host.address, "public_address": host.public_address}
        for name, host in hosts.items()
    })
    pulumi.export("buckets", {b.site: b.name for b in spec.buckets})
    pulumi.export("unresolved", list(spec.unresolved))
    pulumi.export("review", spec.review)


def program(plan: Plan, options: StackOptions) -> Callable[[], None]:
    """A Pulumi program (for the Automation API or the mock runtime) for this Plan."""
    spec = describe(plan, options)
    return lambda: run(spec, options)
