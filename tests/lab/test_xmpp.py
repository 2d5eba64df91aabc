"""The xmpp flavor on real lab hosts: Prosody deployed from the Plan, checked with slixmpp
(TLS verified against the lab CA) and raw streams.

The example region has xmpp communes on two hosts (Étretat on msg-rouen-1): federation
between hosts is tested.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from relais.cli.context import default_inventory
from relais.deploy import DeployReport, deploy_plan
from relais.lab import Lab
from relais.plan import Plan, PlannedAgent, PlannedHost, PlannedTenant, SharedService
from relais.secrets import SecretStore
from relais.xmpp.config import conference_domain
from tests.lab.xmpp_helpers import Agent, Client, RawStream, open_client_stream, open_server_stream


def _xmpp_tenants(plan: Plan) -> list[PlannedTenant]:
    return [t for t in plan.tenants if t.flavor == "xmpp" and t.host and t.status == "active" and t.agents]


@pytest.fixture(scope="module")
def ca_file() -> Path:
    return default_inventory() / "pki" / "ca.crt"


@pytest.fixture(scope="module")
def store() -> SecretStore:
    return SecretStore.open(default_inventory())


def _agent(plan: Plan, store: SecretStore, tenant: PlannedTenant, index: int = 0) -> Agent:
    planned = tenant.agents[index]
    address = plan.host(tenant.host or "").address or ""
    return Agent(planned.address, store.get(planned.password.ref), address)


@pytest.fixture(scope="module")
def commune_with_two_agents(plan: Plan) -> PlannedTenant:
    tenants = [t for t in _xmpp_tenants(plan) if len(t.agents) >= 2]
    assert tenants, "the lab inventory needs an active xmpp commune with two agents"
    return tenants[0]


@pytest.fixture(scope="module")
def communes_on_two_hosts(plan: Plan) -> tuple[PlannedTenant, PlannedTenant]:
    tenants = _xmpp_tenants(plan)
    for a in tenants:
        for b in tenants:
            if a.host != b.host:
                return a, b
    pytest.fail("the lab inventory needs active xmpp communes on two hosts (the example region places Étretat on msg-rouen-1)")


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_passwords_stay_off_command_lines_and_markers_are_root_only(deployed: DeployReport, lab: Lab,
                                                                    plan: Plan, store: SecretStore) -> None:
    for service in plan.xmpp_services:
        listing = lab.exec(service.host, ["stat", "-c", "%a %U", "/var/lib/relais/xmpp/accounts"]).stdout
        assert listing.split() == ["700", "root"]
        config = lab.exec(service.host, ["sh", "-c", "cat /etc/prosody/prosody.cfg.lua /etc/prosody/relais.d/*"])
        journal = lab.exec(service.host, ["journalctl", "--no-pager", "-q"]).stdout
        for tenant_id in service.tenants:
            for agent in plan.tenant(tenant_id).agents:
                secret = store.get(agent.password.ref)
                assert secret not in config.stdout and secret not in journal


def test_two_agents_of_one_commune_exchange_a_message(deployed: DeployReport, plan: Plan, store: SecretStore,
                                                      commune_with_two_agents: PlannedTenant,
                                                      ca_file: Path) -> None:
    tenant = commune_with_two_agents

    async def scenario() -> str:
        alice = await Client(_agent(plan, store, tenant, 0), ca_file).start()
        bob = await Client(_agent(plan, store, tenant, 1), ca_file).start()
        alice.send_message(mto=bob.agent.jid, mbody="Bonjour de la mairie", mtype="chat")
        msg = await bob.next_message("Bonjour de la mairie")
        await alice.stop()
        await bob.stop()
        return str(msg["from"].bare)

    assert run(scenario()) == tenant.agents[0].address


def test_agents_of_communes_on_different_hosts_talk(deployed: DeployReport, plan: Plan, store: SecretStore,
                                                   communes_on_two_hosts: tuple[PlannedTenant, PlannedTenant],
                                                   ca_file: Path) -> None:
    a, b = communes_on_two_hosts

    async def scenario() -> tuple[str, str]:
        alice = await Client(_agent(plan, store, a), ca_file).start()
        bob = await Client(_agent(plan, store, b), ca_file).start()
        alice.send_message(mto=bob.agent.jid, mbody="Message inter-communes", mtype="chat")
        got = await bob.next_message("Message inter-communes")
        bob.send_message(mto=alice.agent.jid, mbody="Bien reçu", mtype="chat")
        back = await alice.next_message("Bien reçu")
        await alice.stop()
        await bob.stop()
        return str(got["from"].bare), str(back["from"].bare)

    assert run(scenario()) == (a.agents[0].address, b.agents[0].address)


def test_group_chat_room(deployed: DeployReport, plan: Plan, store: SecretStore,
                         commune_with_two_agents: PlannedTenant, ca_file: Path) -> None:
    tenant = commune_with_two_agents
    room = f"conseil-municipal@{conference_domain(tenant.domain or '')}"

    async def scenario() -> tuple[str, str]:
        alice = await Client(_agent(plan, store, tenant, 0), ca_file).start()
        bob = await Client(_agent(plan, store, tenant, 1), ca_file).start()
        await alice.join(room, "alice")
        await bob.join(room, "bob")
        alice.send_message(mto=room, mbody="Ordre du jour", mtype="groupchat")
        while True:
            msg = await bob.next_message("Ordre du jour")
            if msg["type"] == "groupchat":
                break
        await alice.stop()
        await bob.stop()
        return str(msg["from"].bare), str(msg["from"].resource)

    assert run(scenario()) == (room, "alice")


def test_in_band_registration_is_refused(deployed: DeployReport, plan: Plan,
                                         commune_with_two_agents: PlannedTenant, ca_file: Path) -> None:
    tenant = commune_with_two_agents
    domain = tenant.domain or ""
    with RawStream(plan.host(tenant.host or "").address or "", 5222) as stream:
        stream.send(open_client_stream(domain))
        features = stream.read_until(r"</stream:features>")
        assert "urn:ietf:params:xml:ns:xmpp-tls" in features
        stream.starttls(domain, ca_file)  # verified against the lab CA
        stream.send(open_client_stream(domain))
        features = stream.read_until(r"</stream:features>")
        assert "http://jabber.org/features/iq-register" not in features
        stream.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>"
                    "<username>intrus</username><password>motdepasse123</password></query></iq>")
        answer = stream.read_until(r"id=.reg1.|</stream:stream>")
    assert re.search(r"type=.error.|<stream:error|not-authorized|service-unavailable", answer), answer
    assert "type='result'" not in answer and 'type="result"' not in answer


def test_domain_outside_the_allow_list_cannot_federate(deployed: DeployReport, plan: Plan, store: SecretStore,
                                                       communes_on_two_hosts: tuple[PlannedTenant, PlannedTenant],
                                                       ca_file: Path) -> None:
    a, b = communes_on_two_hosts
    address = plan.host(a.host or "").address or ""
    # Incoming: a server announcing a domain outside the allow-list is turned away...
    with RawStream(address, 5269) as stream:
        stream.send(open_server_stream("intrus.example", a.domain or ""))
        refused = stream.read_until(r"</stream:stream>|</stream:error>")
    assert "policy-violation" in refused, refused
    # ... while a syndicate domain gets the usual features (it would then authenticate with TLS).
    with RawStream(address, 5269) as stream:
        stream.send(open_server_stream(b.domain or "", a.domain or ""))
        welcomed = stream.read_until(r"</stream:features>")
    assert "urn:ietf:params:xml:ns:xmpp-tls" in welcomed and "policy-violation" not in welcomed

    # Outgoing: an agent writing to a domain outside the list gets a policy-violation error.
    async def scenario() -> str:
        alice = await Client(_agent(plan, store, a), ca_file).start()
        alice.send_message(mto="quelquun@intrus.example", mbody="fuite ?", mtype="chat")
        error = await asyncio.wait_for(alice.errors.get(), 20)
        await alice.stop()
        return str(error)

    error = str(run(scenario()))
    # (slixmpp's list of conditions predates policy-violation: read the stanza itself)
    assert 'type="error"' in error and "<policy-violation" in error, error


def _with_extra_commune(plan: Plan, host_name: str, model: PlannedTenant) -> tuple[Plan, PlannedTenant]:
    """The Plan plus one more xmpp commune on `host_name` (its agents reuse the model's secrets)."""
    domain = "essai-rechargement.messagerie.normandie.example"
    agents = [PlannedAgent(name=a.name, email=a.email, login=a.login, address=f"{a.login}@{domain}",
                           password=a.password) for a in model.agents]
    # (no backup job: the test's commune has no secrets of its own in the vault)
    no_backup = model.backup.model_copy(update={"target_host": None, "repository": None})
    extra = model.model_copy(update={"id": "00000", "insee": "00000", "commune": "Essai", "domain": domain,
                                     "server_name": domain, "host": host_name, "agents": agents,
                                     "backup": no_backup})
    hosts: list[PlannedHost] = [h.model_copy(update={"tenants": [*h.tenants, extra.id]})
                                if h.name == host_name else h for h in plan.hosts]
    services: list[SharedService] = [s.model_copy(update={"tenants": [*s.tenants, extra.id]})
                                     if s.host == host_name else s for s in plan.xmpp_services]
    federation = plan.federation.model_copy(update={"xmpp": sorted([*plan.federation.xmpp, domain])})
    grown = plan.model_copy(update={"tenants": [*plan.tenants, extra], "hosts": hosts,
                                    "xmpp_services": services, "federation": federation})
    return grown, extra


@pytest.fixture
def restore_plan(plan: Plan) -> Iterator[None]:
    yield
    hosts = sorted({s.host for s in plan.xmpp_services})
    assert deploy_plan(plan, default_inventory(), limit=hosts).ok


def test_adding_a_commune_reloads_without_dropping_sessions(deployed: DeployReport, lab: Lab, plan: Plan,
                                                            store: SecretStore, ca_file: Path,
                                                            commune_with_two_agents: PlannedTenant,
                                                            restore_plan: None) -> None:
    tenant = commune_with_two_agents
    host_name = tenant.host or ""
    pid_before = lab.exec(host_name, ["systemctl", "show", "-p", "MainPID", "--value", "prosody"]).stdout.strip()
    grown, extra = _with_extra_commune(plan, host_name, tenant)

    async def scenario() -> tuple[int, int, str]:
        alice = await Client(_agent(plan, store, tenant, 0), ca_file).start()
        bob = await Client(_agent(plan, store, tenant, 1), ca_file).start()
        report = await asyncio.to_thread(deploy_plan, grown, default_inventory(), limit=[host_name])
        assert report.ok, [o.as_dict() for h in report.hosts for o in h.operations if not o.success]
        # The sessions opened before the deploy still carry messages afterwards.
        alice.send_message(mto=bob.agent.jid, mbody="Toujours là", mtype="chat")
        await bob.next_message("Toujours là")
        newcomer = await Client(_agent(grown, store, extra, 0), ca_file).start()
        newcomer.send_message(mto=alice.agent.jid, mbody="Nouvelle commune", mtype="chat")
        got = await alice.next_message("Nouvelle commune")
        disconnects = alice.disconnects + bob.disconnects
        await newcomer.stop()
        await alice.stop()
        await bob.stop()
        return disconnects, 0, str(got["from"].bare)

    disconnects, _, sender = run(scenario())  # type: ignore[misc]
    assert disconnects == 0
    assert sender == extra.agents[0].address
    pid_after = lab.exec(host_name, ["systemctl", "show", "-p", "MainPID", "--value", "prosody"]).stdout.strip()
    assert pid_after == pid_before  # reloaded, not restarted


def test_metrics_endpoint_on_the_private_address(deployed: DeployReport, lab: Lab, plan: Plan) -> None:
    service = plan.xmpp_services[0]
    host = plan.host(service.host)
    answer = lab.exec(service.host, ["curl", "-sf", f"http://127.0.0.1:{service.metrics_port}/metrics"])
    assert answer.returncode == 0 and "prosody_" in answer.stdout
    listening = lab.exec(service.host, ["ss", "-Hltn", f"sport = :{service.metrics_port}"]).stdout
    assert f"{host.address}:{service.metrics_port}" in listening
