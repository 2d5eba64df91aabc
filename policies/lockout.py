"""Lockout prevention as Plan rules, so `relais check` (and CI) report what `relais deploy`
refuses (relais/deploy/safety.py holds the logic; both share it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from policies.engine import Context, Outcome, rule
from relais.deploy.safety import CONTROLLER_ENV, lockouts
from relais.findings import Severity
from relais.plan import Plan

FAMILY = "anssi"


@rule(
    "RELAIS-SAFETY-01",
    title="An operator can log in with an SSH key",
    source="Relais lockout prevention; NT-OpenSSH R17–R18 (authentification par clé)",
    severity=Severity.ERROR,
    family=FAMILY,
    subject="plan",
    field=("admins",),
    hint="declare at least one operator under admins: with ssh_keys in hosting.yaml",
)
def operator_can_log_in(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """Hardening closes root and password logins: without a declared operator key, nobody
    but the controller's deploy account could ever log in again."""
    found = [f for f in lockouts(plan, []) if f.rule == "RELAIS-SAFETY-01"]
    yield Outcome("plan", found[0].message if found else None, {"admins": [a.login for a in plan.admins]})


@rule(
    "RELAIS-SAFETY-02",
    title="Every host's SSH allowance admits the controller",
    source="Relais lockout prevention; NT-OpenSSH R25 (réseau d'administration)",
    severity=Severity.ERROR,
    family=FAMILY,
    subject="host",
    hint=f"add the controller's network to network.admin_sources, or set {CONTROLLER_ENV}",
)
def controller_admitted(plan: Plan, ctx: Context) -> Iterator[Outcome]:
    """The firewall the deploy loads must still let the controller in over SSH: the lab
    gateway for lab hosts, RELAIS_CONTROLLER_ADDRESS (when set) for the others."""
    address = os.environ.get(CONTROLLER_ENV)
    for host in plan.hosts:
        found = [
            f for f in lockouts(plan, [host], controller_address=address) if f.rule == "RELAIS-SAFETY-02"
        ]
        sources = sorted({s for r in host.firewall if r.port == 22 for s in r.sources})
        yield Outcome(host.name, found[0].message if found else None, {"ssh_sources": sources})


RULES = (operator_can_log_in, controller_admitted)
