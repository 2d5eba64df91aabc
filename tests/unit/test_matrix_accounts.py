"""Accounts, passwords and databases converge only when the Plan's wish changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais.matrix import scram
from relais.matrix.accounts import desired_accounts, password_digest, state_is_current
from relais.matrix.facts import JsonFile, Listing, PostgresState
from relais.matrix.homeservers import Homeserver, homeservers
from relais.plan import Plan
from relais.planner import plan_directory
from relais.referential import Referential


@pytest.fixture
def plan(inventory_dir: Path, ref: Referential) -> Plan:
    return plan_directory(inventory_dir, referential=ref).plan


def secrets(overrides: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return lambda ref: (overrides or {}).get(ref, f"secret-of-{ref}")


def hs_of(plan: Plan, hs_id: str) -> Homeserver:
    return next(hs for hs in homeservers(plan) if hs.id == hs_id)


def applied(request_payload: dict) -> dict:  # type: ignore[type-arg]
    """The state file hostsync writes after applying a request."""
    return {"digest": request_payload["digest"], "users": request_payload["desired"]["users"],
            "spaces": {k: {**v, "space": "!s", "room": "!r"}
                       for k, v in request_payload["desired"]["spaces"].items()}}


def test_state_written_after_apply_makes_the_next_deploy_a_no_op(plan: Plan) -> None:
    hs = hs_of(plan, "14118")
    first = desired_accounts(hs, secrets(), None)
    assert not state_is_current(None, first)
    state = applied(first.payload)
    again = desired_accounts(hs, secrets(), state)
    assert state_is_current(state, again)
    assert "secret-of" not in str(state)  # the state keeps digests, never passwords


def test_a_new_password_changes_the_digest(plan: Plan) -> None:
    hs = hs_of(plan, "14118")
    state = applied(desired_accounts(hs, secrets(), None).payload)
    agent = hs.communes[0].agents[0]
    rotated = desired_accounts(hs, secrets({agent.password.ref: "new"}), state)
    assert not state_is_current(state, rotated)
    assert rotated.payload["desired"]["users"][agent.address]["password"] == password_digest(agent.address, "new")


def test_agents_removed_from_the_inventory_are_locked_not_deleted(plan: Plan) -> None:
    hs = hs_of(plan, "14118")
    state = applied(desired_accounts(hs, secrets(), None).payload)
    state["users"]["@ancien:caen.fr"] = {"displayname": "Ancien", "locked": False, "password": "x"}
    request = desired_accounts(hs, secrets(), state)
    assert request.payload["desired"]["users"]["@ancien:caen.fr"]["locked"] is True
    assert "@ancien:caen.fr" not in request.payload["passwords"]


def test_suspended_shared_commune_is_locked_and_has_a_space(plan: Plan) -> None:
    hs = hs_of(plan, "shared")
    commune = hs.communes[0]
    suspended = Homeserver(**{**hs.__dict__, "communes": (commune.model_copy(update={"status": "suspended"}),
                                                          *hs.communes[1:])})
    users = desired_accounts(suspended, secrets(), None).payload["desired"]["users"]
    assert all(users[a.address]["locked"] for a in commune.agents)
    spaces = desired_accounts(hs, secrets(), None).payload["desired"]["spaces"]
    assert set(spaces) == {t.id for t in hs.communes}
    assert spaces[commune.id]["members"] == sorted(a.address for a in commune.agents)
    assert desired_accounts(hs_of(plan, "14118"), secrets(), None).payload["desired"]["spaces"] == {}


def test_scram_verifier_matches_only_its_password() -> None:
    stored = scram.verifier("correct horse", salt=b"0123456789abcdef")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert scram.matches(stored, "correct horse")
    assert not scram.matches(stored, "wrong")
    assert not scram.matches("md5abcdef", "correct horse")
    assert not scram.matches(None, "correct horse")
    assert not scram.matches("SCRAM-SHA-256$broken", "x")


def test_sql_only_for_what_differs() -> None:
    from deploys.database import render_hba, sql_statements

    empty = {"roles": {}, "databases": {}}
    created = sql_statements({"synapse_1": "pw"}, empty)
    assert created[0].startswith("CREATE ROLE synapse_1 LOGIN PASSWORD 'SCRAM-SHA-256$")
    assert "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" in created[1]
    assert "pw'" not in " ".join(created)  # the plain password never reaches SQL
    current = {"roles": {"synapse_1": scram.verifier("pw")}, "databases": {"synapse_1": "C"}}
    assert sql_statements({"synapse_1": "pw"}, current) == []
    changed = sql_statements({"synapse_1": "other"}, current)
    assert len(changed) == 1 and changed[0].startswith("ALTER ROLE synapse_1")
    hba = render_hba(["synapse_1"])
    assert "host    synapse_1,synapse_1_drill synapse_1       127.0.0.1/32    scram-sha-256" in hba
    assert "trust" not in hba and "0.0.0.0" not in hba


def test_fact_processing() -> None:
    state = PostgresState().process(["role|synapse_1|SCRAM-SHA-256$x", "db|synapse_1|C", "garbage"])
    assert state == {"roles": {"synapse_1": "SCRAM-SHA-256$x"}, "databases": {"synapse_1": "C"}}
    assert JsonFile().process(['{"digest": "a"}']) == {"digest": "a"}
    assert JsonFile().process([]) is None and JsonFile().process(["not json"]) is None
    assert Listing().process(["/b", "", "/a"]) == ["/a", "/b"]
