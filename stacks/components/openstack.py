"""The Relais components on OpenStack (regional datacenters and several French clouds).

Credentials come from the usual ``OS_*`` environment variables (or ``clouds.yaml``), read
by the provider itself: nothing here ever sees them.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from stacks.components.args import (
    BackupBucketArgs,
    DnsZoneArgs,
    HostArgs,
    HostFirewallArgs,
    Labels,
    SiteNetworkArgs,
)


def _child(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent)


class OpenStackSiteNetwork(pulumi.ComponentResource):
    """A site's private network and subnet, routed to the provider network for egress."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]

    def __init__(self, name: str, args: SiteNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:openstack:SiteNetwork", name, None, opts)
        labels = Labels(site=args.site, country=args.country)
        tags = labels.as_tags()
        network = openstack.networking.Network(
            f"{name}-net", name=f"relais-{args.site}", region=args.region, tags=tags,
            opts=_child(self))
        subnet = openstack.networking.Subnet(
            f"{name}-subnet", name=f"relais-{args.site}", network_id=network.id, cidr=args.cidr,
            ip_version=4, region=args.region, tags=tags, opts=_child(self))
        external = openstack.networking.get_network_output(name=args.external_network, region=args.region)
        router = openstack.networking.Router(
            f"{name}-router", name=f"relais-{args.site}", external_network_id=external.id,
            region=args.region, tags=tags, opts=_child(self))
        openstack.networking.RouterInterface(
            f"{name}-router-interface", router_id=router.id, subnet_id=subnet.id, region=args.region,
            opts=_child(self))
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.register_outputs({"network_id": network.id, "subnet_id": subnet.id})


class OpenStackHost(pulumi.ComponentResource):
    """One host: its security group (default drop inbound), port, instance and data volume,
    and a floating IP when the public must reach it."""

    security_group_id: pulumi.Output[str]
    address: pulumi.Output[str | None]
    public_address: pulumi.Output[str | None]

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:openstack:Host", name, None, opts)
        labels = args.labels
        metadata = labels.as_metadata() | {"relais-roles": ",".join(args.roles)}
        group = openstack.networking.SecGroup(
            f"{name}-sg", name=f"relais-{args.name}", region=args.region,
            description=f"Relais: inbound allowances of {args.name} (everything else dropped)",
            tags=labels.as_tags(), opts=_child(self))
        port = openstack.networking.Port(
            f"{name}-port", name=f"relais-{args.name}", network_id=args.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id)]
            if args.subnet_id is not None else None,
            security_group_ids=[group.id], region=args.region, tags=labels.as_tags(), opts=_child(self))
        instance = openstack.compute.Instance(
            f"{name}-instance", name=args.name, flavor_name=args.size, image_name=args.image,
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)], user_data=args.user_data,
            metadata=metadata, region=args.region, tags=labels.as_tags(), opts=_child(self))
        volume = openstack.blockstorage.Volume(
            f"{name}-data", name=f"relais-{args.name}-data", size=args.data_disk_gib,
            description=f"Relais: data of {args.name}", metadata=labels.as_metadata(),
            region=args.region, opts=_child(self))
        openstack.compute.VolumeAttach(
            f"{name}-data-attach", instance_id=instance.id, volume_id=volume.id, region=args.region,
            opts=_child(self))
        public: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.public:
            floating = openstack.networking.FloatingIp(
                f"{name}-fip", pool=args.external_network, port_id=port.id, region=args.region,
                description=f"Relais: public address of {args.name}", tags=labels.as_tags(),
                opts=_child(self))
            public = floating.address
        self.security_group_id = group.id
        self.address = port.all_fixed_ips.apply(lambda ips: ips[0] if ips else None)
        self.public_address = public
        self.register_outputs({"security_group_id": group.id, "address": self.address,
                               "public_address": public})


class OpenStackHostFirewall(pulumi.ComponentResource):
    """The Plan's inbound allowances of one host as security-group rules, one per source;
    a peer host of the same stack is allowed by its security group."""

    def __init__(self, name: str, args: HostFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:openstack:HostFirewall", name, None, opts)
        for rule in args.rules:
            peer = rule.peer
            suffix = f"{rule.protocol}-{rule.port}-{peer or rule.source.replace('/', '_')}"
            openstack.networking.SecGroupRule(
                f"{name}-{suffix}", security_group_id=args.security_group_id, direction="ingress",
                ethertype=rule.ethertype, protocol=rule.protocol, port_range_min=rule.port,
                port_range_max=rule.port,
                remote_ip_prefix=None if peer else rule.source,
                remote_group_id=args.peer_groups[peer] if peer else None,
                description=rule.purpose, region=args.region, opts=_child(self))
        self.register_outputs({})


class OpenStackBackupBucket(pulumi.ComponentResource):
    """A versioned Swift container for a site's off-site backups.

    Swift has no lifecycle rules: the uploader sets ``X-Delete-After`` from the retention
    window recorded here, and borg prune removes expired archives.
    """

    name: pulumi.Output[str]

    def __init__(self, name: str, args: BackupBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:openstack:BackupBucket", name, None, opts)
        labels = Labels(site=args.site, country=args.country)
        container = openstack.objectstorage.Container(
            f"{name}-container", name=args.name, region=args.region, versioning=True,
            metadata=labels.as_metadata() | {"relais-noncurrent-days": str(args.noncurrent_days)},
            opts=_child(self))
        self.name = container.name
        self.register_outputs({"name": container.name})


class OpenStackDnsZone(pulumi.ComponentResource):
    """Records in the syndicate's existing Designate zone."""

    def __init__(self, name: str, args: DnsZoneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("relais:openstack:DnsZone", name, None, opts)
        zone = openstack.dns.get_dns_zone_output(name=f"{args.zone}.", region=args.region)
        for record in args.records:
            value = f'"{record.value}"' if record.type == "TXT" else record.value
            openstack.dns.RecordSet(
                f"{name}-{record.type.lower()}-{record.fqdn}", zone_id=zone.id, name=f"{record.fqdn}.",
                type=record.type, records=[value], ttl=record.ttl, region=args.region,
                description="Relais", opts=_child(self))
        self.register_outputs({"zone": args.zone, "records": len(args.records)})
