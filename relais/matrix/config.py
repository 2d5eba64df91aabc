"""Synapse, systemd and nginx configuration of a homeserver: pure functions of the Plan.

Secrets are passed in as values by the deploy (read from the vault) and only ever end up
in files written with restrictive modes on the host. Choices follow Synapse's
configuration manual; each hardening option says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from relais.matrix.homeservers import (
    SYNAPSE_VENV,
    Homeserver,
    federation_allow_list,
    listen_address,
    private_federation_addresses,
    trusted_key_servers,
)
from relais.plan import Plan

LAB_CA_FILE = "/usr/local/share/ca-certificates/relais-ca.crt"
TLS_DIR = "/etc/relais/tls"
MAX_UPLOAD = "50M"

# ANSSI TLS guide (R5-R9): TLS 1.2 and 1.3 only, ECDHE key exchange, AEAD ciphers.
ANSSI_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
ANSSI_CURVES = "X25519:prime256v1:secp384r1"


@dataclass(frozen=True)
class HomeserverSecrets:
    db_password: str
    macaroon_secret: str
    form_secret: str


def homeserver_config(plan: Plan, hs: Homeserver, secrets: HomeserverSecrets, *, lab: bool,
                      metrics_address: str | None) -> dict[str, Any]:
    """homeserver.yaml as a mapping."""
    listeners: list[dict[str, Any]] = [{
        "port": hs.port, "bind_addresses": [listen_address(plan, hs)], "type": "http", "tls": False,
        "x_forwarded": True, "resources": [{"names": ["client", "federation"], "compress": False}],
    }]
    if hs.metrics_port is not None and metrics_address:
        listeners.append({"port": hs.metrics_port, "bind_addresses": [metrics_address],
                          "type": "metrics", "resources": []})
    days = hs.retention_days
    config: dict[str, Any] = {
        "server_name": hs.server_name,
        "public_baseurl": f"https://{hs.server_name}/",
        "serve_server_wellknown": False,  # nginx serves the delegation documents
        "listeners": listeners,
        "enable_metrics": hs.metrics_port is not None and bool(metrics_address),
        "report_stats": False,
        "admin_contact": f"mailto:{plan.syndicate.contact}",
        "database": {
            "name": "psycopg2",
            "args": {"user": hs.database, "password": secrets.db_password, "dbname": hs.database,
                     "host": "127.0.0.1", "port": 5432, "cp_min": 1, "cp_max": 3},
        },
        "log_config": f"{hs.config_dir}/log.yaml",
        "media_store_path": f"{hs.data_dir}/media",
        "signing_key_path": f"{hs.config_dir}/signing.key",
        "macaroon_secret_key": secrets.macaroon_secret,
        "form_secret": secrets.form_secret,
        # Accounts come from the inventory: no self-registration, no guests. The shared
        # secret used once to create the admin account lives in conf.d/ only meanwhile.
        "enable_registration": False,
        "allow_guest_access": False,
        "enable_3pid_changes": False,
        "password_config": {"enabled": True, "policy": {"enabled": True, "minimum_length": 12}},
        "url_preview_enabled": hs.url_previews,
        "presence": {"enabled": False},
        # Federation: the syndicate's homeservers only (the inventory can widen it).
        "federation_domain_whitelist": federation_allow_list(plan, hs),
        "federation_client_minimum_tls_version": "1.2",
        "trusted_key_servers": [{"server_name": name} for name in trusted_key_servers(plan, hs)],
        "suppress_key_server_warning": True,
        "allow_public_rooms_over_federation": False,
        "allow_public_rooms_without_auth": False,
        "allow_device_name_lookup_over_federation": False,
        "require_auth_for_profile_requests": True,
        "limit_profile_requests_to_users_who_share_rooms": True,
        "user_directory": {"enabled": True, "search_all_users": False},
        "retention": {
            "enabled": True,
            "default_policy": {"min_lifetime": "1d", "max_lifetime": f"{days}d"},
            "allowed_lifetime_min": "1d",
            "allowed_lifetime_max": f"{days}d",
            "purge_jobs": [{"interval": "12h"}],
        },
        "redaction_retention_period": "7d",
        "user_ips_max_age": "28d",
        "forgotten_room_retention_period": "28d",
        "max_upload_size": MAX_UPLOAD,
        "dynamic_thumbnails": False,
        # Small communes: a few dozen users, caches sized down (Synapse's defaults target
        # servers with thousands of users).
        "caches": {"global_factor": 0.25, "expire_caches": True, "cache_entry_ttl": "30m",
                   "sync_response_cache_duration": "2m"},
        "event_cache_size": "2K",
        "rc_login": {"address": {"per_second": 0.5, "burst_count": 10},
                     "account": {"per_second": 0.5, "burst_count": 10},
                     "failed_attempts": {"per_second": 0.17, "burst_count": 3}},
    }
    allowed = private_federation_addresses(plan)
    if allowed:
        # Synapse blocks outbound requests to private ranges; the syndicate's own hosts are let through.
        config["ip_range_whitelist"] = allowed
    if lab:
        # Lab certificates come from the syndicate's own CA (production: ACME, system trust).
        config["federation_custom_ca_list"] = [LAB_CA_FILE]
    return config


def render_homeserver(plan: Plan, hs: Homeserver, secrets: HomeserverSecrets, *, lab: bool,
                      metrics_address: str | None) -> str:
    body = yaml.safe_dump(homeserver_config(plan, hs, secrets, lab=lab, metrics_address=metrics_address),
                          sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"# Managed by Relais (deploys/matrix): changes here are overwritten.\n{body}"


def render_log_config() -> str:
    """Synapse logs to the journal (stdout), whose retention follows the inventory's policy."""
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s - %(levelname)s - %(request)s - %(message)s"}},
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                                 "filters": ["context"]}},
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"},
                    "synapse.access": {"level": "INFO"}},
        "root": {"level": "WARNING", "handlers": ["console"]},
        "disable_existing_loggers": False,
    }
    return yaml.safe_dump(config, sort_keys=False)


def render_unit(hs: Homeserver) -> str:
    communes = ", ".join(t.commune for t in hs.communes) or "no commune yet"
    label = "shared regional homeserver" if hs.shared else communes
    return f"""# Managed by Relais (deploys/matrix).
[Unit]
Description=Synapse homeserver {hs.server_name} ({label})
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User={hs.unix_user}
Group={hs.unix_user}
WorkingDirectory={hs.data_dir}
ExecStart={SYNAPSE_VENV}/bin/python -m synapse.app.homeserver \\
    --config-path={hs.config_dir}/homeserver.yaml --config-path={hs.config_dir}/conf.d/
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
TimeoutStartSec=900
MemoryMax={hs.memory_limit_mib}M
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=
ReadWritePaths={hs.data_dir}

[Install]
WantedBy=multi-user.target
"""


def well_known_server(hs: Homeserver) -> str:
    return json.dumps({"m.server": f"{hs.server_name}:443"})


def well_known_client(hs: Homeserver) -> str:
    return json.dumps({"m.homeserver": {"base_url": hs.base_url}})


def render_tls_snippet() -> str:
    return f"""# Managed by Relais (deploys/proxy): TLS for the Matrix sites (ANSSI TLS guide).
ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers {ANSSI_TLS12_CIPHERS};
ssl_ecdh_curve {ANSSI_CURVES};
ssl_prefer_server_ciphers on;
ssl_session_timeout 1d;
ssl_session_cache shared:RelaisMatrixTLS:10m;
ssl_session_tickets off;
add_header Strict-Transport-Security "max-age=63072000" always;
add_header X-Content-Type-Options nosniff always;
"""


def _nginx_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_site(hs: Homeserver, backend: str) -> str:
    """One nginx site per served homeserver name: 443 (clients, delegated federation) and 8448."""
    name = hs.server_name
    return f"""# Managed by Relais (deploys/proxy): Matrix homeserver {name}.
server {{
    listen 80;
    server_name {name};
    location / {{ return 301 https://$host$request_uri; }}
}}

server {{
    listen 443 ssl http2;
    listen 8448 ssl http2;
    server_name {name};

    ssl_certificate {TLS_DIR}/{name}/fullchain.pem;
    ssl_certificate_key {TLS_DIR}/{name}/privkey.pem;
    include /etc/nginx/snippets/relais-matrix-tls.conf;

    client_max_body_size {MAX_UPLOAD};

    location = /.well-known/matrix/server {{
        default_type application/json;
        add_header Access-Control-Allow-Origin * always;
        return 200 {_nginx_string(well_known_server(hs))};
    }}
    location = /.well-known/matrix/client {{
        default_type application/json;
        add_header Access-Control-Allow-Origin * always;
        return 200 {_nginx_string(well_known_client(hs))};
    }}

    # The admin API and metrics are for loopback only (the deploy's own admin account).
    location ^~ /_synapse/admin {{ return 404; }}
    location ^~ /_synapse/metrics {{ return 404; }}

    location ~ ^(/_matrix|/_synapse/client) {{
        proxy_pass http://{backend};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 120s;
    }}

    location / {{ return 404; }}
}}
"""
