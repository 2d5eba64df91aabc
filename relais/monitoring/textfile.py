"""Node exporter textfiles Relais writes from the Plan."""

from __future__ import annotations

from relais.monitoring.metrics import TENANT_INFO, TEXTFILE_DIR, TLS_EXPIRY, escape_label
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


TLS_DIR = "/etc/relais/tls"


def tls_expiry_script() -> str:
    """Shell script writing the notAfter of every certificate under /etc/relais/tls to the
    textfile collector (directories overridable by RELAIS_TLS_DIR and RELAIS_TEXTFILE_DIR)."""
    return f"""#!/bin/sh
# Written by Relais (deploys/monitor): expiry of the certificates this host serves.
set -eu
tls="${{RELAIS_TLS_DIR:-{TLS_DIR}}}"
out="${{RELAIS_TEXTFILE_DIR:-{TEXTFILE_DIR}}}/relais_tls.prom"
tmp="$out.$$"
trap 'rm -f "$tmp"' EXIT
{{
    echo "# HELP {TLS_EXPIRY} notAfter of a certificate under $tls."
    echo "# TYPE {TLS_EXPIRY} gauge"
    for cert in "$tls"/*/fullchain.pem; do
        [ -e "$cert" ] || continue
        name=$(basename "$(dirname "$cert")")
        end=$(openssl x509 -noout -enddate -in "$cert" | cut -d= -f2)
        echo "{TLS_EXPIRY}{{name=\\"$name\\"}} $(date -d "$end" +%s)"
    done
}} > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out"
"""
