"""The planner: placement rules, stability, capacity, backups, the Plan's shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais import lock as lock_mod
from relais.errors import InventoryError, LockError
from relais.lock import Placement, read_lock, render_lock, write_lock
from relais.plan import NotPlanned, NotPlannedError, Plan
from relais.planner import PlanResult, plan_directory
from relais.referential import Referential

from .inventories import DEFAULT_HOSTS, host_line, remove_commune, write_commune, write_hosting

NORMANDIE = sorted(["14118", "76540", "50502", "14047", "14327", "14283", "50587", "76350",
                    "76390", "61169", "50129", "27229", "61001", "76217", "76351", "27681", "14366"])
FLAVORS = ["xmpp", "matrix-dedicated", "matrix-shared"]


def plan_and_lock(root: Path, ref: Referential) -> PlanResult:
    result = plan_directory(root, referential=ref)
    write_lock(root, result.lock)
    return result


def placements(result: PlanResult) -> dict[str, tuple[str | None, int | None, str | None]]:
    return {t.id: (t.host, t.port, t.backup.target_host) for t in result.plan.tenants if t.host}


def test_example_region_plans(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    assert plan.schema_ == "relais.plan/v1"
    ids = [t.id for t in plan.tenants]
    assert len(ids) == len(set(ids)) == 11
    for tenant in plan.tenants:
        assert tenant.id == tenant.insee
        if tenant.status in ("active", "approved", "suspended"):
            assert tenant.host is not None
            host = plan.host(tenant.host)
            assert "messaging" in host.roles
            assert tenant.id in host.tenants
        else:
            assert tenant.host is None
    assert not plan.unplaced


def test_plan_round_trips_through_its_schema(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    data = json.loads(json.dumps(plan.to_json()))
    again = Plan.model_validate(data)
    assert again.to_json() == plan.to_json()


LEFT_OUT = ("agents", "secrets", "probes")
"""The tenants' parts a Plan built for the policies leaves out (and the Plan's `dns`)."""


def test_the_plan_for_policies_differs_only_by_the_parts_left_out(tmp_path: Path, ref: Referential) -> None:
    # Every flavor, a commune's own domain and an unplaced tenant: every branch of the planner.
    write_hosting(tmp_path, [host_line("msg-a", "caen", "messaging, proxy, database", ram="3GiB"),
                             host_line("backup-b", "rouen", "backup")], shared="msg-a")
    for index, insee in enumerate(NORMANDIE):
        flavor = FLAVORS[index % 3]
        path = write_commune(tmp_path, ref, insee, flavor, seats=1 + 37 * index)
        path.write_text(path.read_text()
                        + (f"  domain: ville-{insee}.fr\n" if flavor == "matrix-dedicated" else "")
                        + "  agents:\n    - {name: Jeanne Lefèvre, email: j.lefevre@commune.example.fr}\n")
    full = plan_directory(tmp_path, referential=ref).plan
    lean = plan_directory(tmp_path, referential=ref, operational=False).plan
    assert full.unplaced and {t.flavor for t in full.tenants if t.host} == set(FLAVORS)
    assert any(t.own_domain for t in full.tenants) and all(t.agents for t in full.tenants)
    assert lean.model_dump(exclude={"dns": True, "tenants": {"__all__": set(LEFT_OUT)}}) == full.model_dump(
        exclude={"dns": True, "tenants": {"__all__": set(LEFT_OUT)}})
    assert all(isinstance(getattr(t, part), NotPlanned) for t in lean.tenants for part in LEFT_OUT)
    assert isinstance(lean.dns, NotPlanned)


@pytest.mark.parametrize("use", [
    lambda p: list(p.tenants[0].agents), lambda p: len(p.tenants[0].secrets), lambda p: bool(p.dns),
    lambda p: p.tenants[0].probes[0], lambda p: "x" in p.dns, lambda p: p.dns == [],
    lambda p: p.dns.append("x"), lambda p: p.tenants[0].agents.extend([]),
])
def test_a_part_left_out_refuses_any_use(inventory_dir: Path, ref: Referential,
                                         use: Callable[[Plan], object]) -> None:
    lean = plan_directory(inventory_dir, referential=ref, operational=False).plan
    with pytest.raises(NotPlannedError, match="without its agents, secret references"):
        use(lean)


def test_plan_schema_document_is_current() -> None:
    shipped = Path(__file__).resolve().parents[2] / "docs" / "plan.schema.json"
    expected = Plan.model_json_schema(by_alias=True)
    assert json.loads(shipped.read_text()) == expected, "regenerate: relais plan --schema > docs/plan.schema.json"


def test_no_secret_values_in_the_plan(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    for tenant in plan.tenants:
        for secret in tenant.secrets:
            assert secret.ref.startswith(f"tenants/{tenant.id.lower()}/")
        for agent in tenant.agents:
            assert agent.password.ref == f"tenants/{tenant.id.lower()}/agents/{agent.login}"


def test_derived_names(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    caen = plan.tenant("14118")
    assert (caen.server_name, caen.own_domain, caen.unix_user, caen.database) == (
        "caen.fr", True, "synapse-14118", "synapse_14118")
    rouen = plan.tenant("76540")
    assert rouen.server_name == "rouen.messagerie.normandie.example" and not rouen.own_domain
    bayeux = plan.tenant("14047")
    assert bayeux.domain is None and bayeux.server_name == "matrix.messagerie.normandie.example"
    assert bayeux.host == "msg-rouen-1"  # the shared homeserver's host
    assert bayeux.agents[0].address == "@bayeux.chloe.girard:matrix.messagerie.normandie.example"
    loges = plan.tenant("76390")
    assert loges.agents[0].address == "anne.lefrancois@xmpp.lesloges.fr"
    srv = {r.name: r for r in plan.dns if r.type == "SRV"}
    record = srv["_xmpp-client._tcp.xmpp.lesloges.fr"]
    assert record.managed_by == "commune" and record.value.startswith("0 5 5222 ")
    # Dedicated homeservers on one host never share a port.
    ports = [(t.host, t.port) for t in plan.tenants if t.flavor == "matrix-dedicated"]
    assert len(ports) == len(set(ports))


def test_backup_is_on_another_site(inventory_dir: Path, ref: Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    for tenant in plan.tenants:
        if tenant.host is None:
            continue
        target = tenant.backup.target_host
        assert target is not None
        assert "backup" in plan.host(target).roles
        assert plan.host(target).site != plan.host(tenant.host).site


def test_no_backup_host_elsewhere_leaves_target_empty(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path, [DEFAULT_HOSTS[0], DEFAULT_HOSTS[1], DEFAULT_HOSTS[2]])
    write_commune(tmp_path, ref, "14118", "xmpp")
    result = plan_directory(tmp_path, referential=ref)
    tenant = result.plan.tenant("14118")
    host_site = result.plan.host(tenant.host or "").site
    if host_site == "caen":
        assert tenant.backup.target_host is None
    else:
        assert tenant.backup.target_host == "bk-caen"


def test_capacity_overflow_is_reported_not_overcommitted(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path, [
        host_line("msg-a", "caen", "messaging", ram="1GiB"),
        host_line("msg-b", "rouen", "messaging", ram="1GiB"),
        host_line("bk", "rouen", "backup", disk="10TiB"),
    ])
    for insee in NORMANDIE[:6]:
        write_commune(tmp_path, ref, insee, "matrix-dedicated", seats=50)
    plan = plan_directory(tmp_path, referential=ref).plan
    assert plan.unplaced, "six 260 MiB homeservers cannot fit in two 1 GiB hosts"
    for host in plan.hosts:
        assert host.used.ram_mib <= host.capacity.ram_mib
        assert host.used.disk_mib <= host.capacity.disk_mib
    for item in plan.unplaced:
        assert item.missing_ram_mib > 0
        assert plan.tenant(item.tenant).host is None
    placed = [t for t in plan.tenants if t.host]
    assert len(placed) + len(plan.unplaced) == 6


def test_lock_keeps_placements_when_the_lock_host_changes_role(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path)
    write_commune(tmp_path, ref, "14118", "matrix-dedicated")
    first = plan_and_lock(tmp_path, ref)
    host = first.plan.tenant("14118").host
    hosting = (tmp_path / "hosting.yaml").read_text()
    (tmp_path / "hosting.yaml").write_text(hosting.replace(f"{host}: {{site", f"{host}-renamed: {{site"))
    if host == "msg-b":  # the shared homeserver's host is named too
        text = (tmp_path / "hosting.yaml").read_text().replace("{host: msg-b}", "{host: msg-a}")
        (tmp_path / "hosting.yaml").write_text(text)
    second = plan_directory(tmp_path, referential=ref)
    assert [u.tenant for u in second.plan.unplaced] == ["14118"]
    assert "no longer declared" in second.plan.unplaced[0].reason


def test_xmpp_tenants_share_one_prosody(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path)
    for insee in NORMANDIE[:8]:
        write_commune(tmp_path, ref, insee, "xmpp")
    plan = plan_directory(tmp_path, referential=ref).plan
    hosts = {t.host for t in plan.tenants}
    assert len(hosts) == 1
    assert len(plan.xmpp_services) == 1 and len(plan.xmpp_services[0].tenants) == 8


def test_requested_and_offboarded_hold_no_capacity(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path)
    write_commune(tmp_path, ref, "14118", "matrix-dedicated", status="requested")
    write_commune(tmp_path, ref, "76540", "matrix-dedicated", status="offboarded")
    result = plan_directory(tmp_path, referential=ref)
    assert all(t.host is None for t in result.plan.tenants)
    assert result.lock == {}


def test_lock_file_round_trip(tmp_path: Path, ref: Referential) -> None:
    write_hosting(tmp_path)
    for insee in NORMANDIE[:5]:
        write_commune(tmp_path, ref, insee, FLAVORS[int(insee) % 3] if insee.isdigit() else "xmpp")
    result = plan_and_lock(tmp_path, ref)
    assert read_lock(tmp_path) == result.lock
    assert render_lock(read_lock(tmp_path)) == (tmp_path / "placements.lock").read_text()
    again = plan_directory(tmp_path, referential=ref)
    assert again.lock == result.lock
    assert {t.placement for t in again.plan.tenants} == {"locked"}


LOCK_AS_WRITTEN = render_lock({
    "14118": Placement("msg-a", 3, "backup-b"), "2A004": Placement("msg-b", None, "backup-a"),
    "76540": Placement("msg-a", 0, None), "27229": Placement("msg-b"),
})


def lock_by_yaml(root: Path) -> dict[str, Placement]:
    """The lock as the YAML path reads it (what `read_lock` gives for a hand-edited file)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lock_mod, "_as_written", lambda text: None)
        return read_lock(root)


def test_lock_as_written_reads_as_yaml_does(tmp_path: Path) -> None:
    (tmp_path / "placements.lock").write_text(LOCK_AS_WRITTEN)
    assert read_lock(tmp_path) == lock_by_yaml(tmp_path) == {
        "14118": Placement("msg-a", 3, "backup-b"), "2A004": Placement("msg-b", None, "backup-a"),
        "76540": Placement("msg-a", 0, None), "27229": Placement("msg-b", None, None)}


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('{host: msg-a, slot: 3', '{ host: msg-c, slot: 3'),   # spacing
    lambda t: t.replace('"76540"', "'76540'"),                                   # quotes
    lambda t: t + "  # moved 27229 by hand\n",                                   # a comment
    lambda t: t.replace("  \"27229\": {host: msg-b}\n",
                        "  \"27229\":\n    host: msg-c\n    slot: 7\n"),     # block style
])
def test_a_lock_edited_by_hand_is_read_as_yaml(tmp_path: Path, edit: Callable[[str], str]) -> None:
    (tmp_path / "placements.lock").write_text(edit(LOCK_AS_WRITTEN))
    assert lock_mod._as_written(edit(LOCK_AS_WRITTEN)) is None
    assert read_lock(tmp_path) == lock_by_yaml(tmp_path)


def test_a_host_yaml_reads_as_a_word_is_refused_as_before(tmp_path: Path) -> None:
    (tmp_path / "placements.lock").write_text(render_lock({"14118": Placement("on")}))
    with pytest.raises(LockError, match=r"expected \{host: NAME"):
        read_lock(tmp_path)

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flavors=st.lists(st.sampled_from(FLAVORS), min_size=len(NORMANDIE), max_size=len(NORMANDIE)),
    seats=st.lists(st.integers(1, 400), min_size=len(NORMANDIE), max_size=len(NORMANDIE)),
    first=st.sets(st.sampled_from(NORMANDIE), min_size=1),
    change=st.sampled_from(NORMANDIE),
)
def test_placement_is_stable_under_insertion_and_removal(
    tmp_path_factory: pytest.TempPathFactory, ref: Referential,
    flavors: list[str], seats: list[int], first: set[str], change: str,
) -> None:
    """Adding or removing one commune never moves another tenant (host, port, backup)."""
    root = tmp_path_factory.mktemp("inv")
    # Small hosts, so capacity matters and some tenants may not fit.
    write_hosting(root, [
        host_line("msg-a", "caen", "messaging, proxy, database", ram="2GiB", disk="60GiB"),
        host_line("msg-b", "rouen", "messaging, proxy, database", ram="2GiB", disk="60GiB"),
        host_line("msg-c", "rouen", "messaging", ram="3GiB", disk="60GiB"),
        host_line("bk-caen", "caen", "backup", disk="1TiB"),
        host_line("bk-rouen", "rouen", "backup", disk="1TiB"),
    ])
    spec = {insee: (flavors[i], seats[i]) for i, insee in enumerate(NORMANDIE)}
    for insee in sorted(first):
        write_commune(root, ref, insee, *spec[insee])
    before = placements(plan_and_lock(root, ref))

    if change in first:
        remove_commune(root, ref, change)
    else:
        write_commune(root, ref, change, *spec[change])
    after = plan_and_lock(root, ref)
    moved = {k: (v, placements(after).get(k)) for k, v in before.items()
             if k != change and placements(after).get(k) != v}
    assert not moved
    for host in after.plan.hosts:
        assert host.used.ram_mib <= host.capacity.ram_mib


def test_parallel_loading_gives_the_same_plan_and_problems(
    tmp_path: Path, ref: Referential, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large inventories are parsed by forked helpers; the result must not depend on it."""
    import relais.inventory as inventory_mod

    write_hosting(tmp_path)
    for insee in NORMANDIE:
        write_commune(tmp_path, ref, insee, FLAVORS[int(insee[:2]) % 3])
    broken = write_commune(tmp_path, ref, "14118", "xmpp")
    broken.write_text(broken.read_text().replace("flavor: xmpp", "flavour: xmpp\n  flavor: xmpp"))
    results = []
    for workers, threshold in (("1", 10**9), ("2", 1), ("3", 1)):
        monkeypatch.setenv("RELAIS_WORKERS", workers)
        monkeypatch.setattr(inventory_mod, "PARALLEL_MIN_FILES", threshold)
        with pytest.raises(InventoryError) as caught:
            plan_directory(tmp_path, referential=ref)
        results.append(caught.value.format())
    assert len(results) == 3 and results[0] == results[1] == results[2]
    assert "tenant.flavour" in results[0]
    broken.write_text(broken.read_text().replace("flavour: xmpp\n  ", ""))
    plans = []
    for workers, threshold in (("1", 10**9), ("2", 1)):
        monkeypatch.setenv("RELAIS_WORKERS", workers)
        monkeypatch.setattr(inventory_mod, "PARALLEL_MIN_FILES", threshold)
        plans.append(plan_directory(tmp_path, referential=ref).plan.to_json())
    assert plans[0] == plans[1]


def test_the_referential_loads_while_files_are_read(
    tmp_path: Path, ref: Referential, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given as its loader, the referential is loaded once the helpers have started; if it
    cannot be, the error is the loader's and no helper is left behind."""
    import os

    import relais.inventory as inventory_mod
    from relais.errors import ReferentialError
    from relais.inventory import load_inventory

    write_hosting(tmp_path)
    for insee in NORMANDIE:
        write_commune(tmp_path, ref, insee, FLAVORS[int(insee[:2]) % 3])
    monkeypatch.setenv("RELAIS_WORKERS", "2")
    monkeypatch.setattr(inventory_mod, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(inventory_mod, "_CHUNK", 2)
    calls: list[int] = []

    def loader() -> Referential:
        calls.append(os.getpid())
        return ref

    assert load_inventory(tmp_path, loader) == load_inventory(tmp_path, ref)
    assert calls == [os.getpid()]

    def broken() -> Referential:
        raise ReferentialError("the official list of communes is not cached")

    with pytest.raises(ReferentialError, match="not cached"):
        load_inventory(tmp_path, broken)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no helper left, running or unreaped


def test_a_lock_that_never_ends_is_refused(tmp_path: Path) -> None:
    (tmp_path / "placements.lock").symlink_to("/dev/zero")
    with pytest.raises(LockError, match="larger than 64 MB"):
        read_lock(tmp_path)
