"""Lockout prevention: refuse a deploy that would close the hosts to their operators.

Hardening closes root login, password authentication and every port the Plan does not
open. If the Plan declares no operator with an SSH key, or a host's SSH allowance does not
admit the controller, the first hardened deploy is also the last one that can reach it.
These checks are pure (the Plan and, for hosts outside the lab, the controller's address
from RELAIS_CONTROLLER_ADDRESS) and run before any connection.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from relais import firewall
from relais.errors import RelaisError
from relais.plan import Plan, PlannedHost

CONTROLLER_ENV = "RELAIS_CONTROLLER_ADDRESS"


class LockoutError(RelaisError):
    """The deploy would lock the controller or the operators out of a host."""


@dataclass(frozen=True)
class Lockout:
    rule: str
    subject: str
    message: str
    hint: str


def controller_for(plan: Plan, host: PlannedHost, env: str | None) -> str | None:
    """The controller's address as the host sees it: the lab gateway in the lab, else the
    operator's RELAIS_CONTROLLER_ADDRESS (None when unknown)."""
    if host.provider == "lab":
        return plan.lab.gateway
    return env or None


def _admits(sources: Iterable[str], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for source in sources:
        if source == firewall.ANY:
            return True
        if source.startswith("host:"):
            continue
        try:
            if ip in ipaddress.ip_network(source, strict=False):
                return True
        except ValueError:
            continue
    return False


def lockouts(
    plan: Plan, hosts: Iterable[PlannedHost] | None = None, *, controller_address: str | None = None
) -> list[Lockout]:
    """Every reason the deploy would lock someone out (empty: safe)."""
    found: list[Lockout] = []
    if not any(a.ssh_keys for a in plan.admins):
        found.append(
            Lockout(
                "RELAIS-SAFETY-01",
                "plan",
                "no administrator with an SSH key is declared: once root and password logins are closed, "
                "no operator could log in",
                "declare at least one operator under `admins:` in hosting.yaml, with `ssh_keys:`",
            )
        )
    for host in plan.hosts if hosts is None else hosts:
        ssh_sources = sorted(
            {s for r in host.firewall if r.port == firewall.SSH and r.protocol == "tcp" for s in r.sources}
        )
        controller = controller_for(plan, host, controller_address)
        if not ssh_sources:
            found.append(
                Lockout(
                    "RELAIS-SAFETY-02",
                    host.name,
                    f"host {host.name} would accept SSH from nobody: its firewall has no SSH allowance",
                    "declare the operators' networks under `network: admin_sources:` in hosting.yaml",
                )
            )
        elif controller is not None and not _admits(ssh_sources, controller):
            found.append(
                Lockout(
                    "RELAIS-SAFETY-02",
                    host.name,
                    f"host {host.name} would not accept SSH from the controller ({controller}): "
                    f"SSH is open to {', '.join(ssh_sources)} only",
                    f"add the controller's network to `network: admin_sources:` in hosting.yaml, or set "
                    f"{CONTROLLER_ENV} to the address the hosts see the controller connect from",
                )
            )
    return found


def check_deploy(plan: Plan, hosts: Iterable[PlannedHost]) -> None:
    """Raise LockoutError, before any connection, when the deploy would lock anyone out."""
    found = lockouts(plan, hosts, controller_address=os.environ.get(CONTROLLER_ENV))
    if found:
        first = found[0]
        more = (
            f" (and {len(found) - 1} more: " + "; ".join(f.message for f in found[1:]) + ")"
            if len(found) > 1
            else ""
        )
        raise LockoutError(f"refusing to deploy: {first.message}{more}", hint=first.hint)
