"""Matrix probes, with a real client library (matrix-nio) over HTTPS, verifying the CA.

`health` checks what a client and a federating server see of a tenant's homeserver;
`deliver` logs two agents in, has one invite the other to a fresh private room and send a
message, and waits until the other's sync returns it (across hosts: federation).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    RoomCreateError,
    RoomMessageText,
    RoomSendError,
    SyncResponse,
)

from relais.plan import PlannedAgent, PlannedTenant
from relais.probes import Aspect, Check, TenantHealth, register, service_address
from relais.probes.net import ProbeContext, ProbeError, address_map
from relais.probes.tls import tls_checks

MATRIX_FLAVORS = ("matrix-dedicated", "matrix-shared")


def _session(ctx: ProbeContext) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=ctx.resolver(), ssl=ctx.ssl_context())
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=ctx.timeout))


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def _post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(url, json=payload) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def registration_refused(status: int, body: Any) -> tuple[bool, str]:
    """A closed homeserver refuses a registration attempt (Synapse: 403 M_FORBIDDEN, or the
    proxy hides the endpoint: 404); 401 with authentication flows means it is open."""
    code = body.get("errcode", "") if isinstance(body, dict) else ""
    if status in (403, 404):
        return True, f"HTTP {status} {code}".rstrip()
    if status == 401 and isinstance(body, dict) and "flows" in body:
        stages = sorted({s for f in body["flows"] if isinstance(f, dict) for s in f.get("stages", [])})
        return False, f"HTTP 401: registration open (stages: {', '.join(stages) or 'none'})"
    return False, f"HTTP {status} {code}: a closed homeserver answers 403".rstrip()


def _connector(ctx: ProbeContext, name: str, port: int) -> Callable[[], socket.socket]:
    address = address_map(ctx.plan).get(name)

    def connect() -> socket.socket:
        if address is None:
            raise OSError(f"{name} is not a name of the Plan")
        return socket.create_connection((address, port), timeout=min(ctx.timeout, 30.0))

    return connect


async def _health(ctx: ProbeContext, tenant: PlannedTenant) -> TenantHealth:
    name = tenant.server_name
    checks: list[Check] = await asyncio.to_thread(tls_checks, _connector(ctx, name, 443), name,
                                                  ctx.ssl_context())
    async with _session(ctx) as session:
        async def check(label: str, url: str, expect: Any, aspect: Aspect = "service",
                        payload: dict[str, Any] | None = None) -> None:
            try:
                status, body = await (_get(session, url) if payload is None else _post(session, url, payload))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                checks.append(Check(label, False, f"{type(exc).__name__}: {exc}", aspect))
                return
            ok, detail = expect(status, body)
            checks.append(Check(label, ok, detail, aspect))

        await check("delegation", f"https://{name}/.well-known/matrix/server",
                    lambda s, b: (s == 200 and isinstance(b, dict) and "m.server" in b,
                                  f"HTTP {s} {b.get('m.server', '') if isinstance(b, dict) else ''}"))
        await check("client API", f"https://{name}/_matrix/client/versions",
                    lambda s, b: (s == 200 and isinstance(b, dict) and bool(b.get("versions")), f"HTTP {s}"))
        await check("federation", f"https://{name}:8448/_matrix/federation/v1/version",
                    lambda s, b: (s == 200, f"HTTP {s} " + (
                        f"{b['server'].get('name', '')} {b['server'].get('version', '')}"
                        if isinstance(b, dict) and isinstance(b.get("server"), dict) else "")))
        await check("registration closed", f"https://{name}/_matrix/client/v3/register?kind=user",
                    registration_refused, "registration", payload={})
        await check("admin API closed", f"https://{name}/_synapse/admin/v1/server_version",
                    lambda s, b: (s in (403, 404), f"HTTP {s}"), "admin")
    healthy = all(c.ok for c in checks)
    return TenantHealth(tenant.id, tenant.commune, tenant.flavor, tenant.status, tenant.host,
                        service_address(tenant), "ok" if healthy else "failed", checks)


def health(ctx: ProbeContext, tenant: PlannedTenant) -> TenantHealth:
    return asyncio.run(_health(ctx, tenant))


register(MATRIX_FLAVORS, health)


# --------------------------------------------------------------------------- messaging


def server_of(address: str) -> str:
    return address.split(":", 1)[1]


@asynccontextmanager
async def logged_in(ctx: ProbeContext, agent: PlannedAgent,
                    password: str | None = None) -> AsyncIterator[AsyncClient]:
    """An agent's client session (its password from the vault unless given); logged out after."""
    server = server_of(agent.address)
    client = AsyncClient(f"https://{server}", agent.address, ssl=ctx.ssl_context(),
                         config=AsyncClientConfig(request_timeout=ctx.timeout, max_timeouts=3))
    client.client_session = _session(ctx)
    try:
        response = await client.login(password if password is not None else ctx.secret(agent.password.ref),
                                      device_name="relais probe")
        if not isinstance(response, LoginResponse):
            raise ProbeError(f"{agent.address} cannot log in: {response}")
        try:
            yield client
        finally:
            await client.logout()
    finally:
        await client.close()


async def wait_for(client: AsyncClient, predicate: Any, timeout: float) -> SyncResponse:
    """Sync until `predicate(sync_response)` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.sync(timeout=5000, full_state=False)
        if isinstance(response, SyncResponse) and predicate(response):
            return response
    raise ProbeError(f"{client.user_id}: timed out after {timeout:.0f} s")


def has_invite(room_id: str) -> Any:
    def predicate(response: SyncResponse) -> bool:
        room = response.rooms.invite.get(room_id)
        return room is not None and any(isinstance(e, InviteMemberEvent) for e in room.invite_state)
    return predicate


def has_message(room_id: str, body: str) -> Any:
    def predicate(response: SyncResponse) -> bool:
        room = response.rooms.join.get(room_id)
        return room is not None and any(isinstance(e, RoomMessageText) and e.body == body
                                        for e in room.timeline.events)
    return predicate


@dataclass
class Delivery:
    sender: str
    recipient: str
    room_id: str
    event_id: str
    body: str
    delivered: bool
    seconds: float
    federated: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _deliver(ctx: ProbeContext, sender: PlannedAgent, recipient: PlannedAgent,
                   room_id: str | None = None) -> Delivery:
    body = f"Relais: message de test {secrets.token_hex(6)}"
    async with logged_in(ctx, sender) as alice, logged_in(ctx, recipient) as bob:
        await alice.sync(timeout=0)
        await bob.sync(timeout=0)
        if room_id is None:
            created = await alice.room_create(name="Relais — sonde", invite=[recipient.address],
                                              is_direct=True)
            if isinstance(created, RoomCreateError):
                raise ProbeError(f"{sender.address} cannot create a room: {created.message}")
            room_id = created.room_id
            await wait_for(bob, has_invite(room_id), ctx.timeout)
            joined = await bob.join(room_id)
            if isinstance(joined, JoinError):
                raise ProbeError(f"{recipient.address} cannot join {room_id}: {joined.message}")
        start = time.monotonic()
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
        if isinstance(sent, RoomSendError):
            raise ProbeError(f"{sender.address} cannot send: {sent.message}")
        try:
            await wait_for(bob, has_message(room_id, body), ctx.timeout)
            delivered = True
        except ProbeError:
            delivered = False
        seconds = time.monotonic() - start
    return Delivery(sender.address, recipient.address, room_id, sent.event_id, body, delivered,
                    round(seconds, 2), server_of(sender.address) != server_of(recipient.address))


def deliver(ctx: ProbeContext, sender: PlannedAgent, recipient: PlannedAgent,
            room_id: str | None = None) -> Delivery:
    """Send a test message from `sender` to `recipient` and report whether it arrived."""
    return asyncio.run(_deliver(ctx, sender, recipient, room_id))


def pick_pair(tenants: list[PlannedTenant]) -> tuple[PlannedTenant, PlannedTenant]:
    """Two active dedicated Matrix tenants on different hosts (federation between hosts)."""
    dedicated = [t for t in tenants if t.flavor == "matrix-dedicated" and t.status == "active"
                 and t.host and t.agents]
    for first in dedicated:
        for second in dedicated:
            if first.host != second.host:
                return first, second
    raise ProbeError("no two active matrix-dedicated communes on different hosts",
                     hint="name them: --from COMMUNE --to COMMUNE")
