"""Probes of an xmpp tenant: client STARTTLS (certificate checked against a CA) and, given an
agent's password, authentication; server-to-server port reachable with STARTTLS.

Standard library only (socket, ssl): a probe runs from the controller or the monitor
host without an XMPP library. Each probe returns a plain dict (kind, target, ok, detail)
that the `relais probe` command turns into findings.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relais.plan import Plan, PlannedTenant

C2S_PORT = 5222
S2S_PORT = 5269
TIMEOUT = 10.0
_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"


class _Stream:
    def __init__(self, address: str, port: int, timeout: float) -> None:
        self.sock: Any = socket.create_connection((address, port), timeout=timeout)
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

    def starttls(self, server_name: str, ca_file: Path) -> dict[str, Any]:
        self.send(f"<starttls xmlns='{_TLS_NS}'/>")
        if "<proceed" not in self.read_until(r"<proceed|<failure|</stream:stream>"):
            raise ssl.SSLError("the server refused STARTTLS")
        context = ssl.create_default_context(cafile=str(ca_file))
        self.sock = context.wrap_socket(self.sock, server_hostname=server_name)
        self.buffer = ""
        cert = self.sock.getpeercert() or {}
        return {"tls_version": self.sock.version(), "not_after": cert.get("notAfter")}


def _open(namespace: str, to: str, from_: str | None = None) -> str:
    sender = f" from='{from_}'" if from_ else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{namespace}'{sender} to='{to}' version='1.0' "
            "xmlns:stream='http://etherx.jabber.org/streams'>")


def _address(plan: Plan, tenant: PlannedTenant) -> str:
    host = plan.host(tenant.host or "")
    address = host.address or host.public_address
    if not address:
        raise ValueError(f"host {host.name} has no address")
    return address


def probe_c2s(address: str, domain: str, ca_file: Path, *, login: str | None = None,
              password: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
    """STARTTLS on the client port, certificate verified for `domain`; then SASL PLAIN (inside
    TLS) if a login is given."""
    result: dict[str, Any] = {"kind": "xmpp-c2s", "target": f"{domain}:{C2S_PORT}", "ok": False}
    stream: _Stream | None = None
    try:
        stream = _Stream(address, C2S_PORT, timeout)
        stream.send(_open("jabber:client", domain))
        if _TLS_NS not in stream.read_until(r"</stream:features>"):
            result["detail"] = "no STARTTLS offered"
            return result
        result.update(stream.starttls(domain, ca_file))
        stream.send(_open("jabber:client", domain))
        features = stream.read_until(r"</stream:features>")
        result["registration_offered"] = "jabber.org/features/iq-register" in features
        if login is not None and password is not None:
            token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
            stream.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
            answer = stream.read_until(r"<success|<failure|</stream:stream>")
            result["authenticated"] = "<success" in answer
            if not result["authenticated"]:
                result["detail"] = "authentication failed"
                return result
        result["ok"] = not result["registration_offered"]
        result["detail"] = "registration offered" if result["registration_offered"] else "ok"
    except (OSError, ssl.SSLError) as exc:
        result["detail"] = f"{type(exc).__name__}: {exc}"
    finally:
        if stream is not None:
            stream.close()
    return result


def probe_s2s(address: str, domain: str, ca_file: Path, *, from_domain: str | None = None,
              timeout: float = TIMEOUT) -> dict[str, Any]:
    """The federation port answers a server stream (from one of the syndicate's domains, as the
    allow-list demands) with STARTTLS, and the certificate is valid for `domain`."""
    result: dict[str, Any] = {"kind": "xmpp-s2s", "target": f"{domain}:{S2S_PORT}", "ok": False}
    stream: _Stream | None = None
    try:
        stream = _Stream(address, S2S_PORT, timeout)
        stream.send(_open("jabber:server", domain, from_domain))
        features = stream.read_until(r"</stream:features>|</stream:stream>")
        if "policy-violation" in features:
            result["detail"] = f"refused by the federation allow-list (from {from_domain})"
            return result
        if _TLS_NS not in features:
            result["detail"] = "no STARTTLS offered"
            return result
        result.update(stream.starttls(domain, ca_file))
        result["ok"], result["detail"] = True, "ok"
    except (OSError, ssl.SSLError) as exc:
        result["detail"] = f"{type(exc).__name__}: {exc}"
    finally:
        if stream is not None:
            stream.close()
    return result


def probe_tenant(plan: Plan, tenant: PlannedTenant, ca_file: Path,
                 secret: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Health of one xmpp tenant: c2s (with its first agent's login when `secret` reads the
    vault) and s2s. `ok` is true when every probe passed."""
    domain = tenant.domain or tenant.server_name
    address = _address(plan, tenant)
    login = password = None
    if secret is not None and tenant.agents:
        login = tenant.agents[0].login
        password = secret(tenant.agents[0].password.ref)
    peers = [d for d in plan.federation.xmpp if d != domain]
    probes = [probe_c2s(address, domain, ca_file, login=login, password=password),
              probe_s2s(address, domain, ca_file, from_domain=peers[0] if peers else None)]
    return {"tenant": tenant.id, "domain": domain, "flavor": "xmpp", "ok": all(p["ok"] for p in probes),
            "probes": probes}
