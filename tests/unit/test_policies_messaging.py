"""Messaging rules: registration, federation allow-list, admin API, URL previews."""

from __future__ import annotations

from policies import messaging
from relais.plan import Plan
from relais.planner import DEFAULT_PREVIEW_BLACKLIST

from .test_policies_engine import failing, run, shipped_plan, with_tenant

__all__ = ["shipped_plan"]


def test_registration_closed(shipped_plan: Plan) -> None:
    assert failing(messaging.registration_closed, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "76540", messaging={"registration_open": True})
    assert set(failing(messaging.registration_closed, plan)) == {"76540"}


def test_federation_allow_list(shipped_plan: Plan) -> None:
    assert failing(messaging.federation_allow_list, shipped_plan) == {}
    placed = {t.id for t in shipped_plan.tenants if t.host and t.status in ("approved", "active", "suspended")}
    assert set(run(messaging.federation_allow_list, shipped_plan)) == placed
    plan = with_tenant(shipped_plan, "50502", server_name="saint-lo.example.com")
    assert set(failing(messaging.federation_allow_list, plan)) == {"50502"}
    empty = shipped_plan.model_copy(update={"federation": shipped_plan.federation.model_copy(
        update={"xmpp": []})})
    assert set(failing(messaging.federation_allow_list, empty)) == {"50587", "76254", "76350", "76390"}


def test_admin_api_not_exposed(shipped_plan: Plan) -> None:
    assert failing(messaging.admin_api_hidden, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "14118", messaging={"admin_api_exposed": True})
    assert set(failing(messaging.admin_api_hidden, plan)) == {"14118"}


def test_url_previews_need_an_ssrf_block_list(shipped_plan: Plan) -> None:
    assert failing(messaging.url_previews_safe, shipped_plan) == {}
    plan = with_tenant(shipped_plan, "14118", messaging={"url_previews": True})
    assert set(failing(messaging.url_previews_safe, plan)) == {"14118"}
    partial = with_tenant(shipped_plan, "14118", messaging={
        "url_previews": True, "url_preview_ip_blacklist": ["10.0.0.0/8", "127.0.0.0/8"]})
    [outcome] = failing(messaging.url_previews_safe, partial).values()
    assert "169.254.0.0/16" in outcome.evidence["missing"]
    safe = with_tenant(shipped_plan, "14118", messaging={
        "url_previews": True, "url_preview_ip_blacklist": list(DEFAULT_PREVIEW_BLACKLIST)})
    assert failing(messaging.url_previews_safe, safe) == {}
    # A wider block (all of IPv4 private space in one /1, say) covers the required ranges too.
    wide = with_tenant(shipped_plan, "14118", messaging={
        "url_previews": True, "url_preview_ip_blacklist": ["0.0.0.0/0", "::/0"]})
    assert failing(messaging.url_previews_safe, wide) == {}
