"""The onboarding sheet: French, printable, from the Plan, and never a secret."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relais.cli.context import State
from relais.onboarding import OnboardingError, find_tenant, render_onboarding
from relais.plan import Plan
from relais.planner import plan_directory
from relais.referential import Referential


@pytest.fixture
def plan(inventory_dir: Path, ref: Referential) -> Plan:
    return plan_directory(inventory_dir, referential=ref).plan


def sheet(plan: Plan, query: str) -> str:
    return render_onboarding(plan, find_tenant(plan, query), today=date(2026, 3, 2))


def test_dedicated_tenant_with_its_own_domain(plan: Plan) -> None:
    html = sheet(plan, "14118")
    caen = plan.tenant("14118")
    assert '<html lang="fr">' in html and "Votre messagerie est prête : Caen" in html
    assert "Serveur de messagerie Matrix dédié à votre commune" in html
    for agent in caen.agents:
        assert agent.address in html and agent.login in html
    assert "@camille.martin:caen.fr" in html
    assert "Element" in html and plan.syndicate.web_client in html
    assert "app.element.io" not in html  # the syndicate's own client, no foreign service
    # DNS records the commune creates, from the Plan.
    records = [r for r in plan.dns if r.managed_by == "commune" and r.name == "caen.fr"]
    assert records and all(f"<code>{r.value}</code>" in html for r in records)
    assert "conservés 3 ans" in html and "conservés 1 an" in html
    host = plan.host(caen.host or "")
    assert f"à {host.city} (France)" in html
    assert "registre des activités de traitement" in html and caen.dpo_email in html
    assert plan.syndicate.contact in html
    assert "@page" in html and "@media print" in html
    assert "fiche remise le 02/03/2026" in html


def test_no_secret_ever_on_the_sheet(plan: Plan) -> None:
    for tenant in plan.tenants:
        if tenant.host is None or tenant.status not in ("approved", "active", "suspended"):
            continue
        html = render_onboarding(plan, tenant)
        assert "tenants/" not in html                       # no secret reference
        for ref in tenant.secrets + [a.password for a in tenant.agents]:
            assert ref.ref not in html
        assert "Les mots de passe initiaux ne figurent pas sur cette fiche" in html
        assert not re.search(r"mot de passe\s*:", html, re.I)


def test_xmpp_tenant_lists_xmpp_apps_and_srv_records(plan: Plan) -> None:
    html = sheet(plan, "76390")
    assert "Messagerie XMPP de votre commune" in html
    for app in ("Conversations", "Monal", "Gajim"):
        assert app in html
    assert "Element" not in html and "Il n'y a pas de client web pour XMPP" in html
    assert "_xmpp-client._tcp.xmpp.lesloges.fr" in html and "SRV" in html
    assert "anne.lefrancois@xmpp.lesloges.fr" in html


def test_shared_tenant_has_no_dns_to_create(plan: Plan) -> None:
    html = sheet(plan, "Bayeux")
    assert "serveur Matrix partagé du syndicat" in html
    assert "enregistrements DNS à créer" not in html
    assert plan.shared_homeserver is not None and plan.shared_homeserver.server_name in html


def test_requested_tenant_has_no_sheet_yet(plan: Plan) -> None:
    with pytest.raises(OnboardingError, match="only requested: approve it first"):
        render_onboarding(plan, find_tenant(plan, "61169"))
    with pytest.raises(OnboardingError, match="no tenant for 'Paris'"):
        find_tenant(plan, "Paris")


def test_command_writes_the_sheet(inventory_dir: Path, tmp_path: Path, ref: Referential) -> None:
    import typer

    from relais.cli import onboarding

    app = typer.Typer()
    app.command()(onboarding.command)
    out = tmp_path / "fiche.html"
    result = CliRunner().invoke(app, ["saint-lo", "-o", str(out)], obj=State(inventory_dir))
    assert result.exit_code == 0, result.output
    assert "Votre messagerie est prête : Saint-Lô" in out.read_text()
