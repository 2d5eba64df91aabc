"""blackbox.yml of a monitor host: how each kind of tenant endpoint is probed.

Certificates are verified against the system's trust store, which deploys/tls
fills with the syndicate's CA (and which also holds the public CAs, for communes
whose own domain carries a public certificate): ``ca_file`` names it explicitly.
XMPP modules are one per domain because the stream header must name the domain
(``to=``) and blackbox cannot put the probe's target into what it sends.
"""

from __future__ import annotations

from typing import Any

from relais.monitoring.settings import MonitoringSettings
from relais.monitoring.targets import probe_module, xmpp_domains
from relais.plan import Plan

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""System trust store; update-ca-certificates adds the syndicate CA (deploys/tls) to it."""

_TLS = {"ca_file": CA_BUNDLE, "insecure_skip_verify": False, "min_version": "TLS12"}
_NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


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


def _xmpp(domain: str, namespace: str, timeout: str) -> dict[str, Any]:
    header = (f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='{namespace}' "
              "xmlns:stream='http://etherx.jabber.org/streams'>")
    return {
        "prober": "tcp",
        "timeout": timeout,
        "tcp": {
            "preferred_ip_protocol": "ip4",
            "ip_protocol_fallback": False,
            "tls_config": {**_TLS, "server_name": domain},
            "query_response": [
                {"send": header},
                {"expect": f"<starttls[^>]+{_NS_TLS}"},
                {"send": f"<starttls xmlns='{_NS_TLS}'/>"},
                {"expect": f"<proceed[^>]+{_NS_TLS}"},
                {"starttls": True},
            ],
        },
    }


def blackbox_config(plan: Plan, settings: MonitoringSettings) -> dict[str, Any]:
    timeout = settings.scrape_timeout()
    modules: dict[str, Any] = {
        "matrix_client": {"prober": "http", "timeout": timeout, "http": _http('"versions"')},
        "matrix_federation": {"prober": "http", "timeout": timeout, "http": _http('"server"')},
    }
    for domain in xmpp_domains(plan):
        modules[probe_module("xmpp-c2s", domain)] = _xmpp(domain, "jabber:client", timeout)
        modules[probe_module("xmpp-s2s", domain)] = _xmpp(domain, "jabber:server", timeout)
    return {"modules": modules}
