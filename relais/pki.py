"""The syndicate's internal certificate authority (the lab, and hosts without ACME).

The CA's private key and every leaf key live in the encrypted secret store
(`pki/ca/key`, `pki/<name>/key`); certificates are public and are kept as files
in the inventory (`pki/ca.crt`, `pki/certs/<name>.crt`) so that issuing is
idempotent: a certificate is re-issued only when it is missing, its names
changed, it expires within 30 days, or the CA changed. Leaf keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from relais.errors import RelaisError
from relais.plan import SecretRef

CA_KEY = SecretRef(ref="pki/ca/key", kind="tls-key")
CA_YEARS = 10
LEAF_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)


class PkiError(RelaisError):
    """A certificate cannot be issued or read."""


class Store(Protocol):
    def get(self, ref: str | SecretRef) -> str: ...
    def ensure(self, ref: SecretRef) -> bool: ...


def _key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("a TLS key in the secret store is not an ECDSA key",
                       hint="rotate it: relais secrets rotate <ref>")
    return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Pki:
    def __init__(self, inventory: Path, store: Store, organisation: str) -> None:
        self.dir = inventory / "pki"
        self.store = store
        self.organisation = organisation

    @property
    def ca_path(self) -> Path:
        return self.dir / "ca.crt"

    def ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        self.store.ensure(CA_KEY)
        key = _key(self.store.get(CA_KEY))
        if self.ca_path.is_file():
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            if cert.public_key() == key.public_key() and cert.not_valid_after_utc - _now() > RENEW_BEFORE:
                return cert, key
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organisation[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, "Relais internal CA"),
        ])
        now = _now()
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self._write(self.ca_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def ca_pem(self) -> str:
        cert, _ = self.ca()
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def certificate(self, name: str, sans: list[str]) -> tuple[str, str]:
        """(certificate chain PEM, private key PEM) for `name`, valid for every DNS name in `sans`."""
        ca_cert, ca_key = self.ca()
        key_ref = SecretRef(ref=f"pki/{name}/key", kind="tls-key")
        self.store.ensure(key_ref)
        key_pem = self.store.get(key_ref)
        key = _key(key_pem)
        path = self.dir / "certs" / f"{name}.crt"
        wanted = sorted(set(sans))
        if path.is_file():
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            try:
                names = sorted(cert.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
            except x509.ExtensionNotFound:
                names = []
            if (names == wanted and cert.public_key() == key.public_key()
                    and cert.issuer == ca_cert.subject
                    and cert.not_valid_after_utc - _now() > RENEW_BEFORE):
                return self._chain(cert, ca_cert), key_pem
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0][:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in wanted]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self._write(path, cert.public_bytes(serialization.Encoding.PEM))
        return self._chain(cert, ca_cert), key_pem

    @staticmethod
    def _chain(cert: x509.Certificate, ca: x509.Certificate) -> str:
        return (cert.public_bytes(serialization.Encoding.PEM)
                + ca.public_bytes(serialization.Encoding.PEM)).decode()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
