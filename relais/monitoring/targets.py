"""What the monitor watches, derived from the Plan alone.

The planner decides which tenants are probed (``PlannedTenant.probes``: approved
and active tenants that are placed); this module turns the Plan into scrape
targets (node exporters, homeservers' and Prosody's metrics listeners, the
monitoring stack itself) and blackbox probes (each tenant's public endpoints).
A commune added to the inventory and deployed is therefore monitored without
any hand edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from relais.firewall import ALERTMANAGER, NODE_EXPORTER, PROMETHEUS
from relais.plan import Plan, PlannedHost

BLACKBOX = 9115
"""Blackbox exporter, bound to the monitor host's loopback: only its Prometheus asks it."""

SYNAPSE_METRICS_PATH = "/_synapse/metrics"
PROSODY_METRICS_PATH = "/metrics"  # mod_http_openmetrics on Prosody's HTTP port

# Scrape jobs
JOB_NODE = "node"
JOB_SYNAPSE = "synapse"
JOB_PROSODY = "prosody"
JOB_PROMETHEUS = "prometheus"
JOB_ALERTMANAGER = "alertmanager"
JOB_BLACKBOX = "blackbox"
JOB_PROBE = "tenant_probe"

SERVICE_JOBS = (JOB_SYNAPSE, JOB_PROSODY)
STACK_JOBS = (JOB_PROMETHEUS, JOB_ALERTMANAGER, JOB_BLACKBOX)

# Blackbox probe kinds (PlannedTenant.probes[].kind) and what they check
CLIENT_KINDS = ("matrix-client", "xmpp-c2s")
FEDERATION_KINDS = ("matrix-federation", "xmpp-s2s")
SHARED = "shared"
"""``tenant`` label of targets that serve every matrix-shared tenant (the regional homeserver)."""


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str
    labels: dict[str, str]
    metrics_path: str = "/metrics"

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.address)


@dataclass(frozen=True)
class ProbeTarget:
    """One public endpoint, probed once however many tenants it serves."""

    kind: str
    target: str  # what blackbox connects to: a URL or host:port
    module: str
    server_name: str
    host: str
    tenant: str  # a tenant id, or SHARED
    commune: str

    @property
    def labels(self) -> dict[str, str]:
        return {"kind": self.kind, "tenant": self.tenant, "commune": self.commune, "host": self.host,
                "server_name": self.server_name}


def reach(host: PlannedHost) -> str:
    """How the monitor reaches a host: its private address, else its name."""
    return host.address or host.fqdn


def monitor_hosts(plan: Plan) -> list[PlannedHost]:
    return [h for h in plan.hosts if "monitor" in h.roles]


def scrape_targets(plan: Plan, monitor: PlannedHost) -> list[ScrapeTarget]:
    """Every target the Prometheus of `monitor` scrapes, sorted by (job, address)."""
    hosts = {h.name: h for h in plan.hosts}
    targets: list[ScrapeTarget] = []
    for host in plan.hosts:
        targets.append(ScrapeTarget(JOB_NODE, f"{reach(host)}:{NODE_EXPORTER}",
                                    {"host": host.name, "site": host.site}))
    for tenant in plan.tenants:
        if (tenant.flavor == "matrix-dedicated" and tenant.host in hosts and tenant.metrics_port
                and any(p.kind == "metrics" for p in tenant.probes)):
            host = hosts[tenant.host]
            targets.append(ScrapeTarget(
                JOB_SYNAPSE, f"{reach(host)}:{tenant.metrics_port}",
                {"host": host.name, "tenant": tenant.id, "commune": tenant.commune,
                 "service": tenant.unix_user or f"synapse-{tenant.id}"}, SYNAPSE_METRICS_PATH))
    shared = plan.shared_homeserver
    if shared is not None and shared.metrics_port and shared.host in hosts:
        targets.append(ScrapeTarget(
            JOB_SYNAPSE, f"{reach(hosts[shared.host])}:{shared.metrics_port}",
            {"host": shared.host, "tenant": SHARED, "commune": "", "service": shared.unix_user},
            SYNAPSE_METRICS_PATH))
    for service in plan.xmpp_services:
        if service.metrics_port and service.host in hosts:
            targets.append(ScrapeTarget(
                JOB_PROSODY, f"{reach(hosts[service.host])}:{service.metrics_port}",
                {"host": service.host, "tenant": SHARED, "commune": "", "service": "prosody"},
                PROSODY_METRICS_PATH))
    here = reach(monitor)
    targets += [
        ScrapeTarget(JOB_PROMETHEUS, f"{here}:{PROMETHEUS}", {"host": monitor.name}),
        ScrapeTarget(JOB_ALERTMANAGER, f"{here}:{ALERTMANAGER}", {"host": monitor.name}),
        ScrapeTarget(JOB_BLACKBOX, f"127.0.0.1:{BLACKBOX}", {"host": monitor.name}),
    ]
    return sorted(targets, key=lambda t: t.key)


def probe_module(kind: str) -> str:
    """Blackbox module of a probe kind (modules are defined in relais/monitoring/blackbox.py)."""
    return kind.replace("-", "_")


def probe_url(kind: str, target: str) -> str:
    if kind == "matrix-federation":
        return f"https://{target}/_matrix/federation/v1/version"
    return target


def probe_targets(plan: Plan) -> list[ProbeTarget]:
    """Every public endpoint of every probed tenant, once each, sorted."""
    shared_name = plan.shared_homeserver.server_name if plan.shared_homeserver else None
    found: dict[tuple[str, str], ProbeTarget] = {}
    for tenant in plan.tenants:
        for probe in tenant.probes:
            if probe.kind in ("metrics", "node", "https") or tenant.host is None:
                # metrics listeners are scraped, not probed; "https"/"node" are not tenant endpoints
                continue
            url = probe_url(probe.kind, probe.target)
            is_shared = tenant.flavor == "matrix-shared" and tenant.server_name == shared_name
            found.setdefault((probe.kind, url), ProbeTarget(
                kind=probe.kind, target=url, module=probe_module(probe.kind),
                server_name=tenant.server_name, host=tenant.host,
                tenant=SHARED if is_shared else tenant.id, commune="" if is_shared else tenant.commune))
    return sorted(found.values(), key=lambda p: (p.kind, p.target))
