"""How probes reach tenants: names resolved from the Plan's own DNS records (never an outside
resolver), TLS verified against the syndicate's CA and the system's trust store."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from relais.errors import RelaisError
from relais.plan import Plan


class ProbeError(RelaisError):
    """A probe cannot run (no address for a name, no CA, no secret)."""


def address_map(plan: Plan) -> dict[str, str]:
    """Every name the Plan publishes with an A record, and every host's own name."""
    names = {r.name: r.value for r in plan.dns if r.type == "A"}
    for host in plan.hosts:
        address = host.address if host.provider == "lab" else (host.public_address or host.address)
        if address:
            names.setdefault(host.fqdn, address)
    return names


class PlanResolver(AbstractResolver):
    """aiohttp resolver answering from the Plan: a name it does not know is an error, so a probe
    can never reach an address outside the syndicate's (or the lab's) network."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        address = self.names.get(host.rstrip("."))
        if address is None:
            raise OSError(f"{host} is not a name of the Plan")
        return [ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


@dataclass
class ProbeContext:
    plan: Plan
    ca_file: Path | None
    secret: Callable[[str], str]
    timeout: float = 120.0

    @classmethod
    def for_inventory(cls, plan: Plan, inventory: Path, *, timeout: float = 120.0) -> ProbeContext:
        from relais.secrets import SecretStore

        ca = inventory / "pki" / "ca.crt"
        store: Any = None

        def secret(ref: str) -> str:
            nonlocal store
            if store is None:
                store = SecretStore.open(inventory)
            return str(store.get(ref))

        return cls(plan, ca if ca.is_file() else None, secret, timeout)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def resolver(self) -> PlanResolver:
        return PlanResolver(address_map(self.plan))
