"""Accounts and commune spaces a homeserver must have: computed on the controller, applied on
the host by `relais/matrix/hostsync.py` over the admin API on loopback.

The host keeps a root-only state file (`accounts.json`): per account, a digest of its password
(never the password), its display name and whether it is locked; per commune, the ids of its
space and room. The controller reads that file (a fact), computes the digest of what the Plan
wants, and only when they differ uploads a one-shot request (0600, removed after use) with the
passwords to set. A second deploy therefore changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relais.matrix.homeservers import ADMIN_LOCALPART, Homeserver, admin_password

STATE_FILE = "accounts.json"


def password_digest(user_id: str, password: str) -> str:
    return hashlib.sha256(f"relais-agent\0{user_id}\0{password}".encode()).hexdigest()


@dataclass(frozen=True)
class AccountsRequest:
    """What the host-side helper is asked to converge (holds passwords: upload it 0600)."""

    payload: dict[str, Any]
    digest: str

    def to_json(self) -> str:
        return json.dumps(self.payload, sort_keys=True, indent=1)


def desired_accounts(hs: Homeserver, secret: Callable[[str], str],
                     state: Mapping[str, Any] | None) -> AccountsRequest:
    """The accounts, locks and spaces the Plan wants on `hs`.

    Agents of a suspended tenant are locked (their data stays; a locked account cannot log
    in). Accounts the state knows but the Plan no longer lists are locked too, never
    deactivated: deactivation erases data and is the offboarding's decision.
    """
    users: dict[str, dict[str, Any]] = {}
    passwords: dict[str, str] = {}
    spaces: dict[str, dict[str, Any]] = {}
    for tenant in hs.communes:
        locked = tenant.status != "active"
        members = []
        for agent in tenant.agents:
            password = secret(agent.password.ref)
            users[agent.address] = {"displayname": agent.name, "locked": locked,
                                    "password": password_digest(agent.address, password)}
            passwords[agent.address] = password
            members.append(agent.address)
        if hs.shared:
            spaces[tenant.id] = {"name": f"Commune de {tenant.commune}",
                                 "room": f"{tenant.commune} — général", "members": sorted(members)}
    known = (state or {}).get("users", {})
    for user_id, previous in sorted(known.items()):
        if user_id not in users:
            users[user_id] = {**previous, "locked": True}
    desired = {"users": users, "spaces": spaces}
    digest = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()
    registration_secret = secret(hs.secret_ref("registration_secret"))
    payload = {
        "server_name": hs.server_name,
        "base_url": f"http://127.0.0.1:{hs.port}",
        "unit": hs.unit,
        "config_dir": hs.config_dir,
        "state_file": f"{hs.data_dir}/{STATE_FILE}",
        "admin": {"localpart": ADMIN_LOCALPART, "password": admin_password(registration_secret)},
        "registration_secret": registration_secret,
        "unix_user": hs.unix_user,
        "digest": digest,
        "desired": desired,
        "passwords": passwords,
    }
    return AccountsRequest(payload, digest)


def state_is_current(state: Mapping[str, Any] | None, request: AccountsRequest) -> bool:
    return bool(state) and (state or {}).get("digest") == request.digest
