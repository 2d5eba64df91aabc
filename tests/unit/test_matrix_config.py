"""Matrix homeservers from the Plan: which ones, and their Synapse, systemd and nginx files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from relais.matrix.config import (
    LAB_CA_FILE,
    HomeserverSecrets,
    homeserver_config,
    render_site,
    render_tls_snippet,
    render_unit,
)
from relais.matrix.homeservers import (
    Homeserver,
    admin_password,
    federation_allow_list,
    homeserver_of,
    homeservers,
    homeservers_on,
    private_federation_addresses,
    trusted_key_servers,
)
from relais.plan import Plan
from relais.planner import plan_directory
from relais.referential import Referential

SECRETS = HomeserverSecrets("db-secret", "macaroon-secret", "form-secret")


@pytest.fixture
def plan(inventory_dir: Path, ref: Referential) -> Plan:
    return plan_directory(inventory_dir, referential=ref).plan


def by_id(plan: Plan, hs_id: str) -> Homeserver:
    return next(hs for hs in homeservers(plan) if hs.id == hs_id)


def test_one_homeserver_per_dedicated_tenant_and_one_shared(plan: Plan) -> None:
    ids = [hs.id for hs in homeservers(plan)]
    dedicated = sorted(t.id for t in plan.tenants if t.flavor == "matrix-dedicated" and t.status == "active")
    assert ids == [*dedicated, "shared"]
    shared = by_id(plan, "shared")
    assert plan.shared_homeserver is not None and shared.host == plan.shared_homeserver.host
    # Only active or suspended communes are provisioned: an approved one is not yet.
    statuses = {t.status for t in shared.communes}
    assert statuses <= {"active", "suspended"}
    approved = [t for t in plan.tenants if t.flavor == "matrix-shared" and t.status == "approved"]
    assert approved and all(homeserver_of(plan, t) is None for t in approved)
    for hs in homeservers(plan):
        assert hs in homeservers_on(plan, hs.host)


def test_configuration_is_hardened(plan: Plan) -> None:
    hs = by_id(plan, "14118")
    config = homeserver_config(plan, hs, SECRETS, lab=True, metrics_address="10.77.0.11")
    assert config["server_name"] == "caen.fr"
    assert config["enable_registration"] is False and config["allow_guest_access"] is False
    assert "registration_shared_secret" not in config and "registration_shared_secret_path" not in config
    assert config["report_stats"] is False and config["url_preview_enabled"] is False
    assert config["presence"] == {"enabled": False}
    assert config["federation_client_minimum_tls_version"] == "1.2"
    assert config["federation_domain_whitelist"] == sorted(plan.federation.matrix)
    assert [k["server_name"] for k in config["trusted_key_servers"]] == sorted(
        set(plan.federation.matrix) - {"caen.fr"})
    assert config["retention"]["enabled"] is True
    days = hs.retention_days
    assert config["retention"]["default_policy"]["max_lifetime"] == f"{days}d" and days == 1095
    assert config["federation_custom_ca_list"] == [LAB_CA_FILE]
    client, metrics = config["listeners"]
    assert client["bind_addresses"] == ["127.0.0.1"] and client["port"] == hs.port
    assert metrics["bind_addresses"] == ["10.77.0.11"] and metrics["type"] == "metrics"
    assert config["database"]["args"]["password"] == "db-secret"
    assert config["caches"]["global_factor"] < 1


def test_production_trusts_the_system_store(plan: Plan) -> None:
    config = homeserver_config(plan, by_id(plan, "14118"), SECRETS, lab=False, metrics_address=None)
    assert "federation_custom_ca_list" not in config
    assert [listener["type"] for listener in config["listeners"]] == ["http"]


def test_federation_lists(plan: Plan) -> None:
    hs = by_id(plan, "14118")
    assert set(federation_allow_list(plan, hs)) == set(plan.federation.matrix)
    assert "caen.fr" not in trusted_key_servers(plan, hs)
    assert "matrix.org" not in trusted_key_servers(plan, hs)
    # Only the private addresses of the syndicate's own homeservers are exempt from the SSRF block.
    assert private_federation_addresses(plan) == ["10.77.0.11", "10.77.0.12"]


def test_federation_extra_widens_only_that_tenant(plan: Plan) -> None:
    hs = by_id(plan, "14118")
    widened = Homeserver(**{**hs.__dict__, "federation_extra": ("partenaire.example",)})
    assert "partenaire.example" in federation_allow_list(plan, widened)
    assert "partenaire.example" not in federation_allow_list(plan, by_id(plan, "76540"))


def test_unit_runs_as_the_tenant_with_its_memory_limit(plan: Plan) -> None:
    hs = by_id(plan, "14118")
    unit = render_unit(hs)
    assert f"User={hs.unix_user}" in unit and f"MemoryMax={hs.memory_limit_mib}M" in unit
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", f"ReadWritePaths={hs.data_dir}"):
        assert option in unit
    assert f"--config-path={hs.config_dir}/conf.d/" in unit


def test_site_closes_admin_api_and_delegates(plan: Plan) -> None:
    hs = by_id(plan, "14118")
    site = render_site(hs, "127.0.0.1:8100")
    assert "location ^~ /_synapse/admin { return 404; }" in site
    assert "listen 8448 ssl" in site and "listen 443 ssl" in site
    assert '{"m.server": "caen.fr:443"}' in site
    assert "ssl_certificate /etc/relais/tls/caen.fr/fullchain.pem;" in site
    snippet = render_tls_snippet()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in snippet
    assert "CBC" not in snippet and "SHA:" not in snippet.split("ssl_ciphers")[1].split(";")[0] + ":"


def test_rendered_yaml_round_trips(plan: Plan) -> None:
    from relais.matrix.config import render_homeserver

    text = render_homeserver(plan, by_id(plan, "shared"), SECRETS, lab=True, metrics_address="10.77.0.12")
    assert yaml.safe_load(text)["server_name"] == "matrix.messagerie.normandie.example"


def test_admin_password_is_derived_and_stable() -> None:
    assert admin_password("a") == admin_password("a") != admin_password("b")
    assert len(admin_password("a")) == 64
