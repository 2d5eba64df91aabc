"""Provider-neutral arguments of the Relais components.

The same concept (a site's network, a host, its firewall, a backup bucket, a DNS zone)
has the same ``Args`` whichever provider builds it, so a syndicate can mix its own
OpenStack datacenter and a French cloud from one Plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

COUNTRY_LABEL = "relais-country"


@dataclass(frozen=True)
class Labels:
    """Who a resource belongs to; every located resource carries its site's country."""

    site: str
    country: str
    host: str | None = None

    def as_metadata(self) -> dict[str, str]:
        labels = {"relais-site": self.site, COUNTRY_LABEL: self.country, "managed-by": "relais"}
        if self.host:
            labels["relais-host"] = self.host
        return labels

    def as_tags(self) -> list[str]:
        return [f"{key}={value}" for key, value in sorted(self.as_metadata().items())]


@dataclass(frozen=True)
class SiteNetworkArgs:
    site: str
    country: str
    region: str | None
    cidr: str
    external_network: str = "public"
    """OpenStack: the provider network routers use for egress and floating IPs."""


@dataclass(frozen=True)
class HostArgs:
    name: str
    fqdn: str
    site: str
    country: str
    region: str | None
    roles: Sequence[str]
    size: str
    """Flavor (OpenStack) or commercial type (Scaleway), chosen from the declared capacity."""
    data_disk_gib: int
    image: str
    user_data: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str] | None = None
    public: bool = False
    """Reachable from the Internet (a floating/flexible IP): hosts the public reaches."""
    external_network: str = "public"

    @property
    def labels(self) -> Labels:
        return Labels(site=self.site, country=self.country, host=self.name)


@dataclass(frozen=True)
class Ingress:
    """One inbound allowance of the Plan, for one source."""

    protocol: str
    port: int
    source: str
    """A CIDR, or ``host:<name>`` for a peer of the same stack (resolved by the component)."""
    purpose: str

    @property
    def peer(self) -> str | None:
        return self.source.removeprefix("host:") if self.source.startswith("host:") else None

    @property
    def ethertype(self) -> str:
        return "IPv6" if ":" in self.source and self.peer is None else "IPv4"


@dataclass(frozen=True)
class HostFirewallArgs:
    host: str
    region: str | None
    security_group_id: pulumi.Input[str]
    rules: Sequence[Ingress]
    peer_groups: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """OpenStack: security group of each peer host (rules from ``host:<name>`` use it)."""
    peer_addresses: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Scaleway: private address of each peer host."""
    zone: str | None = None


@dataclass(frozen=True)
class BackupBucketArgs:
    site: str
    country: str
    region: str | None
    name: str
    noncurrent_days: int
    """How long an overwritten or deleted object stays recoverable, then truly disappears."""


@dataclass(frozen=True)
class ZoneRecord:
    name: str
    """Relative to the zone; ``@`` for the apex."""
    fqdn: str
    type: str
    value: str
    ttl: int


@dataclass(frozen=True)
class DnsZoneArgs:
    zone: str
    records: Sequence[ZoneRecord]
    region: str | None = None
