"""Probes of an xmpp tenant, registered for `relais probe` and `relais drift`.

Client port: the stream opens, STARTTLS is offered and the certificate verifies for the
tenant's domain (the syndicate's CA and the system's), it does not expire within the renewal
margin, and in-band registration is not offered once inside TLS. Server port: a stream from
one of the syndicate's domains (the federation allow-list) gets STARTTLS with a certificate
valid for the domain.

Standard library only (socket, ssl, and relais.probes.tls): a probe runs from the controller
or the monitor host without an XMPP library.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from relais.plan import Plan, PlannedTenant
from relais.probes import Check, TenantHealth, register, service_address
from relais.probes.net import ProbeContext
from relais.probes.tls import PeerCertificate, expiry_check, unverified_context

C2S_PORT = 5222
S2S_PORT = 5269
_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
_SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
_REGISTER_FEATURE = "jabber.org/features/iq-register"


class StreamError(Exception):
    """The server closed or refused the stream before TLS (said in `args[0]`)."""


class _Stream:
    def __init__(self, address: str, port: int, timeout: float) -> None:
        self.sock: socket.socket = socket.create_connection((address, port), timeout=timeout)
        self.buffer = ""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read_until(self, pattern: str) -> str:
        while not re.search(pattern, self.buffer, re.S):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk.decode(errors="replace")
        return self.buffer

    def features(self) -> str:
        text = self.read_until(r"</stream:features>|</stream:stream>|<stream:error")
        self.buffer = ""
        return text

    def starttls(self, server_name: str, context: ssl.SSLContext) -> tuple[bytes, str]:
        self.send(f"<starttls xmlns='{_TLS_NS}'/>")
        if "<proceed" not in self.read_until(r"<proceed|<failure|</stream:stream>"):
            raise StreamError("the server refused STARTTLS")
        self.sock = context.wrap_socket(self.sock, server_hostname=server_name)
        self.buffer = ""
        return self.sock.getpeercert(binary_form=True) or b"", self.sock.version() or "?"


def _open(namespace: str, to: str, from_: str | None = None) -> str:
    sender = f" from='{from_}'" if from_ else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{namespace}'{sender} to='{to}' version='1.0' "
            "xmlns:stream='http://etherx.jabber.org/streams'>")


@dataclass
class _Negotiated:
    stream: _Stream
    der: bytes
    version: str


def _negotiate(address: str, port: int, namespace: str, domain: str, from_: str | None,
               context: ssl.SSLContext, timeout: float) -> _Negotiated:
    """Open a stream and upgrade it with STARTTLS; raises OSError, ssl.SSLError or StreamError."""
    stream = _Stream(address, port, timeout)
    try:
        stream.send(_open(namespace, domain, from_))
        features = stream.features()
        if "policy-violation" in features:
            raise StreamError(f"refused by the federation allow-list (from {from_})")
        if _TLS_NS not in features:
            raise StreamError("no STARTTLS offered" if "<stream:features" in features
                              else "the server closed the stream")
        der, version = stream.starttls(domain, context)
        return _Negotiated(stream, der, version)
    except BaseException:
        stream.close()
        raise


def _tls(label: str, address: str, port: int, namespace: str, domain: str, from_: str | None,
         ctx: ProbeContext, timeout: float, checks: list[Check]) -> _Negotiated | None:
    """STARTTLS verified for `domain`; on a certificate that does not verify, a second,
    unverified negotiation so that the rest of the probe (expiry, features) still runs."""
    port_label = f"{label} port {port}"
    try:
        negotiated = _negotiate(address, port, namespace, domain, from_, ctx.ssl_context(), timeout)
        checks.append(Check(port_label, True, "stream opened, STARTTLS offered"))
        checks.append(Check(f"{label} TLS certificate", True, f"{negotiated.version}, valid for {domain}",
                            "tls"))
        return negotiated
    except ssl.SSLCertVerificationError as exc:
        checks.append(Check(port_label, True, "stream opened, STARTTLS offered"))
        checks.append(Check(f"{label} TLS certificate", False,
                            f"not trusted for {domain}: {exc.verify_message or exc}", "tls"))
    except ssl.SSLError as exc:
        checks.append(Check(port_label, True, "stream opened, STARTTLS offered"))
        checks.append(Check(f"{label} TLS certificate", False, f"TLS handshake failed: {exc}", "tls"))
        return None
    except StreamError as exc:
        checks.append(Check(port_label, False, str(exc)))
        return None
    except OSError as exc:
        checks.append(Check(port_label, False, f"{type(exc).__name__}: {exc}"))
        return None
    try:
        return _negotiate(address, port, namespace, domain, from_, unverified_context(), timeout)
    except (OSError, ssl.SSLError, StreamError):
        return None


def tenant_address(plan: Plan, tenant: PlannedTenant) -> str | None:
    host = plan.host(tenant.host or "")
    return host.address if host.provider == "lab" else (host.public_address or host.address)


def federating_peer(plan: Plan, tenant: PlannedTenant) -> str | None:
    """A domain of the federation allow-list served by another host, to announce as the
    stream's sender (Prosody refuses a sender it serves itself: "Attempt to connect from a host
    we serve"); None when every allowed domain lives on this host (then no sender is named)."""
    here = {t.domain or t.server_name for t in plan.tenants if t.flavor == "xmpp" and t.host == tenant.host}
    peers = [d for d in plan.federation.xmpp if d not in here]
    return peers[0] if peers else None


def probe(ctx: ProbeContext, tenant: PlannedTenant, *, login: str | None = None, password: str | None = None,
          now: datetime | None = None) -> list[Check]:
    """Every check of one xmpp tenant; with a login, SASL PLAIN inside TLS as well."""
    domain = tenant.domain or tenant.server_name
    address = tenant_address(ctx.plan, tenant)
    if not address:
        return [Check("address", False, f"host {tenant.host} has no address in the Plan")]
    timeout = min(ctx.timeout, 30.0)
    checks: list[Check] = []
    c2s = _tls("client", address, C2S_PORT, "jabber:client", domain, None, ctx, timeout, checks)
    if c2s is not None:
        stream = c2s.stream
        try:
            checks.append(expiry_check(PeerCertificate.from_der(c2s.der), now or datetime.now(UTC)))
            stream.send(_open("jabber:client", domain))
            features = stream.features()
            offered = _REGISTER_FEATURE in features
            checks.append(Check("registration closed", not offered,
                                "in-band registration offered" if offered else "not offered", "registration"))
            if login is not None and password is not None:
                token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
                stream.send(f"<auth xmlns='{_SASL_NS}' mechanism='PLAIN'>{token}</auth>")
                answer = stream.read_until(r"<success|<failure|</stream:stream>")
                checks.append(Check("authentication", "<success" in answer, login))
        except (OSError, ssl.SSLError) as exc:
            checks.append(Check("client stream after TLS", False, f"{type(exc).__name__}: {exc}"))
        finally:
            stream.close()
    s2s = _tls("federation", address, S2S_PORT, "jabber:server", domain, federating_peer(ctx.plan, tenant),
               ctx, timeout, checks)
    if s2s is not None:
        s2s.stream.close()
    return checks


def health(ctx: ProbeContext, tenant: PlannedTenant) -> TenantHealth:
    checks = probe(ctx, tenant)
    return TenantHealth(tenant.id, tenant.commune, tenant.flavor, tenant.status, tenant.host,
                        service_address(tenant), "ok" if all(c.ok for c in checks) else "failed", checks)


register(("xmpp",), health)
