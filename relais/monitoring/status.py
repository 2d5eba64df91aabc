"""What `relais status` shows, read from Prometheus' HTTP API with `requests`.

The Plan gives the structure (hosts, their tenants, which endpoint serves which
tenant); Prometheus gives the live values. Pure apart from :class:`PrometheusApi`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from relais.errors import RelaisError
from relais.firewall import PROMETHEUS
from relais.monitoring.metrics import BACKUP_LAST_SUCCESS, TLS_EXPIRY
from relais.monitoring.rules import FS_FILTER
from relais.monitoring.targets import CLIENT_KINDS, JOB_NODE, JOB_PROBE, SHARED, monitor_hosts, reach
from relais.plan import Plan, PlannedTenant


class MonitoringError(RelaisError):
    """Prometheus cannot be reached or answers something unexpected."""


Sample = tuple[dict[str, str], float]


class Api(Protocol):
    def query(self, expr: str) -> list[Sample]: ...
    def firing_alerts(self) -> list[dict[str, Any]]: ...


class PrometheusApi:
    """Prometheus' HTTP API (instant queries and alerts)."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        import requests

        try:
            response = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise MonitoringError(f"cannot read Prometheus at {self.url}: {exc}",
                                  hint="is the monitor host deployed, and is this machine an operator "
                                       "source (firewall)? --prometheus URL chooses another") from exc
        if body.get("status") != "success":
            raise MonitoringError(f"Prometheus at {self.url} answered: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        data = self._get("/api/v1/query", {"query": expr})
        return [(dict(r["metric"]), float(r["value"][1])) for r in data.get("result", [])]

    def firing_alerts(self) -> list[dict[str, Any]]:
        alerts = self._get("/api/v1/alerts").get("alerts", [])
        return [a for a in alerts if a.get("state") == "firing"]


def default_prometheus_url(plan: Plan) -> str:
    monitors = monitor_hosts(plan)
    if not monitors:
        raise MonitoringError("the Plan has no host with the role `monitor`",
                              hint="give a host the role monitor, or pass --prometheus URL")
    return f"http://{reach(monitors[0])}:{PROMETHEUS}"


@dataclass
class Alert:
    name: str
    severity: str
    host: str | None
    tenant: str | None
    summary: str
    since: str

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Alert:
        labels, notes = raw.get("labels", {}), raw.get("annotations", {})
        return cls(name=labels.get("alertname", "?"), severity=labels.get("severity", ""),
                   host=labels.get("host"), tenant=labels.get("tenant"),
                   summary=notes.get("summary_fr") or notes.get("summary_en") or "",
                   since=raw.get("activeAt", ""))


@dataclass
class HostStatus:
    name: str
    up: bool | None
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None
    tenants: list[str]
    alerts: int


@dataclass
class TenantStatus:
    id: str
    commune: str
    flavor: str
    host: str | None
    up: bool | None
    tls_days_left: float | None
    backup_age_hours: float | None
    alerts: list[str] = field(default_factory=list)


@dataclass
class StatusReport:
    prometheus: str
    hosts: list[HostStatus]
    tenants: list[TenantStatus]
    alerts: list[Alert]

    @property
    def firing(self) -> bool:
        return bool(self.alerts)

    def as_dict(self) -> dict[str, Any]:
        return {"prometheus": self.prometheus, "firing": self.firing,
                "hosts": [asdict(h) for h in self.hosts], "tenants": [asdict(t) for t in self.tenants],
                "alerts": [asdict(a) for a in self.alerts]}


def _by(samples: list[Sample], label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples:
        key = labels.get(label)
        if key is not None and not math.isnan(value):
            out[key] = value
    return out


QUERIES = {
    "up": f'max by (host) (up{{job="{JOB_NODE}"}})',
    "cpu": f'100 * (1 - avg by (host) (rate(node_cpu_seconds_total{{job="{JOB_NODE}",mode="idle"}}[2m])))',
    "memory": f'100 * (1 - max by (host) (node_memory_MemAvailable_bytes{{job="{JOB_NODE}"}}'
              f' / node_memory_MemTotal_bytes{{job="{JOB_NODE}"}}))',
    "disk": f'max by (host) (100 * (1 - node_filesystem_avail_bytes{{job="{JOB_NODE}",{FS_FILTER}}}'
            f' / node_filesystem_size_bytes{{job="{JOB_NODE}",{FS_FILTER}}}))',
    "probe": f'min by (tenant) (probe_success{{job="{JOB_PROBE}",kind=~"{"|".join(CLIENT_KINDS)}"}})',
    "tls_probe": f'min by (tenant) ((probe_ssl_earliest_cert_expiry{{job="{JOB_PROBE}"}} - time()) / 86400)',
    "tls_file": f'min by (name) (({TLS_EXPIRY}{{job="{JOB_NODE}"}} - time()) / 86400)',
    "backup": f"(time() - max by (tenant) ({BACKUP_LAST_SUCCESS})) / 3600",
}


def _probe_key(tenant: PlannedTenant, plan: Plan) -> str:
    shared = plan.shared_homeserver
    if tenant.flavor == "matrix-shared" and shared is not None and tenant.server_name == shared.server_name:
        return SHARED
    return tenant.id


def collect(plan: Plan, api: Api, url: str) -> StatusReport:
    values = {name: api.query(expr) for name, expr in QUERIES.items()}
    up, cpu = _by(values["up"], "host"), _by(values["cpu"], "host")
    memory, disk = _by(values["memory"], "host"), _by(values["disk"], "host")
    probe, tls_probe = _by(values["probe"], "tenant"), _by(values["tls_probe"], "tenant")
    tls_file, backup = _by(values["tls_file"], "name"), _by(values["backup"], "tenant")
    alerts = sorted((Alert.from_api(a) for a in api.firing_alerts()),
                    key=lambda a: (a.severity != "critical", a.name, a.host or "", a.tenant or ""))

    hosts = [HostStatus(name=h.name, up=None if h.name not in up else up[h.name] == 1,
                        cpu_percent=cpu.get(h.name), memory_percent=memory.get(h.name),
                        disk_percent=disk.get(h.name), tenants=list(h.tenants),
                        alerts=sum(1 for a in alerts if a.host == h.name))
             for h in plan.hosts]
    tenants: list[TenantStatus] = []
    for tenant in plan.tenants:
        if not tenant.probes:
            continue
        key = _probe_key(tenant, plan)
        days = [d for d in (tls_probe.get(key), tls_file.get(tenant.server_name)) if d is not None]
        tenants.append(TenantStatus(
            id=tenant.id, commune=tenant.commune, flavor=tenant.flavor, host=tenant.host,
            up=None if key not in probe else probe[key] == 1,
            tls_days_left=min(days) if days else None, backup_age_hours=backup.get(tenant.id),
            alerts=sorted({a.name for a in alerts if a.tenant in (tenant.id, key)})))
    return StatusReport(url, hosts, tenants, alerts)
