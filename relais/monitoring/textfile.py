"""Node exporter textfiles Relais writes from the Plan."""

from __future__ import annotations

from relais.monitoring.metrics import TENANT_INFO, escape_label
from relais.plan import Plan, PlannedHost


def tenant_info(plan: Plan, host: PlannedHost) -> str:
    """relais_plan.prom of a host: one line per tenant placed on it."""
    placed = set(host.tenants)
    lines = [f"# HELP {TENANT_INFO} A tenant the Plan places on this host (backup: its backup target).",
             f"# TYPE {TENANT_INFO} gauge"]
    for tenant in plan.tenants:
        if tenant.id not in placed or tenant.status not in ("approved", "active"):
            continue
        labels = {"tenant": tenant.id, "commune": tenant.commune, "flavor": tenant.flavor,
                  "backup": tenant.backup.target_host or ""}
        text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        lines.append(f"{TENANT_INFO}{{{text}}} 1")
    return "\n".join(lines) + "\n"
