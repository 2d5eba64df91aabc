"""Operator actions on one tenant: suspend, resume, add an agent, reset an agent's password.

They are declarative: each edits the commune's YAML file (round-trip with ruamel.yaml, so
comments and layout stay), checks that the inventory still plans (the edit is undone if it
does not), creates or rotates the secrets concerned, and converges the tenant's hosts with a
deploy limited to that commune. Suspending keeps every piece of data: a dedicated homeserver is
stopped, agents on the shared homeserver are locked.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from relais.errors import RelaisError
from relais.plan import Plan, PlannedAgent, PlannedTenant

SUSPENDABLE = ("active",)
RESUMABLE = ("suspended",)


class TenantOpError(RelaisError):
    """An operator action on a tenant cannot be done."""


def _yaml() -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def find_tenant(plan: Plan, commune: str) -> PlannedTenant:
    key = commune.casefold()
    for tenant in plan.tenants:
        if key in (tenant.id.casefold(), tenant.commune.casefold()):
            return tenant
    raise TenantOpError(f"no tenant for commune {commune!r}",
                        hint="give its INSEE code or its name as in the inventory (`relais plan`)")


def find_agent(tenant: PlannedTenant, who: str) -> PlannedAgent:
    key = who.casefold()
    for agent in tenant.agents:
        if key in (agent.login.casefold(), agent.address.casefold(), agent.email.casefold()):
            return agent
    raise TenantOpError(f"{tenant.commune} has no agent {who!r}",
                        hint="agents: " + ", ".join(a.login for a in tenant.agents))


def read_document(path: Path) -> Any:
    return _yaml().load(path.read_text(encoding="utf-8"))


def dump_document(document: Any) -> str:
    out = io.StringIO()
    _yaml().dump(document, out)
    return out.getvalue()


def set_status(text: str, status: str) -> str:
    """The commune file with `tenant.status` set (everything else untouched)."""
    document = _yaml().load(text)
    document["tenant"]["status"] = status
    return dump_document(document)


def add_agent(text: str, name: str, email: str, login: str | None = None) -> str:
    document = _yaml().load(text)
    tenant = document["tenant"]
    agent = CommentedMap([("name", name), ("email", email)])
    if login:
        agent["login"] = login
    agent.fa.set_flow_style()  # the shipped files write one agent per line
    if "agents" not in tenant or tenant["agents"] is None:
        tenant["agents"] = []
    tenant["agents"].append(agent)
    return dump_document(document)


@dataclass
class Edit:
    """An edit of a commune file, undone if the inventory no longer plans."""

    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def apply_edit(path: Path, transform: Callable[[str], str], replan: Callable[[], Plan]) -> tuple[Edit, Plan]:
    before = path.read_text(encoding="utf-8")
    after = transform(before)
    edit = Edit(path, before, after)
    if not edit.changed:
        return edit, replan()
    path.write_text(after, encoding="utf-8")
    try:
        plan = replan()
    except RelaisError:
        path.write_text(before, encoding="utf-8")
        raise
    return edit, plan


def commune_file(inventory: Path, tenant: PlannedTenant) -> Path:
    source = Path(tenant.source)
    for path in (inventory / source, inventory.parent / source, inventory / "communes" / source.name):
        if path.is_file():
            return path
    raise TenantOpError(f"the declaration of {tenant.commune} ({tenant.source}) is missing")


def suspend_transform(tenant: PlannedTenant) -> Callable[[str], str]:
    if tenant.status == "suspended":
        return lambda text: text
    if tenant.status not in SUSPENDABLE:
        raise TenantOpError(f"{tenant.commune} is {tenant.status}: only an active tenant can be suspended")
    return lambda text: set_status(text, "suspended")


def resume_transform(tenant: PlannedTenant) -> Callable[[str], str]:
    if tenant.status == "active":
        return lambda text: text
    if tenant.status not in RESUMABLE:
        raise TenantOpError(f"{tenant.commune} is {tenant.status}: only a suspended tenant can be resumed")
    return lambda text: set_status(text, "active")
