"""Property: whatever YAML a person writes, the loader returns an Inventory or an
InventoryError — never another exception (and so never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.errors import InventoryError
from relais.inventory import Inventory, load_inventory
from relais.referential import Referential

from ..conftest import SHIPPED_INVENTORY

KEYS = ["version", "commune", "insee", "name", "siren", "contacts", "mairie", "dpo", "email",
        "tenant", "flavor", "domain", "agents", "seats", "retention", "messages", "logs", "status",
        "federation", "allow", "login", "syndicate", "sites", "hosts", "roles", "capacity", "ram",
        "disk", "vcpu", "provider", "address", "site", "admins", "ssh_keys", "defaults", "lab"]
VALUES = ["1", "14047", "Bayeux", "211400478", "xmpp", "matrix-shared", "active", "3y", "180d",
          "8GiB", "a@b.fr", "caen", "lab", "10.77.0.5", "", "~", "yes", "0x1F", "1e3", "2024-02-30"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
    st.sampled_from(VALUES), st.text(max_size=30),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), children, max_size=6),
    ),
    max_leaves=40,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _load(root: Path, ref: Referential) -> Inventory | InventoryError:
    try:
        return load_inventory(root, ref)
    except InventoryError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file and problem.message
            problem.format()
        return error


@SETTINGS
@given(document=documents)
def test_any_structure_as_a_commune_file(inventory_dir: Path, ref: Referential, document: object) -> None:
    (inventory_dir / "communes" / "14047-bayeux.yaml").write_text(
        yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _load(inventory_dir, ref)


@SETTINGS
@given(document=documents)
def test_any_structure_as_the_hosting_file(inventory_dir: Path, ref: Referential, document: object) -> None:
    (inventory_dir / "hosting.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    _load(inventory_dir, ref)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_a_commune_file(inventory_dir: Path, ref: Referential, raw: bytes) -> None:
    (inventory_dir / "communes" / "14047-bayeux.yaml").write_bytes(raw)
    _load(inventory_dir, ref)


@SETTINGS
@given(data=st.data())
def test_one_value_changed_in_a_valid_file(inventory_dir: Path, ref: Referential, data: st.DataObject) -> None:
    path = inventory_dir / "communes" / "14118-caen.yaml"
    lines = (SHIPPED_INVENTORY / "communes" / "14118-caen.yaml").read_text(encoding="utf-8").splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    key, sep, _ = lines[index].partition(":")
    replacement = data.draw(st.one_of(st.sampled_from(VALUES), st.text(max_size=20)))
    lines[index] = f"{key}{sep} {replacement}" if sep else replacement
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _load(inventory_dir, ref)


@pytest.mark.parametrize("text", ["*unknown_alias\n", "!!python/object:os.system {}\n",
                                  "a: !!binary ZZZ\n", "%YAML 9.9\n---\na: 1\n", "a: 1\n---\nb: 2\n"])
def test_hostile_yaml(inventory_dir: Path, ref: Referential, text: str) -> None:
    (inventory_dir / "communes" / "14047-bayeux.yaml").write_text(text, encoding="utf-8")
    result = _load(inventory_dir, ref)
    assert isinstance(result, InventoryError)
