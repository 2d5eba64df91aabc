"""Prosody's configuration for one host, rendered from the Plan (pure: no I/O).

Layout on the host::

    /etc/prosody/prosody.cfg.lua            server-wide settings (this module: render_main)
    /etc/prosody/relais.d/<insee>.cfg.lua   one commune: its VirtualHost and MUC component
                                            (render_tenant), included by the main file

Adding a commune writes only its file; Prosody re-reads its configuration on
reload (SIGHUP) and the deploy then activates the new hosts through the admin
shell (Prosody 0.12 only activates hosts at start), so connected sessions of the
other communes stay up.

Density: the server-wide section carries every module that Prosody loads once
for the whole process (c2s, s2s, http, websocket, metrics, the federation guard,
the admin shell); per virtual host only what an agent's client needs is loaded,
and the group-chat component loads the MUC and its archive, nothing else.
mod_relais_shared (deploys/xmpp/templates) makes the communes share the compiled
code of those modules and their TLS contexts: about half the memory per commune.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relais.plan import Plan, PlannedHost, PlannedTenant
from relais.xmpp import XmppError

PROSODY_DIR = "/etc/prosody"
MAIN_CONFIG = f"{PROSODY_DIR}/prosody.cfg.lua"
TENANTS_DIR = f"{PROSODY_DIR}/relais.d"
TLS_DIR = "/etc/relais/tls"
DATA_DIR = "/var/lib/prosody"
FEDERATION_CONFIG = f"{PROSODY_DIR}/relais-federation.cfg.lua"
ADMIN_SOCKET = f"{DATA_DIR}/prosody.sock"
C2S_PORT = 5222
S2S_PORT = 5269

# Loaded once per process (global modules in Prosody's sense, or server-wide services).
# relais_shared compiles each module's code once for all hosts (see its file); listed first.
SHARED_MODULE = "relais_shared"
FEDERATION_MODULE = "relais_federation"
SERVER_MODULES = (SHARED_MODULE, "admin_shell", "http_openmetrics", "limits", FEDERATION_MODULE)
# Our own modules, installed in LOCAL_MODULES_DIR by the deploy (a change restarts Prosody).
LOCAL_MODULES = (SHARED_MODULE, FEDERATION_MODULE)
LOCAL_MODULES_DIR = "/usr/local/lib/prosody/modules"
# Loaded for each commune's virtual host: what an agent's client (desktop, mobile, Converse.js) uses.
# Left out on purpose: register (accounts come from the inventory), vcard_legacy, time,
# uptime, version, invites, offline-only extras: each costs memory on every commune.
VHOST_MODULES = ("roster", "saslauth", "tls", "dialback", "disco", "carbons", "mam", "smacks",
                 "blocklist", "pep", "websocket")
# Modules Prosody would otherwise load (Debian's defaults, or inherited by components) that we never want.
DISABLED_MODULES = ("register", "offline_email", "invites_register", "announce", "admin_adhoc")
MUC_MODULES = ("muc_mam", "relais_federation")
MUC_DISABLED = ("smacks", "s2s_bidi", "dialback")

GC_THRESHOLD = 120
GC_SPEED = 400

# Open files: Prosody 0.12's `Include` leaves each included file open until the garbage collector
# closes it, so re-reading a thousand communes' files needs more than systemd's default soft
# limit (1024; measured: "Too many open files" on reload with 1,000 communes); agents'
# connections need descriptors too.
UNIT_DROPIN = "/etc/systemd/system/prosody.service.d/relais.conf"
OPEN_FILES_LIMIT = 16384

# Connection limits (Prosody's mod_limits, stanza size limits, network settings).
C2S_RATE = "10kb/s"
S2S_RATE = "30kb/s"
BURST_SECONDS = 2
C2S_STANZA_LIMIT = 256 * 1024
C2S_UNAUTHED_LIMIT = 10000
S2S_STANZA_LIMIT = 512 * 1024
TCP_BACKLOG = 128
SSL_HANDSHAKE_TIMEOUT = 30


def lua_string(value: str) -> str:
    """A Lua string literal (double quotes), safe for any text."""
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def lua_list(values: Iterable[str], indent: str = "\t") -> str:
    items = [f"{indent}{lua_string(v)};" for v in values]
    return "{\n" + "\n".join(items) + "\n}" if items else "{ }"


def conference_domain(domain: str) -> str:
    return f"conference.{domain}"


def tenant_file(tenant: PlannedTenant) -> str:
    """Path of a commune's own configuration file on the host."""
    return f"{TENANTS_DIR}/{tenant.id}.cfg.lua"


def retention_period(days: int) -> str:
    """Prosody's `archive_expires_after` for a retention in days ("never" for 0 or less)."""
    return f"{days}d" if days > 0 else "never"


def xmpp_tenants(plan: Plan, host: PlannedHost) -> list[PlannedTenant]:
    """The xmpp tenants Prosody serves on this host (offboarded ones are gone; suspended
    ones keep their file, disabled)."""
    placed = set(host.tenants)
    return sorted((t for t in plan.tenants if t.id in placed and t.flavor == "xmpp"
                   and t.status != "offboarded" and t.domain), key=lambda t: t.id)


def served_domains(tenant: PlannedTenant) -> list[str]:
    domain = tenant.domain or tenant.server_name
    return [domain, conference_domain(domain)]


def federation_allowed(plan: Plan, tenants: Iterable[PlannedTenant]) -> list[str]:
    """Remote domains this host's communes may federate with.

    By default only the syndicate's own XMPP domains (and their group-chat components),
    widened by the inventory's `federation.allow` and each commune's `federation_extra`.
    Prosody's guard holds one list per process: a commune's extra domains apply to the
    communes sharing its host (documented in docs/xmpp.md)."""
    allowed: set[str] = set()
    for domain in plan.federation.xmpp:
        allowed.update((domain, conference_domain(domain)))
    allowed.update(plan.federation.allow)
    for tenant in tenants:
        allowed.update(tenant.federation_extra)
    return sorted(allowed)


def monitor_addresses(plan: Plan) -> list[str]:
    return sorted(h.address for h in plan.hosts if "monitor" in h.roles and h.address)


@dataclass(frozen=True)
class HostSettings:
    """What the main file needs beyond the Plan's tenants."""

    private_address: str | None
    metrics_port: int
    metrics_sources: list[str]
    allowed: list[str]


def host_settings(plan: Plan, host: PlannedHost) -> HostSettings:
    services = [s for s in plan.xmpp_services if s.host == host.name]
    if not services:
        raise XmppError(f"host {host.name} carries no xmpp service in the Plan")
    tenants = xmpp_tenants(plan, host)
    return HostSettings(private_address=host.address, metrics_port=services[0].metrics_port or 5280,
                        metrics_sources=monitor_addresses(plan),
                        allowed=federation_allowed(plan, tenants))


def render_main(settings: HostSettings) -> str:
    """/etc/prosody/prosody.cfg.lua: everything shared by the communes of this host."""
    http_interfaces = ["127.0.0.1", *([settings.private_address] if settings.private_address else [])]
    metrics_ips = ["127.0.0.1", *settings.metrics_sources]
    lines = [
        "-- Managed by Relais (deploys/xmpp): changes made here are overwritten.",
        "-- One commune per file in relais.d/; this file holds what they all share.",
        "",
        'pidfile = "/run/prosody/prosody.pid"',
        "admins = { }",
        f"plugin_paths = {{ {lua_string(LOCAL_MODULES_DIR)} }}",
        f"admin_socket = {lua_string(ADMIN_SOCKET)}",
        "",
        "-- Modules: loaded once here; each commune's VirtualHost adds only its own (see relais.d/).",
        f"modules_enabled = {lua_list([*SERVER_MODULES, *VHOST_MODULES])}",
        f"modules_disabled = {lua_list(DISABLED_MODULES)}",
        "",
        "-- Accounts come from the inventory only: no in-band registration.",
        "allow_registration = false",
        'authentication = "internal_hashed"',
        'storage = "internal"',
        "",
        "-- Memory: collect garbage far sooner than Lua's default (which lets the heap double between",
        "-- cycles). Prosody's own default (105/500) saves another 6 % of memory for 3 times the",
        "-- start-up CPU; 100 never lets the collector rest (docs/xmpp.md, Density).",
        f"gc = {{ mode = \"incremental\"; threshold = {GC_THRESHOLD}; speed = {GC_SPEED}; }}",
        "",
        "-- Encryption everywhere; remote servers must present a valid certificate.",
        "c2s_require_encryption = true",
        "s2s_require_encryption = true",
        "s2s_secure_auth = true",
        'ssl = { protocol = "tlsv1_2+"; }',
        "",
        "-- Connection limits.",
        "limits = {",
        f'\tc2s = {{ rate = {lua_string(C2S_RATE)}; burst = "{BURST_SECONDS}s"; }};',
        f'\ts2sin = {{ rate = {lua_string(S2S_RATE)}; burst = "{BURST_SECONDS}s"; }};',
        f'\ts2sout = {{ rate = {lua_string(S2S_RATE)}; burst = "{BURST_SECONDS}s"; }};',
        "}",
        f"c2s_stanza_size_limit = {C2S_STANZA_LIMIT}",
        f"c2s_unauthed_stanza_size_limit = {C2S_UNAUTHED_LIMIT}",
        f"s2s_stanza_size_limit = {S2S_STANZA_LIMIT}",
        f"network_settings = {{ tcp_backlog = {TCP_BACKLOG}; "
        f"ssl_handshake_timeout = {SSL_HANDSHAKE_TIMEOUT}; }}",
        "",
        "-- HTTP: WebSocket for the web client (behind nginx on the same host) and metrics.",
        f"http_ports = {{ {settings.metrics_port} }}",
        f"http_interfaces = {lua_list(http_interfaces)}",
        "https_ports = { }",
        "consider_websocket_secure = true",
        'trusted_proxies = { "127.0.0.1" }',
        'statistics = "internal"',
        'statistics_interval = "manual"',
        f"openmetrics_allow_ips = {lua_list(metrics_ips)}",
        "",
        "log = {",
        '\tinfo = "/var/log/prosody/prosody.log";',
        '\terror = "/var/log/prosody/prosody.err";',
        "}",
        "",
        "-- Federation allow-list and communes: re-read on reload, no restart needed.",
        f"Include {lua_string(FEDERATION_CONFIG)}",
        f"Include {lua_string(TENANTS_DIR + '/*.cfg.lua')}",
        "",
    ]
    return "\n".join(lines)


def render_unit_dropin() -> str:
    """Drop-in of Debian's prosody.service (a change restarts Prosody)."""
    return "\n".join([
        "# Managed by Relais (deploys/xmpp): each commune's file is open while Prosody reads them.",
        "[Service]",
        f"LimitNOFILE={OPEN_FILES_LIMIT}",
        "",
    ])


def render_federation(settings: HostSettings) -> str:
    """relais-federation.cfg.lua (server-wide scope): the remote domains this host's communes may
    federate with (enforced by mod_relais_federation). It changes when a commune is added
    anywhere in the syndicate, so it is re-read on reload, like the communes' files."""
    lines = [
        "-- Managed by Relais (deploys/xmpp): federation is limited to the syndicate's own domains",
        "-- unless the inventory widens it (federation.allow, a commune's federation_extra).",
        f"relais_federation_allow = {lua_list(settings.allowed)}",
        "",
    ]
    return "\n".join(lines)


def render_tenant(tenant: PlannedTenant) -> str:
    """relais.d/<insee>.cfg.lua: one commune's virtual host and group-chat component."""
    domain = tenant.domain or tenant.server_name
    muc = conference_domain(domain)
    enabled = "true" if tenant.status != "suspended" else "false"
    expires = lua_string(retention_period(tenant.retention.messages_days))
    ssl = (f'ssl = {{ certificate = {lua_string(f"{TLS_DIR}/{domain}/fullchain.pem")}; '
           f'key = {lua_string(f"{TLS_DIR}/{domain}/privkey.pem")}; }}')
    lines = [
        f"-- Managed by Relais: commune {tenant.commune} (INSEE {tenant.insee}), from {tenant.source}.",
        f"-- Status {tenant.status}: a suspended commune keeps its data but serves no login.",
        f"VirtualHost {lua_string(domain)}",
        f"\tenabled = {enabled}",
        f"\t{ssl}",
        f"\tarchive_expires_after = {expires}",
        "\tdefault_archive_policy = true",
        "\tallow_registration = false",
        "",
        f"Component {lua_string(muc)} \"muc\"",
        f"\tenabled = {enabled}",
        f"\t{ssl}",
        f"\tmodules_enabled = {lua_list(MUC_MODULES, indent=chr(9) * 2)}",
        f"\tmodules_disabled = {lua_list(MUC_DISABLED, indent=chr(9) * 2)}",
        f"\tmuc_log_expires_after = {expires}",
        "\tmuc_log_by_default = true",
        "\tmuc_room_default_public = false",
        "\tmuc_room_locking = false",
        "\trestrict_room_creation = \"local\"",
        "",
    ]
    return "\n".join(lines)
