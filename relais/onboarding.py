"""The onboarding sheet (`relais onboarding COMMUNE`): a printable French page for the mairie.

It is rendered from the Plan only: what was created, the agents' addresses,
the apps to install, the first login, whom to call, retention and where the
data lives, the DNS records the commune creates, and the entry for the
commune's register of processing activities (RGPD art. 30). It never carries a
password or any other secret: initial passwords are delivered separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from relais.errors import RelaisError
from relais.model import EU_EEA_COUNTRIES
from relais.plan import DnsRecord, Plan, PlannedHost, PlannedTenant
from relais.referential import normalize

TEMPLATES = Path(__file__).resolve().parent / "templates"
FLAVOR_TITLES = {
    "matrix-dedicated": "Serveur de messagerie Matrix dédié à votre commune",
    "matrix-shared": "Espace de votre commune sur le serveur Matrix partagé du syndicat",
    "xmpp": "Messagerie XMPP de votre commune",
}
PLACED_STATUSES = ("approved", "active", "suspended")


class OnboardingError(RelaisError):
    """No onboarding sheet can be made for this commune (unknown, not approved, not placed)."""


@dataclass(frozen=True)
class App:
    name: str
    platforms: str
    where: str


MATRIX_APPS = (
    App("Element", "Android", "Google Play ou F-Droid"),
    App("Element", "iPhone et iPad", "App Store"),
    App("Element Desktop", "Windows, macOS, Linux", "element.io/download"),
)
XMPP_APPS = (
    App("Conversations", "Android", "Google Play ou F-Droid"),
    App("Monal", "iPhone, iPad et Mac", "App Store"),
    App("Gajim", "Windows et Linux", "gajim.org"),
)


def find_tenant(plan: Plan, query: str) -> PlannedTenant:
    """A tenant by INSEE code or commune name (accents and case forgiven)."""
    wanted = query.strip()
    for tenant in plan.tenants:
        if tenant.insee == wanted.upper():
            return tenant
    matches = [t for t in plan.tenants if normalize(t.commune) == normalize(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise OnboardingError(f"several communes are named {query!r}: "
                              + ", ".join(f"{t.commune} ({t.insee})" for t in matches),
                              hint="give the INSEE code")
    raise OnboardingError(f"no tenant for {query!r} in the inventory",
                          hint="give the INSEE code of a declared commune (relais plan lists them)")


def _duration(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{years} an{'s' if years > 1 else ''}"
    if days % 30 == 0:
        return f"{days // 30} mois"
    return f"{days} jours"


def _backup_history(daily: int, weekly: int, monthly: int) -> str:
    if monthly:
        return f"environ {monthly} mois"
    if weekly:
        return f"environ {weekly} semaine{'s' if weekly > 1 else ''}"
    return f"{daily} jour{'s' if daily > 1 else ''}"


def _place(host: PlannedHost | None) -> str:
    if host is None:
        return "à définir"
    country = "France" if host.country == "FR" else host.country
    return f"{host.city} ({country})"


def commune_dns(plan: Plan, tenant: PlannedTenant) -> list[DnsRecord]:
    if tenant.domain is None:
        return []
    domain = tenant.domain
    return [r for r in plan.dns if r.managed_by == "commune"
            and (r.name == domain or r.name.endswith("." + domain))]


def render_onboarding(plan: Plan, tenant: PlannedTenant, *, web_client: str | None = None,
                      today: date | None = None) -> str:
    """The sheet as one self-contained HTML page (its style sheet inline, for printing)."""
    if tenant.status not in PLACED_STATUSES or tenant.host is None:
        why = ("it is only requested: approve it first (relais requests approve)"
               if tenant.status == "requested" else
               f"its status is {tenant.status}" if tenant.status not in PLACED_STATUSES else
               "it is not placed on a host yet (relais plan shows why)")
        raise OnboardingError(f"no onboarding sheet for {tenant.commune} ({tenant.insee}): {why}")
    host = plan.host(tenant.host)
    backup = plan.host(tenant.backup.target_host) if tenant.backup.target_host else None
    places = [h for h in (host, backup) if h is not None]
    outside_eu = sorted({h.country for h in places if h.country not in EU_EEA_COUNTRIES})
    matrix = tenant.flavor != "xmpp"
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = environment.get_template("onboarding.html")
    return template.render(
        plan=plan, tenant=tenant, syndicate=plan.syndicate, title=FLAVOR_TITLES[tenant.flavor],
        matrix=matrix, apps=MATRIX_APPS if matrix else XMPP_APPS,
        web_client=(web_client or plan.syndicate.web_client) if matrix else None,
        host_place=_place(host), backup_place=_place(backup) if backup else None,
        outside_eu=outside_eu,
        messages=_duration(tenant.retention.messages_days), logs=_duration(tenant.retention.logs_days),
        backup_history=_backup_history(tenant.backup.keep_daily, tenant.backup.keep_weekly,
                                       tenant.backup.keep_monthly),
        encrypted_backups=tenant.backup.encryption != "none",
        dns=commune_dns(plan, tenant),
        today=(today or date.today()).strftime("%d/%m/%Y"),
    )
