"""Alert rules, generated from the settings; every alert has a French and an English text.

Annotations: ``summary_fr``/``description_fr`` (read first: the syndicate's staff
and the mairies speak French) and ``summary_en``/``description_en``. Labels kept
on every alert: ``host`` and, where it concerns a commune, ``tenant`` (an INSEE
code, or ``shared`` for the regional homeserver), which `relais status` and the
e-mails use to say who is affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relais.monitoring.metrics import BACKUP_LAST_SUCCESS, TENANT_INFO, TLS_EXPIRY
from relais.monitoring.settings import MonitoringSettings
from relais.monitoring.targets import (
    CLIENT_KINDS,
    FEDERATION_KINDS,
    JOB_NODE,
    JOB_PROBE,
    SERVICE_JOBS,
    STACK_JOBS,
)

GROUP = "relais"

# Alert names: stable, used by tests, dashboards and the documentation.
HOST_DOWN = "HostDown"
DISK_FILLING = "DiskFilling"
MEMORY_PRESSURE = "MemoryPressure"
CERTIFICATE_EXPIRING = "CertificateExpiring"
BACKUP_TOO_OLD = "BackupTooOld"
BACKUP_MISSING = "BackupMissing"
TENANT_ENDPOINT_DOWN = "TenantEndpointDown"
SERVICE_DOWN = "ServiceDown"
FEDERATION_FAILING = "FederationFailing"
MONITORING_DOWN = "MonitoringDown"


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    duration: str
    severity: str
    summary_fr: str
    summary_en: str
    description_fr: str
    description_en: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity},
            "annotations": {"summary_fr": self.summary_fr, "summary_en": self.summary_en,
                            "description_fr": self.description_fr, "description_en": self.description_en},
        }


def _regex(values: tuple[str, ...]) -> str:
    return "|".join(values)


# Real file systems only: pseudo and in-memory ones never fill a disk.
FS_FILTER = 'fstype!~"tmpfs|ramfs|devtmpfs|squashfs|nsfs|fuse.lxcfs",mountpoint!~"/(run|dev|sys|proc)($|/.*)"'


def alert_rules(settings: MonitoringSettings) -> list[AlertRule]:
    t, d = settings.thresholds, settings.for_
    backup_seconds = int(t.backup_age_hours * 3600)
    return [
        AlertRule(
            HOST_DOWN, f'up{{job="{JOB_NODE}"}} == 0', d.host_down, "critical",
            "Serveur injoignable : {{ $labels.host }}",
            "Host down: {{ $labels.host }}",
            "Le serveur {{ $labels.host }} ne répond plus à la supervision depuis "
            f"{d.host_down} : les communes qu'il héberge sont probablement sans messagerie.",
            f"Host {{{{ $labels.host }}}} has not answered monitoring for {d.host_down}: the communes "
            "it hosts probably have no messaging.",
        ),
        AlertRule(
            DISK_FILLING,
            f"100 * (1 - node_filesystem_avail_bytes{{job=\"{JOB_NODE}\",{FS_FILTER}}}"
            f" / node_filesystem_size_bytes{{job=\"{JOB_NODE}\",{FS_FILTER}}}) > {t.disk_used_percent:g}",
            d.disk, "warning",
            "Disque presque plein : {{ $labels.host }} {{ $labels.mountpoint }}",
            "Disk filling: {{ $labels.host }} {{ $labels.mountpoint }}",
            "{{ $labels.mountpoint }} sur {{ $labels.host }} est rempli à {{ $value | printf \"%.0f\" }} % "
            f"(seuil {t.disk_used_percent:g} %).",
            "{{ $labels.mountpoint }} on {{ $labels.host }} is {{ $value | printf \"%.0f\" }}% full "
            f"(threshold {t.disk_used_percent:g}%).",
        ),
        AlertRule(
            MEMORY_PRESSURE,
            f'100 * node_memory_MemAvailable_bytes{{job="{JOB_NODE}"}}'
            f' / node_memory_MemTotal_bytes{{job="{JOB_NODE}"}} < {t.memory_available_percent:g}',
            d.memory, "warning",
            "Mémoire saturée : {{ $labels.host }}",
            "Memory pressure: {{ $labels.host }}",
            "Il ne reste que {{ $value | printf \"%.0f\" }} % de mémoire disponible sur {{ $labels.host }} "
            f"(seuil {t.memory_available_percent:g} %).",
            "Only {{ $value | printf \"%.0f\" }}% of memory is available on {{ $labels.host }} "
            f"(threshold {t.memory_available_percent:g}%).",
        ),
        AlertRule(
            CERTIFICATE_EXPIRING,
            f'(probe_ssl_earliest_cert_expiry{{job="{JOB_PROBE}"}} - time()) / 86400'
            f" < {t.certificate_days:g}"
            f' or label_replace(({TLS_EXPIRY}{{job="{JOB_NODE}"}} - time()) / 86400,'
            f' "server_name", "$1", "name", "(.*)") < {t.certificate_days:g}',
            d.certificate, "warning",
            "Certificat bientôt expiré : {{ $labels.server_name }}",
            "Certificate expiring: {{ $labels.server_name }}",
            "Le certificat de {{ $labels.server_name }} sur {{ $labels.host }} expire dans "
            "{{ $value | printf \"%.0f\" }} jours "
            f"(seuil {t.certificate_days:g} jours).",
            "The certificate of {{ $labels.server_name }} on {{ $labels.host }} expires in "
            "{{ $value | printf \"%.0f\" }} days "
            f"(threshold {t.certificate_days:g} days).",
        ),
        AlertRule(
            BACKUP_TOO_OLD,
            f"time() - max by (tenant) ({BACKUP_LAST_SUCCESS}) > {backup_seconds}",
            d.backup, "warning",
            "Sauvegarde en retard : commune {{ $labels.tenant }}",
            "Backup too old: tenant {{ $labels.tenant }}",
            "La dernière sauvegarde réussie de la commune {{ $labels.tenant }} date de "
            "{{ $value | humanizeDuration }} (seuil " f"{t.backup_age_hours:g} h).",
            "The last successful backup of tenant {{ $labels.tenant }} is {{ $value | humanizeDuration }} "
            f"old (threshold {t.backup_age_hours:g} h).",
        ),
        AlertRule(
            BACKUP_MISSING,
            f'max by (tenant, commune, host) ({TENANT_INFO}{{backup!=""}})'
            f" unless on (tenant) {BACKUP_LAST_SUCCESS}",
            f"{int(t.backup_age_hours)}h", "warning",
            "Aucune sauvegarde : commune {{ $labels.tenant }} ({{ $labels.commune }})",
            "No backup: tenant {{ $labels.tenant }} ({{ $labels.commune }})",
            "Aucune sauvegarde réussie n'est connue pour la commune {{ $labels.commune }} "
            f"({{{{ $labels.tenant }}}}) depuis {t.backup_age_hours:g} h.",
            f"No successful backup is known for tenant {{{{ $labels.tenant }}}} ({{{{ $labels.commune }}}}) "
            f"for {t.backup_age_hours:g} h.",
        ),
        AlertRule(
            TENANT_ENDPOINT_DOWN,
            f'probe_success{{job="{JOB_PROBE}",kind=~"{_regex(CLIENT_KINDS)}"}} == 0',
            d.endpoint_down, "critical",
            "Service de messagerie injoignable : {{ $labels.server_name }}",
            "Tenant endpoint down: {{ $labels.server_name }}",
            "{{ $labels.instance }} ({{ $labels.kind }}) ne répond pas depuis " f"{d.endpoint_down} : "
            "les agents de {{ if eq $labels.tenant \"shared\" }}toutes les communes du serveur régional"
            "{{ else }}la commune {{ $labels.commune }}{{ end }} ne peuvent plus se connecter.",
            "{{ $labels.instance }} ({{ $labels.kind }}) has not answered for " f"{d.endpoint_down}: "
            "agents of {{ if eq $labels.tenant \"shared\" }}every commune on the regional homeserver"
            "{{ else }}{{ $labels.commune }}{{ end }} cannot connect.",
        ),
        AlertRule(
            SERVICE_DOWN,
            f'up{{job=~"{_regex(SERVICE_JOBS)}"}} == 0',
            d.service_down, "critical",
            "Service arrêté : {{ $labels.service }} sur {{ $labels.host }}",
            "Service down: {{ $labels.service }} on {{ $labels.host }}",
            "{{ $labels.service }} sur {{ $labels.host }} ne répond plus (métriques injoignables depuis "
            f"{d.service_down}).",
            "{{ $labels.service }} on {{ $labels.host }} stopped answering (metrics unreachable for "
            f"{d.service_down}).",
        ),
        AlertRule(
            FEDERATION_FAILING,
            f'probe_success{{job="{JOB_PROBE}",kind=~"{_regex(FEDERATION_KINDS)}"}} == 0',
            d.federation, "warning",
            "Fédération en échec : {{ $labels.server_name }}",
            "Federation failing: {{ $labels.server_name }}",
            "Les autres serveurs ne peuvent plus joindre {{ $labels.instance }} ({{ $labels.kind }}) "
            f"depuis {d.federation} : les échanges avec les autres communes sont interrompus.",
            "Other servers cannot reach {{ $labels.instance }} ({{ $labels.kind }}) for "
            f"{d.federation}: exchanges with other communes are interrupted.",
        ),
        AlertRule(
            MONITORING_DOWN,
            f'up{{job=~"{_regex((*STACK_JOBS, JOB_PROBE))}"}} == 0',
            d.monitoring, "critical",
            "Supervision dégradée : {{ $labels.job }} sur {{ $labels.host }}",
            "Monitoring degraded: {{ $labels.job }} on {{ $labels.host }}",
            "{{ $labels.job }} ne répond plus sur {{ $labels.host }} : une partie de la supervision "
            "est aveugle.",
            "{{ $labels.job }} stopped answering on {{ $labels.host }}: part of the monitoring is blind.",
        ),
    ]


def rules_file(settings: MonitoringSettings) -> dict[str, Any]:
    return {"groups": [{"name": GROUP, "rules": [r.as_dict() for r in alert_rules(settings)]}]}
