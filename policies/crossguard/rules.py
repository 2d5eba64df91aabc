"""CrossGuard rules of Relais: each one a pure ``validate(args, report_violation)`` function.

They read a resource's properties as the Pulumi engine passes them (camelCase names, numbers
possibly as floats) and report what a sovereign regional hosting must not create:

- RELAIS-SOV-01: compute, volumes and buckets are located in the EU/EEA. Scaleway resources
  carry their region or zone; OpenStack region names are cloud-specific, so Relais labels
  every located OpenStack resource with the country of its site (metadata ``relais-country``)
  and the rule checks that label. An unlabelled or unknown location is a violation: what
  cannot be shown to be in the EU/EEA is not.
- RELAIS-NET-01: no inbound SSH (tcp/22) from the whole Internet (0.0.0.0/0, ::/0, or a rule
  without any source, which means the same), and no security group that accepts by default.
- RELAIS-ENC-01: backup buckets keep versions, so a compromised host cannot destroy the
  off-site copy by overwriting or deleting it.
- RELAIS-RET-01: old versions in backup buckets expire, so erased data (an offboarded
  commune, a shortened retention) does not survive in the bucket forever (RGPD).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from relais.model import EU_EEA_COUNTRIES

PACK_NAME = "relais-sovereignty"
COUNTRY_LABEL = "relais-country"
"""OpenStack metadata key (and Scaleway tag prefix ``relais-country=``) naming the site's country."""

SCALEWAY_REGIONS: Mapping[str, str] = {"fr-par": "FR", "nl-ams": "NL", "pl-waw": "PL", "it-mil": "IT"}
"""Scaleway regions Relais knows, with their country; zones are ``<region>-<n>``."""

OPENSTACK_LOCATED = frozenset({
    "openstack:compute/instance:Instance",
    "openstack:blockstorage/volume:Volume",
    "openstack:objectstorage/container:Container",
})
SCALEWAY_LOCATED = frozenset({
    "scaleway:instance/server:Server",
    "scaleway:instance/volume:Volume",
    "scaleway:block/volume:Volume",
    "scaleway:object/bucket:Bucket",
})
OPENSTACK_RULE = "openstack:networking/secGroupRule:SecGroupRule"
SCALEWAY_GROUP = "scaleway:instance/securityGroup:SecurityGroup"
SCALEWAY_RULES = "scaleway:instance/securityGroupRules:SecurityGroupRules"
SCALEWAY_BUCKET = "scaleway:object/bucket:Bucket"
OPENSTACK_CONTAINER = "openstack:objectstorage/container:Container"

SSH_PORT = 22

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def scaleway_region(place: str) -> str:
    """``fr-par-2`` -> ``fr-par``; a region stays itself."""
    parts = place.lower().split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else place.lower()


def _tag_country(tags: Any) -> str | None:
    if isinstance(tags, Mapping):  # buckets carry tags as a mapping
        value = tags.get(COUNTRY_LABEL)
        return str(value).upper() if value else None
    for tag in tags or []:
        if isinstance(tag, str) and tag.startswith(COUNTRY_LABEL + "="):
            return tag.split("=", 1)[1].upper()
    return None


def location_in_eu(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """RELAIS-SOV-01: instances, volumes and buckets are in an EU/EEA country."""
    props = args.props
    if args.resource_type in SCALEWAY_LOCATED:
        place = props.get("zone") or props.get("region")
        if not place:
            report_violation(f"{args.name}: no region or zone; the provider's default could be "
                             "anywhere: set the site's `region`", None)
            return
        country = SCALEWAY_REGIONS.get(scaleway_region(str(place)))
        if country is None:
            report_violation(f"{args.name}: Scaleway location {place} is not a known EU/EEA region "
                             f"(known: {', '.join(sorted(SCALEWAY_REGIONS))})", None)
        elif country not in EU_EEA_COUNTRIES:
            report_violation(f"{args.name}: Scaleway location {place} is in {country}, outside the EU/EEA",
                             None)
        tagged = _tag_country(props.get("tags"))
        if tagged is not None and tagged not in EU_EEA_COUNTRIES:
            report_violation(f"{args.name}: its site is in {tagged}, outside the EU/EEA", None)
    elif args.resource_type in OPENSTACK_LOCATED:
        metadata = props.get("metadata") or {}
        country = str(metadata.get(COUNTRY_LABEL) or "").upper()
        if not country:
            report_violation(f"{args.name}: no `{COUNTRY_LABEL}` metadata; an OpenStack region name "
                             "does not say where it is, so Relais labels each resource with its "
                             "site's country", None)
        elif country not in EU_EEA_COUNTRIES:
            report_violation(f"{args.name}: located in {country}, outside the EU/EEA", None)


def _is_world(source: Any) -> bool:
    if source is None or source == "":
        return True  # no source at all means every source
    try:
        return ipaddress.ip_network(str(source), strict=False).prefixlen == 0
    except ValueError:
        return False


def _covers_ssh(low: Any, high: Any) -> bool:
    if low in (None, 0, 0.0) and high in (None, 0, 0.0):
        return True  # no port range: every port
    low_n = int(low) if low not in (None, "") else 1
    high_n = int(high) if high not in (None, "") else 65535
    return low_n <= SSH_PORT <= high_n


def _scaleway_rule_opens_ssh(rule: Mapping[str, Any]) -> bool:
    if str(rule.get("action", "accept")).lower() != "accept":
        return False
    if str(rule.get("protocol") or "ANY").upper() not in ("TCP", "ANY"):
        return False
    port, port_range = rule.get("port"), rule.get("portRange")
    if port not in (None, 0, 0.0):
        covers = int(port) == SSH_PORT
    elif port_range:
        low, _, high = str(port_range).partition("-")
        covers = _covers_ssh(low or None, high or low or None)
    else:
        covers = True
    source = rule.get("ipRange") or rule.get("ip")
    return covers and _is_world(source)


def no_world_ssh(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """RELAIS-NET-01: SSH is never open to the whole Internet."""
    props = args.props
    if args.resource_type == OPENSTACK_RULE:
        if str(props.get("direction", "ingress")) != "ingress":
            return
        if str(props.get("protocol") or "any").lower() not in ("tcp", "any", "6"):
            return
        if not _covers_ssh(props.get("portRangeMin"), props.get("portRangeMax")):
            return
        if props.get("remoteGroupId") or props.get("remoteAddressGroupId"):
            return
        if _is_world(props.get("remoteIpPrefix")):
            report_violation(f"{args.name}: SSH (tcp/22) open to "
                             f"{props.get('remoteIpPrefix') or 'every address'}; allow the operators' "
                             "networks (`network.admin_sources`) instead", None)
    elif args.resource_type in (SCALEWAY_GROUP, SCALEWAY_RULES):
        if args.resource_type == SCALEWAY_GROUP and \
                str(props.get("inboundDefaultPolicy") or "accept").lower() != "drop":
            report_violation(f"{args.name}: inbound default policy accepts everything, SSH included; "
                             "set it to drop", None)
        for rule in props.get("inboundRules") or []:
            if isinstance(rule, Mapping) and _scaleway_rule_opens_ssh(rule):
                report_violation(f"{args.name}: SSH (tcp/22) open to "
                                 f"{rule.get('ipRange') or rule.get('ip') or 'every address'}; allow "
                                 "the operators' networks (`network.admin_sources`) instead", None)


def backups_versioned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """RELAIS-ENC-01: backup buckets keep object versions."""
    props = args.props
    if args.resource_type == SCALEWAY_BUCKET:
        versioning = props.get("versioning") or {}
        if not (isinstance(versioning, Mapping) and versioning.get("enabled") is True):
            report_violation(f"{args.name}: versioning is off: a compromised host could overwrite "
                             "or delete the off-site backups", None)
    elif args.resource_type == OPENSTACK_CONTAINER and not (
            props.get("versioning") is True or props.get("versioningLegacy")):
        report_violation(f"{args.name}: versioning is off: a compromised host could overwrite "
                         "or delete the off-site backups", None)


def old_versions_expire(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """RELAIS-RET-01: noncurrent versions of backup buckets expire (erasure must be real)."""
    if args.resource_type != SCALEWAY_BUCKET:
        return  # Swift containers have no lifecycle: borg prune and object expiry do it
    for rule in args.props.get("lifecycleRules") or []:
        if not isinstance(rule, Mapping) or rule.get("enabled") is not True:
            continue
        expiry = rule.get("noncurrentVersionExpiration") or {}
        if isinstance(expiry, Mapping) and (expiry.get("noncurrentDays") or 0) > 0:
            return
    report_violation(f"{args.name}: no enabled lifecycle rule expires old versions: data erased "
                     "from the backups would survive in the bucket", None)


def _policy(name: str, description: str, validate: Validate) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


POLICIES: tuple[ResourceValidationPolicy, ...] = (
    _policy("RELAIS-SOV-01", "Instances, volumes and buckets are located in the EU/EEA.", location_in_eu),
    _policy("RELAIS-NET-01", "SSH is never open to the whole Internet.", no_world_ssh),
    _policy("RELAIS-ENC-01", "Backup buckets keep object versions.", backups_versioned),
    _policy("RELAIS-RET-01", "Old versions in backup buckets expire.", old_versions_expire),
)
RULES: tuple[tuple[str, Validate], ...] = (
    ("RELAIS-SOV-01", location_in_eu),
    ("RELAIS-NET-01", no_world_ssh),
    ("RELAIS-ENC-01", backups_versioned),
    ("RELAIS-RET-01", old_versions_expire),
)


@dataclass(frozen=True)
class Violation:
    rule: str
    resource_type: str
    name: str
    message: str


def resource_args(resource_type: str, props: Mapping[str, Any], *, name: str,
                  urn: str = "") -> ResourceValidationArgs:
    """What the engine would hand a rule for one resource (no options, no provider)."""
    opts = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=[], parent=None)
    return ResourceValidationArgs(resource_type, props, urn or name, name, opts, None)


def check(resource_type: str, props: Mapping[str, Any], *, name: str, urn: str = "") -> list[Violation]:
    """Every rule on one resource, without the engine: the offline preview and tests use this."""
    args = resource_args(resource_type, props, name=name, urn=urn)
    found: list[Violation] = []
    for rule_name, validate in RULES:
        def report(message: str, _urn: str | None = None, rule_name: str = rule_name) -> None:
            found.append(Violation(rule_name, resource_type, name, message))

        validate(args, report)
    return found
