"""Prosody's configuration and the agents' accounts, rendered from a Plan (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relais.cli.context import State, load_plan
from relais.plan import Plan, PlannedTenant
from relais.xmpp import XmppError
from relais.xmpp.accounts import (
    AccountChanges,
    account_changes,
    account_hash,
    marker_path,
    parse_markers,
    shell_input,
)
from relais.xmpp.config import (
    FEDERATION_CONFIG,
    GC_SPEED,
    GC_THRESHOLD,
    LOCAL_MODULES,
    LOCAL_MODULES_DIR,
    MUC_MODULES,
    OPEN_FILES_LIMIT,
    SERVER_MODULES,
    SHARED_MODULE,
    TENANTS_DIR,
    UNIT_DROPIN,
    VHOST_MODULES,
    federation_allowed,
    host_settings,
    lua_string,
    render_federation,
    render_main,
    render_tenant,
    render_unit_dropin,
    retention_period,
    tenant_file,
    xmpp_tenants,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory"
TEMPLATES = Path(__file__).resolve().parents[2] / "deploys" / "xmpp" / "templates"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(State(inventory=EXAMPLE))


def _xmpp(plan: Plan) -> PlannedTenant:
    return next(t for t in plan.tenants if t.flavor == "xmpp" and t.host and t.status == "active")


def test_lua_strings_are_quoted() -> None:
    assert lua_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert lua_string("Saint-Lô") == '"Saint-Lô"'


def test_retention_in_days() -> None:
    assert retention_period(365) == "365d"
    assert retention_period(0) == "never"


def test_main_config_is_hardened(plan: Plan) -> None:
    service = plan.xmpp_services[0]
    main = render_main(host_settings(plan, plan.host(service.host)))
    for line in ("allow_registration = false", "c2s_require_encryption = true",
                 "s2s_require_encryption = true", "s2s_secure_auth = true",
                 'authentication = "internal_hashed"'):
        assert line in main
    assert '"register";' in main.split("modules_disabled")[1]  # never loaded
    assert f'Include "{FEDERATION_CONFIG}"' in main and f'Include "{TENANTS_DIR}/*.cfg.lua"' in main
    assert main.index("Include") > main.index("modules_enabled")
    for module in (*SERVER_MODULES, *VHOST_MODULES):
        assert f'"{module}";' in main
    assert "limits = {" in main and "c2s_stanza_size_limit" in main


def test_module_code_and_tls_contexts_shared_by_the_communes(plan: Plan) -> None:
    """Density (docs/xmpp.md): mod_relais_shared is a server-wide module loaded before the others,
    so that the communes' hosts load their modules through it."""
    main = render_main(host_settings(plan, plan.host(plan.xmpp_services[0].host)))
    enabled = main.split("modules_enabled = {")[1].split("}")[0].split('"')[1::2]
    assert enabled[0] == SHARED_MODULE and SHARED_MODULE in SERVER_MODULES
    assert SHARED_MODULE in LOCAL_MODULES and f'plugin_paths = {{ "{LOCAL_MODULES_DIR}" }}' in main
    for name in LOCAL_MODULES:  # the deploy installs each of them from deploys/xmpp/templates
        assert (TEMPLATES / f"mod_{name}.lua").is_file()
    shared = (TEMPLATES / f"mod_{SHARED_MODULE}.lua").read_text()
    assert "module:set_global()" in shared and '"^0%.12%."' in shared  # only on the loader it knows
    assert SHARED_MODULE not in render_tenant(_xmpp(plan))  # never per commune


def test_shared_module_keeps_memory_flat_across_reloads() -> None:
    """Density after a reload (docs/xmpp.md): mod_tls asks for every host's contexts again on each
    reload, so the shared contexts must be found by the certificate's content (a `chown -R` of the
    certificates made all of them again: +17 MiB at 300 communes), and a full collection must run
    before the reload and after every other config-reloaded handler (the first reload otherwise
    left ~18 % of PSS)."""
    shared = (TEMPLATES / f"mod_{SHARED_MODULE}.lua").read_text()
    identity = shared.split("local function file_identity", 1)[1].split("\nend\n", 1)[0]
    assert "sha256(content)" in identity and 'return path .. "@" .. known.digest;' in identity
    hook = shared.split('module:hook_global("config-reloaded"', 1)[1].split("\nend, ", 1)
    priority = int(hook[1].split(")", 1)[0])
    assert 'collect("after the reload")' in hook[0] and "module:add_timer(" in hook[0]
    assert priority < 0  # after mod_tls (0) and Prosody's own handlers (0)
    before = shared.split('module:hook_global("reloading-config"', 1)[1].split("\nend, ", 1)[0]
    assert 'collect("before the reload")' in before  # the reload's allocations reuse freed space
    collect = shared.split("local function collect", 1)[1].split("\nend\n", 1)[0]
    assert collect.count('collectgarbage("collect")') == 2  # finalized objects go on the second pass


def test_garbage_collector_setting(plan: Plan) -> None:
    main = render_main(host_settings(plan, plan.host(plan.xmpp_services[0].host)))
    gc = [line for line in main.split("\n") if line.startswith("gc = ")]
    assert gc == [f'gc = {{ mode = "incremental"; threshold = {GC_THRESHOLD}; speed = {GC_SPEED}; }}']
    # Far below Lua's default pause (200, the heap doubles between cycles); 100 would never let
    # the collector rest (measured: 380 s of start-up CPU for 100 communes).
    assert 100 < GC_THRESHOLD <= 120 and GC_SPEED >= 400


def test_service_may_open_every_communes_file() -> None:
    """Prosody 0.12 keeps each included file open until a garbage collection: a reload with
    1,000 communes failed with systemd's default soft limit of 1024 descriptors."""
    assert UNIT_DROPIN.startswith("/etc/systemd/system/prosody.service.d/")
    dropin = render_unit_dropin()
    assert "[Service]" in dropin and f"LimitNOFILE={OPEN_FILES_LIMIT}" in dropin
    assert OPEN_FILES_LIMIT >= 4 * 2000  # the density target (2,000 communes) with room for sessions


def test_metrics_bound_to_loopback_and_private_address_for_the_monitor(plan: Plan) -> None:
    service = plan.xmpp_services[0]
    host = plan.host(service.host)
    main = render_main(host_settings(plan, host))
    interfaces = main.split("http_interfaces = ")[1].split("}")[0]
    assert '"127.0.0.1"' in interfaces and f'"{host.address}"' in interfaces
    monitors = [h.address for h in plan.hosts if "monitor" in h.roles]
    allowed = main.split("openmetrics_allow_ips = ")[1].split("}")[0]
    assert all(f'"{m}"' in allowed for m in monitors)
    assert f"http_ports = {{ {service.metrics_port} }}" in main


def test_federation_limited_to_the_syndicate_by_default(plan: Plan) -> None:
    tenants = xmpp_tenants(plan, plan.host(plan.xmpp_services[0].host))
    allowed = federation_allowed(plan, tenants)
    assert set(plan.federation.xmpp) <= set(allowed)
    assert {f"conference.{d}" for d in plan.federation.xmpp} <= set(allowed)
    widened = plan.model_copy(update={"federation": plan.federation.model_copy(
        update={"allow": ["partenaire.example"]})})
    assert "partenaire.example" in federation_allowed(widened, tenants)
    text = render_federation(host_settings(widened, widened.host(plan.xmpp_services[0].host)))
    assert re.search(r'relais_federation_allow = \{[^}]*"partenaire.example"', text)


def test_one_file_per_commune_with_vhost_and_muc(plan: Plan) -> None:
    tenant = _xmpp(plan)
    text = render_tenant(tenant)
    assert tenant_file(tenant) == f"{TENANTS_DIR}/{tenant.id}.cfg.lua"
    assert f'VirtualHost "{tenant.domain}"' in text
    assert f'Component "conference.{tenant.domain}" "muc"' in text
    assert f'archive_expires_after = "{tenant.retention.messages_days}d"' in text
    assert f'muc_log_expires_after = "{tenant.retention.messages_days}d"' in text
    assert f"/etc/relais/tls/{tenant.domain}/fullchain.pem" in text
    assert "enabled = true" in text and "enabled = false" not in text
    for module in MUC_MODULES:
        assert f'"{module}";' in text


def test_suspended_commune_keeps_its_file_disabled(plan: Plan) -> None:
    tenant = _xmpp(plan).model_copy(update={"status": "suspended"})
    text = render_tenant(tenant)
    assert text.count("enabled = false") == 2 and "enabled = true" not in text


def test_offboarded_communes_are_not_served(plan: Plan) -> None:
    host = plan.host(plan.xmpp_services[0].host)
    first = _xmpp(plan)
    gone = plan.model_copy(update={"tenants": [t.model_copy(update={"status": "offboarded"})
                                               if t.id == first.id else t for t in plan.tenants]})
    assert first.id not in {t.id for t in xmpp_tenants(gone, host)}


def test_host_without_xmpp_service_is_an_error(plan: Plan) -> None:
    other = next(h for h in plan.hosts if not any(s.host == h.name for s in plan.xmpp_services))
    with pytest.raises(XmppError):
        host_settings(plan, other)


# --------------------------------------------------------------------------- accounts


def test_markers_parse_and_changes() -> None:
    h1, h2 = account_hash("a@x.fr", "pw1"), account_hash("b@x.fr", "pw2")
    lines = [f"{marker_path('a@x.fr')}:{h1}", f"{marker_path('c@x.fr')}:{h2}",
             f"{marker_path('d@x.fr', disabled=True)}:{h2}", "garbage"]
    active, disabled = parse_markers(lines)
    assert active == {"a@x.fr": h1, "c@x.fr": h2} and disabled == {"d@x.fr"}
    wanted = {"a@x.fr": h1, "b@x.fr": h2}
    assert account_changes(wanted, active, {"x.fr"}) == AccountChanges(["b@x.fr"], ["c@x.fr"])
    # Nothing to do when markers match: a second deploy changes nothing.
    assert not account_changes(wanted, wanted, {"x.fr"})
    # A changed secret re-keys the account.
    assert account_changes({"a@x.fr": account_hash("a@x.fr", "new")}, active, {"x.fr"}).set_password == [
        "a@x.fr"]
    # Accounts of a commune not served now (suspended) are left alone.
    assert account_changes({}, active, set()) == AccountChanges([], [])


def test_marker_never_holds_the_password() -> None:
    digest = account_hash("a@x.fr", "Secr3tPassw0rd")
    assert "Secr3tPassw0rd" not in digest and len(digest) == 64
    assert digest != account_hash("b@x.fr", "Secr3tPassw0rd")


def test_shell_input_creates_then_sets_and_disables() -> None:
    text = shell_input({"a@x.fr": 'p"w'}, {"c@x.fr": "random"})
    assert text.splitlines() == [
        'user:create("a@x.fr", "p\\"w")',
        'user:password("a@x.fr", "p\\"w")',
        'user:password("c@x.fr", "random")',
        'c2s:close("c@x.fr")',
    ]
