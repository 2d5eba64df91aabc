"""The Relais components on Scaleway (a French provider; regions fr-par, nl-ams, pl-waw).

Credentials come from the usual ``SCW_*`` environment variables (``SCW_ACCESS_KEY``,
``SCW_SECRET_KEY``, ``SCW_DEFAULT_PROJECT_ID``), read by the provider itself.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumiverse_scaleway as scaleway

from stacks.components.args import (
    BackupBucketArgs,
    DnsZoneArgs,
    HostArgs,
    HostFirewallArgs,
    Labels,
    SiteNetworkArgs,
)


def zone_of(region: str) -> str:
    """Relais places a site's instances in the first zone of its region (``fr-par`` -> ``fr-par-1``)."""
    return region if region.count("-") >= 2 else f"{region}-1"


def _child(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent)


def _first_address(ips: Any) -> str | None:
    for item in ips or []:
        address = item.get("address") if isinstance(item, dict) else getattr(item, "address", None)
        if address:
            return str(address).split("/")[0]
    return None


class ScalewaySiteNetwork(pulumi.ComponentResource):
    """A site's private network in its region."""

    network_id: pulumi.Output[str]
    subnet_id: None = None

    def __init__(self, name: str, args: SiteNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:scaleway:SiteNetwork", name, None, opts)
        network = scaleway.network.PrivateNetwork(
            f"{name}-net", name=f"relais-{args.site}", region=args.region,
            ipv4_subnet=scaleway.network.PrivateNetworkIpv4SubnetArgs(subnet=args.cidr),
            tags=Labels(site=args.site, country=args.country).as_tags(), opts=_child(self))
        self.network_id = network.id
        self.register_outputs({"network_id": network.id})


class ScalewayHost(pulumi.ComponentResource):
    """One host: its security group (inbound drop by default), a public IP, a data volume
    and the instance on the site's private network.

    Every Scaleway host gets a public IP (its way out without a public gateway); the
    security group still drops everything the Plan does not allow.
    """

    security_group_id: pulumi.Output[str]
    address: pulumi.Output[str | None]
    public_address: pulumi.Output[str | None]

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:scaleway:Host", name, None, opts)
        if args.region is None:
            raise ValueError(f"{args.name}: a Scaleway host needs its site's region")
        zone = zone_of(args.region)
        tags = args.labels.as_tags() + [f"relais-role={role}" for role in args.roles]
        group = scaleway.instance.SecurityGroup(
            f"{name}-sg", name=f"relais-{args.name}", zone=zone, stateful=True,
            inbound_default_policy="drop", outbound_default_policy="accept", external_rules=True,
            description=f"Relais: inbound allowances of {args.name} (everything else dropped)",
            tags=tags, opts=_child(self))
        ip = scaleway.instance.Ip(f"{name}-ip", zone=zone, tags=tags, opts=_child(self))
        volume = scaleway.block.Volume(
            f"{name}-data", name=f"relais-{args.name}-data", size_in_gb=args.data_disk_gib, iops=5000,
            zone=zone, tags=tags, opts=_child(self))
        server = scaleway.instance.Server(
            f"{name}-server", name=args.name, type=args.size, image=args.image, zone=zone,
            ip_id=ip.id, security_group_id=group.id, additional_volume_ids=[volume.id],
            private_networks=[scaleway.instance.ServerPrivateNetworkArgs(pn_id=args.network_id)],
            user_data={"cloud-init": args.user_data}, tags=tags, opts=_child(self))
        self.security_group_id = group.id
        self.address = server.private_ips.apply(_first_address)
        self.public_address = ip.address.apply(lambda a: a or None)
        self.register_outputs({"security_group_id": group.id, "address": self.address,
                               "public_address": self.public_address})


class ScalewayHostFirewall(pulumi.ComponentResource):
    """The Plan's inbound allowances of one host as the rules of its security group; a peer
    host of the same stack is allowed by its private address."""

    def __init__(self, name: str, args: HostFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:scaleway:HostFirewall", name, None, opts)
        rules: list[scaleway.instance.SecurityGroupRulesInboundRuleArgs] = []
        for rule in args.rules:
            peer = rule.peer
            source: pulumi.Input[str] = (
                pulumi.Output.from_input(args.peer_addresses[peer]).apply(lambda a: f"{a}/32")
                if peer else rule.source)
            rules.append(scaleway.instance.SecurityGroupRulesInboundRuleArgs(
                action="accept", protocol=rule.protocol.upper(), port=rule.port, ip_range=source))
        scaleway.instance.SecurityGroupRules(
            f"{name}-rules", security_group_id=args.security_group_id, inbound_rules=rules,
            opts=_child(self))
        self.register_outputs({})


class ScalewayBackupBucket(pulumi.ComponentResource):
    """A versioned Object Storage bucket for a site's off-site backups, whose old versions
    expire after the retention window and whose abandoned uploads are cleaned up."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: BackupBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:scaleway:BackupBucket", name, None, opts)
        labels = Labels(site=args.site, country=args.country)
        bucket = scaleway.object.Bucket(
            f"{name}-bucket", name=args.name, region=args.region,
            versioning=scaleway.object.BucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                scaleway.object.BucketLifecycleRuleArgs(
                    id="relais-old-versions", enabled=True,
                    noncurrent_version_expiration=scaleway.object.BucketLifecycleRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_days)),
                scaleway.object.BucketLifecycleRuleArgs(
                    id="relais-abandoned-uploads", enabled=True, abort_incomplete_multipart_upload_days=1),
            ],
            tags=labels.as_metadata(), opts=_child(self))
        self.name = bucket.name
        self.register_outputs({"name": bucket.name})


class ScalewayDnsZone(pulumi.ComponentResource):
    """Records in the syndicate's zone at Scaleway Domains and DNS."""

    def __init__(self, name: str, args: DnsZoneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:scaleway:DnsZone", name, None, opts)
        for record in args.records:
            scaleway.domain.Record(
                f"{name}-{record.type.lower()}-{record.fqdn}", dns_zone=args.zone,
                name="" if record.name == "@" else record.name, type=record.type, data=record.value,
                ttl=record.ttl, opts=_child(self))
        self.register_outputs({"zone": args.zone, "records": len(args.records)})
