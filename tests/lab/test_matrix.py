"""Matrix tenants on real lab hosts, seen by a real Matrix client (matrix-nio) over HTTPS that
verifies the syndicate's CA: messages inside a commune, between communes on two hosts
(federation), in a shared commune's space; what is closed stays closed (registration, admin
API, federation outside the allow-list, old TLS); a second deploy changes nothing; a restarted
host brings its homeservers back with their messages."""

from __future__ import annotations

import asyncio
import shlex
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from nio import RoomInviteError, RoomMessagesResponse, RoomMessageText, SyncResponse
from yarl import URL

from relais.cli.context import default_inventory
from relais.deploy import deploy_plan
from relais.deploy.runner import DeployReport
from relais.deploy.targets import Target, resolve
from relais.lab import Lab
from relais.matrix.homeservers import homeservers, homeservers_on
from relais.plan import Plan, PlannedTenant
from relais.probes import health
from relais.probes.matrix import _session, deliver, logged_in, pick_pair, wait_for
from relais.probes.net import ProbeContext, address_map

RESULTS: dict[str, Any] = {}


def deploy_matrix(plan: Plan) -> DeployReport:
    """`relais deploy --limit` on the hosts of the homeservers (every concern)."""
    hosts = sorted({hs.host for hs in homeservers(plan)})
    return deploy_plan(plan, default_inventory(), limit=hosts)


@pytest.fixture(scope="module")
def probe(plan: Plan, deployed: DeployReport) -> ProbeContext:
    return ProbeContext.for_inventory(plan, default_inventory(), timeout=180)


def on_host(plan: Plan, host: str, command: str) -> str:
    target: Target = resolve(plan, plan.host(host))
    done = target.run(f"sudo -n sh -c {shlex.quote(command)}" if target.user != "root" else command,
                      timeout=400)
    assert done.returncode == 0, done.stderr
    return done.stdout


def tenant(plan: Plan, flavor: str, index: int = 0) -> PlannedTenant:
    return [t for t in plan.tenants if t.flavor == flavor and t.status == "active"][index]


def test_every_matrix_tenant_is_healthy(plan: Plan, probe: ProbeContext) -> None:
    matrix = [t for t in plan.tenants if t.flavor.startswith("matrix") and t.status == "active"]
    results = health(probe, matrix)
    assert results and all(r.health == "ok" for r in results), [(r.tenant, r.checks) for r in results]


def test_agent_messages_a_colleague_on_a_dedicated_homeserver(plan: Plan, probe: ProbeContext) -> None:
    caen = tenant(plan, "matrix-dedicated")
    delivery = deliver(probe, caen.agents[0], caen.agents[1])
    assert delivery.delivered and not delivery.federated
    RESULTS["local"] = delivery


def test_agents_of_two_communes_on_two_hosts_federate(plan: Plan, probe: ProbeContext) -> None:
    first, second = pick_pair(plan.tenants)
    assert first.host != second.host
    delivery = deliver(probe, first.agents[0], second.agents[0])
    assert delivery.delivered and delivery.federated
    RESULTS["federated"] = delivery


def test_agents_of_a_shared_commune_talk_in_their_space(plan: Plan, probe: ProbeContext) -> None:
    commune = next(t for t in plan.tenants if t.flavor == "matrix-shared" and t.status == "active"
                   and len(t.agents) >= 2)

    async def join_commune_rooms() -> str:
        """Each agent finds the space and the room the deploy made for the commune (invited
        the first time, already joined on a later run) and joins them."""
        room_ids = set()
        for agent in commune.agents[:2]:
            async with logged_in(probe, agent) as client:
                assert isinstance(await client.sync(timeout=0), SyncResponse)
                rooms = {**client.invited_rooms, **client.rooms}
                space = [rid for rid, r in rooms.items() if r.room_type == "m.space"
                         or (r.name or "") == f"Commune de {commune.commune}"]
                room = [rid for rid, r in rooms.items() if (r.name or "") == f"{commune.commune} — général"]
                assert space and room, (agent.address, {rid: r.name for rid, r in rooms.items()})
                for rid in space + room:
                    if rid in client.invited_rooms:
                        await client.join(rid)
                room_ids.update(room)
        assert len(room_ids) == 1, room_ids
        return room_ids.pop()

    room_id = asyncio.run(join_commune_rooms())
    delivery = deliver(probe, commune.agents[0], commune.agents[1], room_id=room_id)
    assert delivery.delivered
    RESULTS["shared"] = delivery


def _post(probe: ProbeContext, url: str, body: dict[str, Any],
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async def run() -> tuple[int, dict[str, Any]]:
        async with _session(probe) as session, session.post(url, json=body, headers=headers or {}) as r:
            return r.status, await r.json(content_type=None)
    return asyncio.run(run())


def _get_raw(probe: ProbeContext, url: str) -> int:
    async def run() -> int:
        async with _session(probe) as session, session.get(URL(url, encoded=True)) as response:
            return response.status
    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["user", "guest"])
def test_registration_without_a_token_is_refused(plan: Plan, probe: ProbeContext, kind: str) -> None:
    for hs in homeservers(plan):
        status, body = _post(probe, f"https://{hs.server_name}/_matrix/client/v3/register?kind={kind}",
                             {"username": "intrus", "password": "Intrus-mot-de-passe-1",
                              "auth": {"type": "m.login.dummy"}})
        assert status == 403, (hs.server_name, status, body)
        assert "disabled" in body.get("error", "").lower(), (hs.server_name, body)


def test_admin_api_is_not_reachable_from_outside(plan: Plan, probe: ProbeContext) -> None:
    for hs in homeservers(plan):
        for port in ("", ":8448"):
            base = f"https://{hs.server_name}{port}"
            for path in ("/_synapse/admin/v1/server_version", "/_synapse/admin/v2/users",
                         "/_matrix/../_synapse/admin/v1/server_version",
                         "/_matrix/%2e%2e/_synapse/admin/v1/server_version", "/_synapse/metrics"):
                assert _get_raw(probe, base + path) in (403, 404), base + path
    # ...while it answers on loopback, where the deploy's admin account uses it.
    hs = homeservers(plan)[0]
    out = on_host(plan, hs.host, f"curl -s http://127.0.0.1:{hs.port}/_synapse/admin/v1/server_version")
    assert "server_version" in out


def test_a_homeserver_outside_the_allow_list_cannot_federate(plan: Plan, probe: ProbeContext) -> None:
    caen = tenant(plan, "matrix-dedicated")
    outsider = "intrus.example"
    assert outsider not in plan.federation.matrix

    async def invite_outsider() -> Any:
        async with logged_in(probe, caen.agents[0]) as client:
            created = await client.room_create(name="Relais — hors liste")
            return await client.room_invite(created.room_id, f"@quelqu.un:{outsider}")

    refused = asyncio.run(invite_outsider())
    assert isinstance(refused, RoomInviteError), refused  # outbound: Synapse refuses to send
    assert "denied" in (refused.message or "").lower() or refused.status_code == "M_FORBIDDEN", refused

    # Inbound: a request signed by a server outside the list is refused before any key check,
    # while the same (bogus) signature from an allowed server is refused by the key check.
    url = f"https://{caen.server_name}:8448/_matrix/federation/v1/query/profile?user_id={caen.agents[0].address}"

    async def ask(origin: str) -> tuple[int, dict[str, Any]]:
        header = (f'X-Matrix origin="{origin}",destination="{caen.server_name}",key="ed25519:a_test",'
                  'sig="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"')
        async with _session(probe) as session, session.get(
                URL(url, encoded=False), headers={"Authorization": header}) as response:
            return response.status, await response.json(content_type=None)

    status, body = asyncio.run(ask(outsider))
    assert status == 403 and "denied" in body.get("error", "").lower(), (status, body)
    allowed = next(name for name in plan.federation.matrix if name != caen.server_name)
    status, body = asyncio.run(ask(allowed))
    assert status == 401, (status, body)


def _handshake(address: str, name: str, probe: ProbeContext, *, maximum: ssl.TLSVersion,
               ciphers: str | None = None) -> bool:
    context = probe.ssl_context()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers)
    try:
        with socket.create_connection((address, 443), timeout=20) as raw, \
                context.wrap_socket(raw, server_hostname=name):
            return True
    except (ssl.SSLError, OSError):
        return False


def test_tls_is_1_2_or_later_with_anssi_ciphers(plan: Plan, probe: ProbeContext) -> None:
    names = address_map(plan)
    for hs in homeservers(plan):
        address = names[hs.server_name]
        assert _handshake(address, hs.server_name, probe, maximum=ssl.TLSVersion.TLSv1_2,
                          ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
        assert _handshake(address, hs.server_name, probe, maximum=ssl.TLSVersion.TLSv1_3)
        assert not _handshake(address, hs.server_name, probe, maximum=ssl.TLSVersion.TLSv1_2,
                              ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA")


def test_hardened_configuration_and_no_registration_secret_left(plan: Plan, probe: ProbeContext) -> None:
    for hs in homeservers(plan):
        config = yaml.safe_load(on_host(plan, hs.host, f"cat {hs.config_dir}/homeserver.yaml"))
        assert config["enable_registration"] is False and config["allow_guest_access"] is False
        assert config["report_stats"] is False and config["url_preview_enabled"] is False
        assert config["presence"] == {"enabled": False}
        assert config["federation_client_minimum_tls_version"] == "1.2"
        assert set(config["federation_domain_whitelist"]) == set(plan.federation.matrix)
        assert {k["server_name"] for k in config["trusted_key_servers"]} <= set(plan.federation.matrix)
        assert config["retention"]["enabled"] is True
        found = on_host(plan, hs.host, f"grep -rl registration_shared_secret {hs.config_dir} || true")
        assert found.strip() == ""
        unit = on_host(plan, hs.host, f"systemctl show -p User,MemoryMax,NoNewPrivileges {hs.unit}")
        assert f"User={hs.unix_user}" in unit and "NoNewPrivileges=yes" in unit
        assert f"MemoryMax={hs.memory_limit_mib * 1024 * 1024}" in unit


@pytest.fixture
def restarted_host(lab: Lab, plan: Plan) -> Iterator[str]:
    from relais.lab.hosts import HostMachine

    host = RESULTS["federated"].recipient.split(":", 1)[1]
    name = next(hs.host for hs in homeservers(plan) if hs.server_name == host)
    HostMachine(lab.paths, name).stop()
    lab.up()
    yield name


def test_a_restarted_host_brings_its_homeservers_back_with_their_messages(
        plan: Plan, probe: ProbeContext, restarted_host: str) -> None:
    for hs in homeservers_on(plan, restarted_host):
        on_host(plan, restarted_host, f"for i in $(seq 180); do curl -sf http://127.0.0.1:{hs.port}/health "
                                      f"&& exit 0; sleep 2; done; exit 1")
        assert on_host(plan, restarted_host, f"systemctl is-enabled {hs.unit}").strip() == "enabled"
    delivery = RESULTS["federated"]
    recipient = next(a for t in plan.tenants for a in t.agents if a.address == delivery.recipient)

    async def history() -> list[str]:
        async with logged_in(probe, recipient) as client:
            await wait_for(client, lambda r: delivery.room_id in r.rooms.join, 60)
            response = await client.room_messages(delivery.room_id, start="", limit=50)
            assert isinstance(response, RoomMessagesResponse), response
            return [e.body for e in response.chunk if isinstance(e, RoomMessageText)]

    assert delivery.body in asyncio.run(history())
    # ...and federation works again from the restarted host.
    again = deliver(probe, recipient, next(a for t in plan.tenants for a in t.agents
                                           if a.address == delivery.sender))
    assert again.delivered


def _login_status(probe: ProbeContext, agent: Any) -> tuple[int, dict[str, Any]]:
    server = agent.address.split(":", 1)[1]
    return _post(probe, f"https://{server}/_matrix/client/v3/login",
                 {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": agent.address},
                  "password": probe.secret(agent.password.ref)})


def test_suspended_tenants_serve_no_logins_and_keep_their_data(plan: Plan, probe: ProbeContext) -> None:
    from relais import tenant_ops
    from relais.cli.context import State, load_plan

    state = State(default_inventory())
    shared = tenant(plan, "matrix-shared")
    dedicated = tenant(plan, "matrix-dedicated", 1)
    files = {t.id: tenant_ops.commune_file(state.inventory, t) for t in (shared, dedicated)}
    before = {key: path.read_text() for key, path in files.items()}
    try:
        for t in (shared, dedicated):
            tenant_ops.apply_edit(files[t.id], tenant_ops.suspend_transform(t), lambda: load_plan(state))
        suspended = load_plan(state)
        assert deploy_matrix(suspended).ok
        status, body = _login_status(probe, shared.agents[0])
        assert status in (401, 403) and body.get("errcode") == "M_USER_LOCKED", (status, body)
        hs = next(h for h in homeservers(plan) if h.id == dedicated.id)
        assert on_host(plan, hs.host, f"systemctl is-active {hs.unit} || true").strip() != "active"
        assert on_host(plan, hs.host, f"systemctl is-enabled {hs.unit} || true").strip() == "disabled"
        assert on_host(plan, hs.host, f"test -d {hs.data_dir}/media && echo kept").strip() == "kept"
        for t in (shared, dedicated):
            tenant_ops.apply_edit(files[t.id], tenant_ops.resume_transform(
                tenant_ops.find_tenant(load_plan(state), t.id)), lambda: load_plan(state))
        assert deploy_matrix(load_plan(state)).ok
    finally:
        for key, path in files.items():
            path.write_text(before[key])
    assert _login_status(probe, shared.agents[0])[0] == 200
    assert _login_status(probe, dedicated.agents[0])[0] == 200
    # The shared commune's room and its earlier message are still there.
    assert deliver(probe, shared.agents[1], shared.agents[0], room_id=RESULTS["shared"].room_id).delivered
