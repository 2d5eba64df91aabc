"""The inbound firewall of each host, derived from the Plan: default drop, then only
what the host's roles and tenants need. One source of truth for nftables (deploys),
security groups (stacks), the hardening audit and the policies.

Sources are CIDRs; a peer whose address is not known yet (a cloud host before
provisioning) appears as ``host:<name>`` and is resolved by whoever applies the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ANY = "any"
SSH = 22
HTTP = 80
HTTPS = 443
MATRIX_FEDERATION = 8448
XMPP_C2S = 5222
XMPP_S2S = 5269
NODE_EXPORTER = 9100
PROMETHEUS = 9090
ALERTMANAGER = 9093


@dataclass(frozen=True)
class HostFacts:
    """What the firewall needs to know of one host."""

    name: str
    roles: tuple[str, ...]
    provider: str
    address: str | None
    proxies_matrix: bool
    runs_prosody: bool
    metrics_ports: tuple[int, ...]
    backup_clients: tuple[str, ...]  # hosts whose tenants back up here


def _peer(name: str, addresses: Mapping[str, str | None]) -> str:
    address = addresses.get(name)
    return f"{address}/32" if address else f"host:{name}"


def host_rules(
    host: HostFacts,
    *,
    admin_sources: Iterable[str],
    controller: str | None,
    monitors: Iterable[str],
    addresses: Mapping[str, str | None],
) -> list[tuple[str, int, list[str], str]]:
    """(protocol, port, sources, purpose) for one host, sorted by port."""
    admins = sorted(set(admin_sources) | ({f"{controller}/32"} if controller else set()))
    watchers = sorted({_peer(m, addresses) for m in monitors if m != host.name})
    rules: list[tuple[str, int, list[str], str]] = [("tcp", SSH, admins, "SSH from operators")]
    if host.proxies_matrix:
        rules += [
            ("tcp", HTTP, [ANY], "HTTP: ACME challenges and redirect to HTTPS"),
            ("tcp", HTTPS, [ANY], "HTTPS: Matrix clients and web client"),
            ("tcp", MATRIX_FEDERATION, [ANY], "Matrix federation"),
        ]
    if host.runs_prosody:
        rules += [
            ("tcp", XMPP_C2S, [ANY], "XMPP clients (STARTTLS)"),
            ("tcp", XMPP_S2S, [ANY], "XMPP federation"),
        ]
    if watchers:
        rules.append(("tcp", NODE_EXPORTER, watchers, "node exporter, from monitoring"))
        rules += [("tcp", port, watchers, "service metrics, from monitoring")
                  for port in sorted(set(host.metrics_ports))]
    if "monitor" in host.roles:
        rules += [("tcp", PROMETHEUS, admins, "Prometheus, for operators"),
                  ("tcp", ALERTMANAGER, admins, "Alertmanager, for operators")]
    if host.backup_clients:
        clients = sorted({_peer(c, addresses) for c in host.backup_clients} | set(admins))
        rules = [(proto, port, clients if port == SSH else sources, purpose
                  if port != SSH else "SSH from operators; borg from backed-up hosts")
                 for proto, port, sources, purpose in rules]
    return sorted(rules, key=lambda r: (r[1], r[0]))
