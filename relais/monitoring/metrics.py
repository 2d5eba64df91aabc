"""Metric names Relais itself publishes, and where.

Relais' own jobs (backups, the Plan's view of each host) write node exporter
textfiles: one ``*.prom`` file per concern in :data:`TEXTFILE_DIR`, written
atomically (write ``<file>.$$`` then ``mv``) so the exporter never reads half a file.

Backups (written by the backup job of every tenant, on the host that runs it)::

    # /var/lib/prometheus/node-exporter/relais_backup.prom
    relais_backup_last_success_timestamp_seconds{tenant="14118"} 1735689600
    relais_backup_last_size_bytes{tenant="14118"} 123456789

Certificates on each host (hourly, by the ``relais-tls-expiry`` timer)::

    # /var/lib/prometheus/node-exporter/relais_tls.prom
    relais_tls_certificate_expiry_timestamp_seconds{name="caen.fr"} 1767225600

Tenants a host carries (written by ``deploys/monitor`` from the Plan; the backup
alerts know from it which tenants must have a backup)::

    # /var/lib/prometheus/node-exporter/relais_plan.prom
    relais_tenant_info{tenant="14118",commune="Caen",flavor="matrix-dedicated",backup="backup-rouen"} 1
"""

from __future__ import annotations

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"

BACKUP_TEXTFILE = f"{TEXTFILE_DIR}/relais_backup.prom"
BACKUP_LAST_SUCCESS = "relais_backup_last_success_timestamp_seconds"
"""Unix time of the tenant's last successful backup (label ``tenant``)."""
BACKUP_LAST_SIZE = "relais_backup_last_size_bytes"
"""Size of the tenant's last successful backup archive, in bytes (label ``tenant``)."""

PLAN_TEXTFILE = f"{TEXTFILE_DIR}/relais_plan.prom"
TENANT_INFO = "relais_tenant_info"
"""1 for every tenant placed on the host (labels ``tenant``, ``commune``, ``flavor``, ``backup``)."""


def escape_label(value: str) -> str:
    """A label value in the Prometheus text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

TLS_TEXTFILE = f"{TEXTFILE_DIR}/relais_tls.prom"
TLS_EXPIRY = "relais_tls_certificate_expiry_timestamp_seconds"
"""notAfter of each certificate in /etc/relais/tls/<name>/fullchain.pem (label ``name``), refreshed
hourly by the ``relais-tls-expiry`` timer of deploys/monitor."""
