"""The request form: raw HTTP fields in, a :class:`RequestDraft` out.

Only known fields are read, each with a size limit; anything else a client
sends is ignored. The checks themselves live in :mod:`relais.requests`, shared
with `relais request new`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relais.requests import MAX_MESSAGE, AgentDraft, RequestDraft

AGENT_ROWS = 12
"""Agent rows in the form (the script shows three and reveals more on demand)."""

FIELD_LIMITS: dict[str, int] = {
    "commune": 160,
    "flavor": 32,
    "domain_choice": 16,
    "own_domain": 253,
    "seats": 8,
    "mairie_email": 254,
    "dpo_name": 160,
    "dpo_email": 254,
    "retention_messages": 8,
    "retention_logs": 8,
    "requester_name": 160,
    "requester_role": 160,
    "requester_email": 254,
    "requester_phone": 32,
    "message": MAX_MESSAGE + 200,
}
AGENT_LIMITS = {"name": 160, "email": 254}
HONEYPOT = "site_web"
"""A field people never see (hidden by the style sheet); robots fill it in."""


@dataclass(frozen=True)
class ParsedForm:
    draft: RequestDraft
    too_long: list[str]
    honeypot: bool


def parse_form(form: Mapping[str, str]) -> ParsedForm:
    """Read the known fields; note those over their limit (they are refused, not cut)."""
    too_long: list[str] = []

    def get(name: str, limit: int) -> str:
        value = form.get(name, "") or ""
        if len(value) > limit:
            too_long.append(name)
            return ""
        return value

    values = {name: get(name, limit) for name, limit in FIELD_LIMITS.items()}
    agents = [
        AgentDraft(get(f"agents-{i}-name", AGENT_LIMITS["name"]),
                   get(f"agents-{i}-email", AGENT_LIMITS["email"]))
        for i in range(AGENT_ROWS)
    ]
    draft = RequestDraft(agents=agents, **values)
    return ParsedForm(draft, too_long, bool((form.get(HONEYPOT) or "").strip()))
