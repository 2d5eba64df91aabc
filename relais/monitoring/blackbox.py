"""blackbox.yml of a monitor host: how each kind of tenant endpoint is probed.

Certificates are verified against the system's trust store, which deploys/tls
fills with the syndicate's CA (and which also holds the public CAs, for communes
whose own domain carries a public certificate): ``ca_file`` names it explicitly.
XMPP endpoints are probed by a TCP connection only. blackbox's STARTTLS
(``query_response`` with ``starttls``) reads the server's answers line by line,
and XMPP is not line-based: Prosody sends its stream header and features without
a newline, so each ``expect`` waits until the probe's deadline (measured in the
lab against Debian's Prosody 0.12). The certificates Prosody serves are watched
from their files instead (``relais_tls_certificate_expiry_timestamp_seconds``,
written on every host by deploys/monitor), with the same alert.
"""

from __future__ import annotations

from typing import Any

from relais.monitoring.settings import MonitoringSettings
from relais.plan import Plan

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""System trust store; update-ca-certificates adds the syndicate CA (deploys/tls) to it."""

_TLS = {"ca_file": CA_BUNDLE, "insecure_skip_verify": False, "min_version": "TLS12"}


def _http(path_ok: str) -> dict[str, Any]:
    return {
        "method": "GET",
        "preferred_ip_protocol": "ip4",
        "ip_protocol_fallback": False,
        "valid_status_codes": [200],
        "fail_if_not_ssl": True,
        "fail_if_body_not_matches_regexp": [path_ok],
        "tls_config": dict(_TLS),
    }


def _tcp(timeout: str) -> dict[str, Any]:
    return {"prober": "tcp", "timeout": timeout,
            "tcp": {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False}}


def blackbox_config(plan: Plan, settings: MonitoringSettings) -> dict[str, Any]:
    timeout = settings.scrape_timeout()
    modules: dict[str, Any] = {
        "matrix_client": {"prober": "http", "timeout": timeout, "http": _http('"versions"')},
        "matrix_federation": {"prober": "http", "timeout": timeout, "http": _http('"server"')},
    }
    # XMPP: the port answers (see the module docstring for STARTTLS).
    modules["xmpp_c2s"] = _tcp(timeout)
    modules["xmpp_s2s"] = _tcp(timeout)
    return {"modules": modules}
