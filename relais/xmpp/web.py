"""The web client of an xmpp commune: Converse.js at https://<domain>/, served by nginx on the
commune's host, talking XMPP over WebSocket to Prosody through the same origin (pure: no I/O).

Files on the host:
  /usr/share/relais/converse/<version>/dist/...          shared by every commune of the host
  /etc/relais/xmpp/web/<domain>/{index.html,relais-converse.js}   the commune's page and settings
  /etc/nginx/sites-available/relais-xmpp-<insee>.conf      its server block (enabled by a symlink)

The page runs no inline script: a strict Content-Security-Policy allows scripts from the
origin only, and connections to the origin and its WebSocket.
"""

from __future__ import annotations

import json

from relais.plan import PlannedTenant
from relais.xmpp.config import TLS_DIR, conference_domain

CONVERSE_ROOT = "/usr/share/relais/converse"
WEB_ROOT = "/etc/relais/xmpp/web"
NGINX_AVAILABLE = "/etc/nginx/sites-available"
NGINX_ENABLED = "/etc/nginx/sites-enabled"
SITE_PREFIX = "relais-xmpp-"
WEBSOCKET_PATH = "/xmpp-websocket"
NGINX_HTTP_CONF = "/etc/nginx/conf.d/relais-xmpp-names.conf"
NGINX_HTTP_SETTINGS = ("# Managed by Relais (deploys/xmpp): communes' domains are longer than nginx's\n"
                       "# default allows.\nserver_names_hash_bucket_size 128;\n")


def site_name(tenant: PlannedTenant) -> str:
    return f"{SITE_PREFIX}{tenant.id}.conf"


def content_security_policy(domain: str) -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",  # Converse's components set style attributes
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "media-src 'self' blob:",
        f"connect-src 'self' wss://{domain}",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ])


def render_settings(tenant: PlannedTenant, version: str) -> str:
    """relais-converse.js: Converse's settings for this commune (no other server reachable)."""
    domain = tenant.domain or tenant.server_name
    settings = {
        "websocket_url": f"wss://{domain}{WEBSOCKET_PATH}",
        "discover_connection_methods": False,
        "assets_path": f"/converse/{version}/dist/",
        "view_mode": "fullscreen",
        "i18n": "fr",
        "default_domain": domain,
        "locked_domain": domain,
        "muc_domain": conference_domain(domain),
        "allow_registration": False,
        "auto_reconnect": True,
        "persistent_store": "IndexedDB",
        "show_client_info": False,
    }
    return ("// Managed by Relais (deploys/xmpp): web client of "
            f"{tenant.commune} (INSEE {tenant.insee}).\n"
            f"converse.initialize({json.dumps(settings, indent=2, sort_keys=True)});\n")


def render_index(tenant: PlannedTenant, version: str) -> str:
    title = f"Messagerie de {tenant.commune}"
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_html(title)}</title>
<link rel="stylesheet" href="/converse/{version}/dist/converse.min.css">
<script type="module" src="/converse/{version}/dist/converse.min.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>La messagerie de {_html(tenant.commune)} demande JavaScript.</noscript>
<script type="module" src="/relais-converse.js"></script>
</body>
</html>
"""


def render_site(tenant: PlannedTenant, metrics_port: int) -> str:
    """nginx server blocks of the commune's web client (HTTPS; HTTP only redirects)."""
    domain = tenant.domain or tenant.server_name
    csp = content_security_policy(domain)
    return f"""# Managed by Relais (deploys/xmpp): web client of {tenant.commune} (INSEE {tenant.insee}).
server {{
    listen 80;
    listen [::]:80;
    server_name {domain};
    location / {{ return 301 https://$host$request_uri; }}
}}

server {{
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name {domain};

    ssl_certificate {TLS_DIR}/{domain}/fullchain.pem;
    ssl_certificate_key {TLS_DIR}/{domain}/privkey.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;

    add_header Content-Security-Policy "{csp}" always;
    add_header Strict-Transport-Security "max-age=63072000" always;
    add_header X-Content-Type-Options nosniff always;
    add_header Referrer-Policy no-referrer always;
    add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;

    root {WEB_ROOT}/{domain};
    location = / {{ try_files /index.html =404; }}
    location = /relais-converse.js {{ }}
    location /converse/ {{
        alias {CONVERSE_ROOT}/;
        expires 7d;
    }}
    location = {WEBSOCKET_PATH} {{
        proxy_pass http://127.0.0.1:{metrics_port}{WEBSOCKET_PATH};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto https;
        proxy_read_timeout 900s;
    }}
    location / {{ return 404; }}
}}
"""


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
