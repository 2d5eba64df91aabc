"""TLS as a client sees it: the certificate chains to a trusted CA (the syndicate's and the
system's) for the name served, and it does not expire within the renewal margin.

The handshake is shared by every flavor: Matrix speaks TLS from the first byte, XMPP after
STARTTLS; both hand over a connected socket ready for the handshake (`Connect`). When the
verified handshake fails, a second, unverified one reads the certificate anyway, so the
report still says when it expires and who issued it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from relais.probes import Check

EXPIRY_MARGIN_DAYS = 21
"""A certificate that expires sooner than this is drift: renewal must have happened by then."""

Connect = Callable[[], socket.socket]
"""Opens a connection to the service, ready for the TLS handshake (after STARTTLS if any)."""


@dataclass(frozen=True)
class PeerCertificate:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        cert = x509.load_der_x509_certificate(der)
        return cls(_common_name(cert.subject), _common_name(cert.issuer), cert.not_valid_before_utc,
                   cert.not_valid_after_utc, cert.fingerprint(hashes.SHA256()).hex())


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def expiry_check(cert: PeerCertificate, now: datetime,
                 margin_days: int = EXPIRY_MARGIN_DAYS) -> Check:
    """Passes while the certificate stays valid for more than `margin_days` from `now`."""
    remaining = cert.not_after - now
    days = remaining.days
    until = cert.not_after.strftime("%Y-%m-%d %H:%M UTC")
    if remaining.total_seconds() <= 0:
        return Check("certificate expiry", False, f"{cert.subject}: expired on {until}", "expiry")
    if cert.not_before > now:
        return Check("certificate expiry", False,
                     f"{cert.subject}: not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC", "expiry")
    if remaining.total_seconds() < margin_days * 86400:
        return Check("certificate expiry", False,
                     f"{cert.subject}: expires on {until}, in {days} day(s) (< {margin_days})", "expiry")
    return Check("certificate expiry", True, f"{cert.subject}: valid until {until} ({days} days)", "expiry")


def unverified_context() -> ssl.SSLContext:
    """Reads a certificate that failed verification, to report on it; never used to trust."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _handshake(connect: Connect, server_name: str, context: ssl.SSLContext) -> tuple[bytes, str]:
    raw = connect()
    try:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True) or b"", tls.version() or "?"
    finally:
        with contextlib.suppress(OSError):
            raw.close()


def tls_checks(connect: Connect, server_name: str, context: ssl.SSLContext, *, now: datetime | None = None,
               label: str = "TLS certificate") -> list[Check]:
    """The certificate check (chain and name) and the expiry check of one endpoint. An endpoint
    that does not answer gives a failed `service` check instead: nothing to say of its TLS."""
    now = now or datetime.now(UTC)
    try:
        der, version = _handshake(connect, server_name, context)
        verified = Check(label, True, f"{version}, valid for {server_name}", "tls")
    except ssl.SSLCertVerificationError as exc:
        verified = Check(label, False, f"not trusted for {server_name}: {exc.verify_message or exc}", "tls")
        try:
            der, _ = _handshake(connect, server_name, unverified_context())
        except (OSError, ssl.SSLError):
            return [verified]
    except ssl.SSLError as exc:
        return [Check(label, False, f"TLS handshake failed: {exc}", "tls")]
    except OSError as exc:
        return [Check(f"{label} (endpoint answering)", False, f"{type(exc).__name__}: {exc}", "service")]
    if not der:
        return [verified]
    cert = PeerCertificate.from_der(der)
    return [verified, expiry_check(cert, now)]
