"""Messaging rules: settings of the homeservers and XMPP hosts that expose communes' agents."""

from __future__ import annotations

import ipaddress

from policies.engine import Context, Judge, Outcome, tenant_rule
from relais.findings import Severity
from relais.plan import Plan, PlannedTenant

FAMILY = "messaging"
SOURCE = "Relais messaging baseline (ANSSI, guide d'hygiène informatique: réduire la surface d'attaque)"

SSRF_REQUIRED = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
    "::1/128", "fe80::/10", "fc00::/7",
))
"""Ranges a URL preview must never fetch: loopback, private, link-local (cloud metadata), CGNAT."""


@tenant_rule("MSG-01", title="Registration is closed",
             source=SOURCE, severity=Severity.ERROR, family=FAMILY, field=("tenant", "messaging"),
             hint="remove messaging.registration: open (accounts are created from the commune's agents list)")
def registration_closed(plan: Plan, ctx: Context) -> Judge:
    """Accounts are the agents the commune declares; open registration lets anyone create an
    account under the commune's name (spam, impersonation)."""
    def judge(t: PlannedTenant) -> Outcome:
        if t.messaging.registration_open:
            return Outcome(t.id, f"{t.commune}: anyone can register an account on {t.server_name}",
                           {"registration_open": True})
        return Outcome(t.id)
    return judge


@tenant_rule("MSG-02", title="Federation is limited to a declared allow-list that includes the tenant",
             source=SOURCE + "; doctrine de l'État pour la messagerie des agents publics "
                             "(Tchap: fédération fermée)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant",),
             hint="check that the tenant is placed and its server_name is in the Plan's federation list; "
                  "add partners to defaults.federation.allow or tenant.federation.allow")
def federation_allow_list(plan: Plan, ctx: Context) -> Judge:
    """Homeservers federate only with the syndicate's own servers and declared partners: the
    Plan's federation list must be non-empty and contain every placed tenant's server."""
    fed = plan.federation
    xmpp, matrix = set(fed.xmpp), set(fed.matrix)  # a region has thousands: look up in sets

    def judge(t: PlannedTenant) -> Outcome | None:
        if t.host is None:
            return None
        servers = xmpp if t.flavor == "xmpp" else matrix
        if not servers:
            return Outcome(t.id, "the plan has no federation allow-list", {"federation": fed.model_dump()})
        if t.server_name not in servers:
            return Outcome(t.id, f"{t.commune}: {t.server_name} is not in the federation allow-list",
                           {"server_name": t.server_name,
                            "allow_list": fed.xmpp if t.flavor == "xmpp" else fed.matrix})
        return Outcome(t.id, evidence={"extra": t.federation_extra, "allow": fed.allow})
    return judge


@tenant_rule("MSG-03", title="The admin API is not exposed",
             source=SOURCE + "; Synapse documentation (reverse proxy: do not expose /_synapse/admin)",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "messaging"),
             hint="remove messaging.admin_api_exposed (operators reach the admin API over SSH)")
def admin_api_hidden(plan: Plan, ctx: Context) -> Judge:
    """The homeserver's admin API stays on the host's loopback; operators use it through SSH."""
    def judge(t: PlannedTenant) -> Outcome:
        if t.messaging.admin_api_exposed:
            return Outcome(t.id, f"{t.commune}: the admin API of {t.server_name} is reachable "
                                 "from the Internet",
                           {"admin_api_exposed": True})
        return Outcome(t.id)
    return judge


def _covered(blacklist: list[str]) -> list[str]:
    """Required SSRF ranges not covered by `blacklist`."""
    nets = []
    for entry in blacklist:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return [str(req) for req in SSRF_REQUIRED
            if not any(n.version == req.version and req.subnet_of(n) for n in nets)]  # type: ignore[arg-type]


@tenant_rule("MSG-04", title="URL previews are off unless an SSRF block list is set",
             source=SOURCE + "; OWASP SSRF prevention; Synapse url_preview_ip_range_blacklist",
             severity=Severity.ERROR, family=FAMILY, field=("tenant", "messaging"),
             hint="turn url_previews off, or set messaging.url_preview_ip_blacklist covering loopback, "
                  "private, link-local and CGNAT ranges")
def url_previews_safe(plan: Plan, ctx: Context) -> Judge:
    """A homeserver that fetches URL previews for users can be made to fetch internal
    addresses (cloud metadata, the database host): previews need a block list covering
    loopback, RFC 1918, link-local and CGNAT ranges, IPv4 and IPv6."""
    def judge(t: PlannedTenant) -> Outcome:
        m = t.messaging
        if not m.url_previews:
            return Outcome(t.id, evidence={"url_previews": False})
        missing = _covered(m.url_preview_ip_blacklist)
        if missing:
            return Outcome(t.id, f"{t.commune}: URL previews are on and the block list misses "
                                 f"{', '.join(missing)}",
                           {"url_previews": True, "missing": missing,
                            "blacklist": m.url_preview_ip_blacklist})
        return Outcome(t.id, evidence={"url_previews": True})
    return judge


RULES = (registration_closed, federation_allow_list, admin_api_hidden, url_previews_safe)
