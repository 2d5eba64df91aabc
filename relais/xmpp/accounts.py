"""Agents' XMPP accounts: which to create or re-key, which to disable (pure: no I/O).

Prosody's accounts are created and re-keyed through its admin shell (`prosodyctl
shell`), fed on standard input: passwords never appear on a command line, in a
process list, or in an operation name. Whether an account is up to date is read
from a root-only marker per account on the host (`/var/lib/relais/xmpp/accounts/
<jid>`) holding a hash of the JID and the password set: the password is set when
the account is created and whenever the agent's secret changes, never otherwise,
so a second deploy changes nothing.

Prosody 0.12 has no "disabled" state for an account: an agent removed from the
inventory keeps its data (roster, archive) but its password is replaced by a
random one nobody knows and its sessions are closed; its marker becomes
`<jid>.disabled`. If the agent comes back, the account is re-keyed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

MARKER_DIR = "/var/lib/relais/xmpp/accounts"
DISABLED_SUFFIX = ".disabled"
_MARKER_LINE = re.compile(r"^(?P<name>[^\s:/]+):(?P<hash>[0-9a-f]{64})$")


def account_hash(jid: str, password: str) -> str:
    """What the marker of an account holds: never the password, a salted hash of it."""
    return hashlib.sha256(f"relais-xmpp-account\0{jid}\0{password}".encode()).hexdigest()


def marker_path(jid: str, *, disabled: bool = False) -> str:
    return f"{MARKER_DIR}/{jid}{DISABLED_SUFFIX if disabled else ''}"


def parse_markers(lines: list[str]) -> tuple[dict[str, str], set[str]]:
    """Output of `grep -H . <markers>` (one `<file>:<hash>` a line) -> (active markers, disabled JIDs)."""
    active: dict[str, str] = {}
    disabled: set[str] = set()
    for line in lines:
        match = _MARKER_LINE.match(line.strip().rsplit("/", 1)[-1])
        if not match:
            continue
        name = match["name"]
        if name.endswith(DISABLED_SUFFIX):
            disabled.add(name[: -len(DISABLED_SUFFIX)])
        else:
            active[name] = match["hash"]
    return active, disabled


@dataclass(frozen=True)
class AccountChanges:
    set_password: list[str]  # JIDs to create (if missing) and give their inventory password
    disable: list[str]  # JIDs of agents removed from the inventory

    def __bool__(self) -> bool:
        return bool(self.set_password or self.disable)


def account_changes(wanted: Mapping[str, str], markers: Mapping[str, str], served_hosts: set[str],
                    ) -> AccountChanges:
    """`wanted`: JID -> hash for the agents of the active communes of this host;
    `markers`: JID -> hash found on the host; `served_hosts`: domains whose accounts we manage now
    (active communes: a suspended commune's accounts are left as they are until it resumes)."""
    to_set = sorted(jid for jid, digest in wanted.items() if markers.get(jid) != digest)
    to_disable = sorted(jid for jid in markers
                        if jid not in wanted and jid.partition("@")[2] in served_hosts)
    return AccountChanges(to_set, to_disable)


def lua_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def shell_input(passwords: Mapping[str, str], disable: Mapping[str, str]) -> str:
    """Lines for `prosodyctl shell` (its standard input): create each account (an existing one
    answers "User exists", which is fine), then set its password; for removed agents, set an
    unknown password and close their sessions."""
    lines: list[str] = []
    for jid, password in sorted(passwords.items()):
        lines.append(f"user:create({lua_quote(jid)}, {lua_quote(password)})")
        lines.append(f"user:password({lua_quote(jid)}, {lua_quote(password)})")
    for jid, random_password in sorted(disable.items()):
        lines.append(f"user:password({lua_quote(jid)}, {lua_quote(random_password)})")
        lines.append(f"c2s:close({lua_quote(jid)})")
    return "\n".join(lines) + "\n"
