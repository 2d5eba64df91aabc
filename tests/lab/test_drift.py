"""`relais drift` on real lab hosts, through its console script: clean after a deploy; a config
file edited by hand, a service stopped, a firewall rule added, a tenant's service stopped or
its certificate replaced by one about to expire each make it exit 2 and name the host and
what drifted; `relais deploy` puts things back and drift exits 0 again.

Firewall and services are the hardening's and Prosody's: whatever RELAIS_DEPLOY_STEPS says,
this module converges (and compares) the concerns it tampers with on top of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from deploys import ALL, ORDER
from relais.audit import baseline
from relais.cli.context import default_inventory
from relais.lab import Lab
from relais.pki import Pki
from relais.plan import Plan, PlannedTenant
from relais.secrets import SecretStore

pytestmark = pytest.mark.lab

RELAIS = str(Path(sys.executable).with_name("relais"))
STEPS = tuple(c for c in ALL if c in {*ORDER, "base", "harden", "tls", "xmpp"})
ENV = {**os.environ, "RELAIS_DEPLOY_STEPS": ",".join(STEPS)}


def relais(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELAIS, *args], env=ENV, capture_output=True, text=True, timeout=3600, check=False)


def drift(*args: str) -> tuple[int, dict[str, Any]]:
    result = relais("drift", "--format", "json", *args)
    assert result.returncode in (0, 2), result.stdout[-3000:] + result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


def failed(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["rule"], f["subject"]): f for f in report["findings"]
            if f["status"] == "failed" and f["severity"] != "info"}


def converge(*args: str) -> None:
    result = relais("deploy", *args)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def converged(lab: Lab) -> Lab:
    """The lab deployed with STEPS (the lab tests' own deploy runs only RELAIS_DEPLOY_STEPS)."""
    converge()
    return lab


def xmpp_tenant(plan: Plan) -> PlannedTenant:
    return next(t for t in plan.tenants if t.flavor == "xmpp" and t.status == "active" and t.host)


def test_drift_is_clean_after_a_deploy(converged: Lab, plan: Plan) -> None:
    code, report = drift()
    assert code == 0, failed(report)
    assert report["ok"] is True
    compared = {f["subject"] for f in report["findings"] if f["rule"] == "DRIFT-01" and f["status"] == "passed"}
    assert compared == {f"host:{h.name}" for h in plan.hosts}
    tenant = xmpp_tenant(plan)
    probed = {f["rule"] for f in report["findings"]
              if f["subject"] == f"tenant:{tenant.id}" and f["status"] == "passed"}
    assert probed == {"DRIFT-04", "DRIFT-05", "DRIFT-06", "DRIFT-07"}


HOST = "msg-caen-1"
TAMPERS = {
    "config file edited by hand": (
        "sed -i 's/^MaxRetentionSec=.*/MaxRetentionSec=1day/' /etc/systemd/journald.conf.d/relais.conf",
        "Keep the journal as long as the logs retention",
        "grep -q '^MaxRetentionSec=1day' /etc/systemd/journald.conf.d/relais.conf",
    ),
    "service stopped": (
        "systemctl stop fail2ban.service",
        "fail2ban running",
        "! systemctl is-active -q fail2ban.service",
    ),
    "firewall rule added": (
        f"nft add rule inet {baseline.NFT_TABLE} input tcp dport 4444 accept",
        "load the firewall (live rules differ from the Plan)",
        f"nft list table inet {baseline.NFT_TABLE} | grep -q 'dport 4444 accept'",
    ),
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_tampering_on_a_host_is_drift_until_the_next_deploy(converged: Lab, what: str) -> None:
    tamper, operation, still_tampered = TAMPERS[what]
    assert converged.exec(HOST, ["sh", "-c", tamper]).returncode == 0

    code, report = drift("--limit", HOST, "--no-probes")
    assert code == 2 and report["ok"] is False
    finding = failed(report)[("DRIFT-01", f"host:{HOST}")]
    assert any(operation in name for name in finding["evidence"]["operations"]), finding
    assert operation in finding["message"]
    assert converged.exec(HOST, ["sh", "-c", still_tampered]).returncode == 0  # dry: nothing touched

    converge("--limit", HOST)
    assert converged.exec(HOST, ["sh", "-c", still_tampered]).returncode != 0
    code, report = drift("--limit", HOST, "--no-probes")
    assert code == 0, failed(report)


def test_a_stopped_tenant_service_is_found_by_the_probe(converged: Lab, plan: Plan) -> None:
    tenant = xmpp_tenant(plan)
    host = tenant.host or ""
    assert converged.exec(host, ["systemctl", "stop", "prosody"]).returncode == 0

    code, report = drift("--limit", host, "--no-deploy")
    assert code == 2
    down = failed(report)[("DRIFT-06", f"tenant:{tenant.id}")]
    assert f"on {host}" in down["message"] and "port 5222" in down["message"], down
    code, report = drift("--limit", host)  # the dry-run deploy sees it as well
    assert code == 2 and any("Prosody runs" in name for name in
                             failed(report)[("DRIFT-01", f"host:{host}")]["evidence"]["operations"])

    converge("--limit", host)
    code, report = drift("--limit", host, "--no-deploy")
    assert code == 0, failed(report)


def expiring_certificate(tenant: PlannedTenant, plan: Plan, days: int) -> str:
    """A certificate of the syndicate's CA for the tenant's domain, with its own key, that
    expires in `days` days: what a renewal that never reached the service leaves behind."""
    inventory = default_inventory()
    store = SecretStore.open(inventory)
    ca_cert, ca_key = Pki(inventory, store, plan.syndicate.name).ca()
    domain = tenant.domain or tenant.server_name
    key = serialization.load_pem_private_key(store.get(f"pki/{domain}/key").encode(), None)
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=80)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    return pem.decode()


def test_a_certificate_about_to_expire_is_found_by_the_probe(converged: Lab, plan: Plan) -> None:
    tenant = xmpp_tenant(plan)
    host, domain = tenant.host or "", tenant.domain or tenant.server_name
    path = f"/etc/relais/tls/{domain}/fullchain.pem"
    replaced = converged.exec(host, ["sh", "-c", f"cat > {path} && systemctl reload prosody"],
                              input_text=expiring_certificate(tenant, plan, days=10))
    assert replaced.returncode == 0, replaced.stderr

    code, report = drift("--limit", host)
    assert code == 2
    problems = failed(report)
    expiry = problems[("DRIFT-05", f"tenant:{tenant.id}")]
    assert f"on {host}" in expiry["message"] and "day(s) (< 21)" in expiry["message"], expiry
    assert ("DRIFT-04", f"tenant:{tenant.id}") not in problems  # still trusted, just expiring
    assert any(f"Certificate of {domain}" in name for name in
               problems[("DRIFT-01", f"host:{host}")]["evidence"]["operations"])

    converge("--limit", host)  # writes the Plan's certificate back and reloads Prosody
    code, report = drift("--limit", host)
    assert code == 0, failed(report)
