"""Certificate checks of the probes: expiry arithmetic on real certificates (made with
`cryptography`), and real TLS handshakes — plain and after XMPP STARTTLS — against a server
thread on the other end of a socket pair (no network)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relais.plan import Plan
from relais.planner import plan_directory
from relais.probes import Check, ProbeContext
from relais.probes import xmpp as xmpp_probe
from relais.probes.matrix import registration_refused
from relais.probes.tls import PeerCertificate, expiry_check, tls_checks
from relais.referential import Referential

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TODAY = datetime.now(UTC).replace(microsecond=0)
"""Handshakes verify validity against the machine's clock: their certificates are made
around it (and the same instant is passed to the expiry check); no test measures time."""


@dataclass
class Pki:
    ca_pem: bytes
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, name: str = "Syndicat (test) CA") -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(min(NOW, TODAY) - timedelta(days=400))
                .not_valid_after(max(NOW, TODAY) + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert.public_bytes(serialization.Encoding.PEM), cert, key)

    def leaf(self, name: str, not_before: datetime, not_after: datetime) -> tuple[bytes, bytes]:
        """(certificate chain PEM, key PEM) for `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem, key_pem


def der_of(chain_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(chain_pem).public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------- expiry


@pytest.mark.parametrize(("days_left", "ok", "words"), [
    (90, True, "valid until 2026-08-30"),
    (22, True, "(22 days)"),
    (20, False, "in 20 day(s) (< 21)"),
    (1, False, "in 1 day(s)"),
    (-3, False, "expired on 2026-05-29"),
])
def test_expiry_margin_is_21_days(days_left: int, ok: bool, words: str) -> None:
    chain, _ = Pki.make().leaf("chat.bayeux.fr", NOW - timedelta(days=60), NOW + timedelta(days=days_left))
    cert = PeerCertificate.from_der(der_of(chain))
    check = expiry_check(cert, NOW)
    assert (check.ok, check.aspect) == (ok, "expiry")
    assert words in check.detail and "chat.bayeux.fr" in check.detail


def test_a_certificate_not_yet_valid_fails() -> None:
    chain, _ = Pki.make().leaf("chat.bayeux.fr", NOW + timedelta(days=2), NOW + timedelta(days=90))
    check = expiry_check(PeerCertificate.from_der(der_of(chain)), NOW)
    assert not check.ok and "not valid before" in check.detail


def test_peer_certificate_names_subject_and_issuer() -> None:
    chain, _ = Pki.make("Relais CA").leaf("matrix.example.fr", NOW, NOW + timedelta(days=90))
    cert = PeerCertificate.from_der(der_of(chain))
    assert (cert.subject, cert.issuer) == ("matrix.example.fr", "Relais CA")
    assert cert.not_after == NOW + timedelta(days=90) and len(cert.sha256) == 64


# --------------------------------------------------------------------------- handshakes


def server_context(chain: bytes, key: bytes, tmp_path: Path) -> ssl.SSLContext:
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    return context


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_pem.decode())
    return context


@contextmanager
def serving(handler: Callable[[socket.socket], None]) -> Iterator[Callable[[], socket.socket]]:
    """`connect()` gives a client socket whose peer runs `handler` in a thread, once per call."""
    threads: list[threading.Thread] = []

    def connect() -> socket.socket:
        client, server = socket.socketpair()
        client.settimeout(10)
        server.settimeout(10)

        def run() -> None:
            try:
                handler(server)
            except (OSError, ssl.SSLError):
                pass  # the client gave up (a failed verification): nothing more to serve
            finally:
                server.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return client

    yield connect
    for thread in threads:
        thread.join(10)


def tls_server(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handler(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.recv(1)

    return handler


def test_a_trusted_certificate_passes_both_checks(tmp_path: Path) -> None:
    pki = Pki.make()
    chain, key = pki.leaf("matrix.caen.fr", TODAY - timedelta(days=1), TODAY + timedelta(days=89))
    with serving(tls_server(server_context(chain, key, tmp_path))) as connect:
        checks = tls_checks(connect, "matrix.caen.fr", client_context(pki.ca_pem), now=TODAY)
    assert [(c.aspect, c.ok) for c in checks] == [("tls", True), ("expiry", True)], checks


def test_another_ca_fails_verification_and_the_expiry_is_still_read(tmp_path: Path) -> None:
    rogue = Pki.make("Rogue CA")
    chain, key = rogue.leaf("matrix.caen.fr", TODAY - timedelta(days=1), TODAY + timedelta(days=5))
    with serving(tls_server(server_context(chain, key, tmp_path))) as connect:
        checks = tls_checks(connect, "matrix.caen.fr", client_context(Pki.make().ca_pem), now=TODAY)
    tls, expiry = checks
    assert not tls.ok and "not trusted for matrix.caen.fr" in tls.detail
    assert not expiry.ok and "in 5 day(s)" in expiry.detail


def test_a_certificate_for_another_name_fails(tmp_path: Path) -> None:
    pki = Pki.make()
    chain, key = pki.leaf("matrix.rouen.fr", TODAY - timedelta(days=1), TODAY + timedelta(days=89))
    with serving(tls_server(server_context(chain, key, tmp_path))) as connect:
        [tls, expiry] = tls_checks(connect, "matrix.caen.fr", client_context(pki.ca_pem), now=TODAY)
    assert not tls.ok and "matrix.caen.fr" in tls.detail and expiry.ok


def test_an_endpoint_that_does_not_answer_is_a_service_failure() -> None:
    def refused() -> socket.socket:
        raise ConnectionRefusedError(111, "Connection refused")

    [check] = tls_checks(refused, "matrix.caen.fr", ssl.create_default_context(), now=TODAY)
    assert (check.aspect, check.ok) == ("service", False) and "refused" in check.detail


# --------------------------------------------------------------------------- XMPP STARTTLS


def fake_prosody(context: ssl.SSLContext, *, register: bool) -> Callable[[socket.socket], None]:
    """Enough of an XMPP server: features with STARTTLS, <proceed/>, TLS, then features again
    (with in-band registration when `register`)."""
    def read_until(sock: socket.socket | ssl.SSLSocket, marker: bytes) -> bytes:
        data = b""
        while marker not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    def handler(sock: socket.socket) -> None:
        header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' id='1' version='1.0'>")
        read_until(sock, b">")
        sock.sendall((header + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                      "<required/></starttls></stream:features>").encode())
        read_until(sock, b"starttls")
        sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        with context.wrap_socket(sock, server_side=True) as tls:
            read_until(tls, b"version='1.0'")
            extra = "<register xmlns='http://jabber.org/features/iq-register'/>" if register else ""
            tls.sendall((header + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                         f"<mechanism>PLAIN</mechanism></mechanisms>{extra}</stream:features>").encode())
            tls.recv(1)

    return handler


@pytest.fixture
def xmpp_plan(inventory_dir: Path, ref: Referential) -> Plan:
    return plan_directory(inventory_dir, referential=ref).plan


def probe_xmpp(plan: Plan, pki: Pki, handler: Callable[[socket.socket], None],
               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Check]:
    tenant = next(t for t in plan.tenants if t.flavor == "xmpp" and t.status == "active")
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    ctx = ProbeContext(plan, tmp_path / "ca.crt", lambda ref: "", timeout=10)
    with serving(handler) as connect:
        monkeypatch.setattr(socket, "create_connection", lambda address, timeout: connect())
        return xmpp_probe.probe(ctx, tenant, now=TODAY)


def xmpp_domain(plan: Plan) -> str:
    tenant = next(t for t in plan.tenants if t.flavor == "xmpp" and t.status == "active")
    return tenant.domain or tenant.server_name


def test_xmpp_starttls_verified_and_registration_closed(xmpp_plan: Plan, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    pki = Pki.make()
    chain, key = pki.leaf(xmpp_domain(xmpp_plan), TODAY - timedelta(days=1), TODAY + timedelta(days=60))
    checks = probe_xmpp(xmpp_plan, pki, fake_prosody(server_context(chain, key, tmp_path), register=False),
                        monkeypatch, tmp_path)
    assert all(c.ok for c in checks), checks
    assert {c.aspect for c in checks} == {"service", "tls", "expiry", "registration"}
    assert any(c.name == "federation TLS certificate" and c.ok for c in checks)


def test_xmpp_registration_offered_and_certificate_expiring(xmpp_plan: Plan, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    pki = Pki.make()
    chain, key = pki.leaf(xmpp_domain(xmpp_plan), TODAY - timedelta(days=80), TODAY + timedelta(days=10))
    checks = probe_xmpp(xmpp_plan, pki, fake_prosody(server_context(chain, key, tmp_path), register=True),
                        monkeypatch, tmp_path)
    failed = {c.aspect: c for c in checks if not c.ok}
    assert set(failed) == {"registration", "expiry"}, checks
    assert failed["registration"].detail == "in-band registration offered"


def test_xmpp_certificate_of_an_unknown_ca_fails_tls_but_the_probe_goes_on(
    xmpp_plan: Plan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chain, key = Pki.make("Rogue CA").leaf(xmpp_domain(xmpp_plan), TODAY - timedelta(days=1),
                                          TODAY + timedelta(days=60))
    checks = probe_xmpp(xmpp_plan, Pki.make(), fake_prosody(server_context(chain, key, tmp_path), register=False),
                        monkeypatch, tmp_path)
    failed = [c for c in checks if not c.ok]
    assert {c.aspect for c in failed} == {"tls"} and len(failed) == 2  # client and federation ports
    assert any(c.aspect == "registration" and c.ok for c in checks)  # read over the unverified session


def test_xmpp_without_starttls_is_a_service_failure(xmpp_plan: Plan, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    def plain(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                     b"<stream:features/>")

    checks = probe_xmpp(xmpp_plan, Pki.make(), plain, monkeypatch, tmp_path)
    assert [(c.name, c.ok, c.detail) for c in checks] == [
        ("client port 5222", False, "no STARTTLS offered"),
        ("federation port 5269", False, "no STARTTLS offered"),
    ]


# --------------------------------------------------------------------------- Matrix registration


@pytest.mark.parametrize(("status", "body", "closed"), [
    (403, {"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"}, True),
    (404, "<html>not found</html>", True),
    (401, {"session": "x", "flows": [{"stages": ["m.login.dummy"]}]}, False),
    (401, {"session": "x", "flows": [{"stages": ["m.login.registration_token"]}]}, False),
    (200, {"user_id": "@x:caen.fr"}, False),
])
def test_matrix_registration_refused(status: int, body: object, closed: bool) -> None:
    ok, detail = registration_refused(status, body)
    assert ok is closed and f"HTTP {status}" in detail


def test_the_federation_probe_never_announces_a_domain_of_the_same_host(xmpp_plan: Plan) -> None:
    xmpp_tenants = [t for t in xmpp_plan.tenants if t.flavor == "xmpp" and t.status == "active"]
    first = xmpp_tenants[0]
    # the same region with every xmpp commune on the first one's host
    others = [t.model_copy(update={"host": first.host}) for t in xmpp_tenants[1:]]
    xmpp_plan = xmpp_plan.model_copy(update={"tenants": [first, *others]})
    assert xmpp_probe.federating_peer(xmpp_plan, first) is None  # all on one host: no sender named
    moved = others[0].model_copy(update={"host": "msg-rouen-1"})
    plan = xmpp_plan.model_copy(update={"tenants": [moved if t.id == moved.id else t for t in xmpp_plan.tenants]})
    assert xmpp_probe.federating_peer(plan, first) == (moved.domain or moved.server_name)
    assert xmpp_probe.federating_peer(plan, moved) in {t.domain or t.server_name for t in [first, *others[1:]]}
