"""The web client's page, settings and nginx site, the Converse.js repack, the deploy's facts (pure)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from deploys.xmpp.facts import AccountMarkers, RelaisFiles, TenantFiles
from relais.cli.context import State, load_plan
from relais.plan import Plan, PlannedTenant
from relais.xmpp import converse, web
from relais.xmpp.accounts import account_hash

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory"


@pytest.fixture(scope="module")
def tenant() -> PlannedTenant:
    plan: Plan = load_plan(State(inventory=EXAMPLE))
    return next(t for t in plan.tenants if t.flavor == "xmpp" and t.host and t.status == "active")


def test_page_has_no_inline_script(tenant: PlannedTenant) -> None:
    page = web.render_index(tenant, "14.0.0")
    assert "<script>" not in page and 'src="/relais-converse.js"' in page
    assert f"Messagerie de {tenant.commune}" in page


def test_settings_lock_the_commune_domain(tenant: PlannedTenant) -> None:
    text = web.render_settings(tenant, "14.0.0")
    settings = json.loads(text.split("converse.initialize(")[1].rsplit(");", 1)[0])
    assert settings["websocket_url"] == f"wss://{tenant.domain}/xmpp-websocket"
    assert settings["locked_domain"] == tenant.domain and settings["allow_registration"] is False
    assert settings["muc_domain"] == f"conference.{tenant.domain}"


def test_site_is_https_with_a_strict_policy(tenant: PlannedTenant) -> None:
    site = web.render_site(tenant, 5280)
    assert f"server_name {tenant.domain};" in site and "listen 443 ssl" in site
    assert f"/etc/relais/tls/{tenant.domain}/fullchain.pem" in site
    assert "proxy_pass http://127.0.0.1:5280/xmpp-websocket;" in site
    csp = web.content_security_policy(tenant.domain or "")
    assert "default-src 'none'" in csp and "script-src 'self' 'wasm-unsafe-eval'" in csp
    assert "unsafe-eval'" not in csp.replace("wasm-unsafe-eval'", "") and "frame-ancestors 'none'" in csp
    assert web.site_name(tenant) == f"relais-xmpp-{tenant.id}.conf"


def _npm_tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 12345
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_repack_keeps_what_browsers_need_and_is_reproducible() -> None:
    npm = _npm_tarball({"package/dist/converse.min.js": b"js", "package/dist/converse.min.js.map": b"map",
                        "package/dist/converse.js": b"big", "package/dist/chunks/1.js": b"c",
                        "package/src/index.js": b"src", "package/package.json": b"{}"})
    first, second = converse.repack(npm), converse.repack(npm)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert sorted(tar.getnames()) == ["dist/chunks/1.js", "dist/converse.min.js"]


def test_integrity_is_npm_format() -> None:
    assert converse.integrity_of(b"").startswith("sha512-") and converse.INTEGRITY.startswith("sha512-")


def test_facts_process() -> None:
    digest = account_hash("a@x.fr", "pw")
    assert AccountMarkers().process([f"/var/lib/relais/xmpp/accounts/a@x.fr:{digest}"]) == ({"a@x.fr": digest},
                                                                                           set())
    assert TenantFiles().process(["14118.cfg.lua", "README", ""]) == ["14118.cfg.lua"]
    assert RelaisFiles().process(["default", "relais-xmpp-1.conf", "relais-matrix-2.conf"]) == [
        "relais-xmpp-1.conf"]
