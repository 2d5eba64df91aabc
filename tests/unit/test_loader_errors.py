"""Every kind of broken declaration gives one clear, located problem — table-driven.

Each file in tests/fixtures/loader-errors/ is one case: its header names the file
name it is installed under (next to the shipped example region) and the problem
expected (line, field, words of the message and of the hint).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from relais.errors import InventoryError
from relais.inventory import load_inventory
from relais.referential import Referential

CASES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "loader-errors"
CASES = sorted(CASES_DIR.glob("*.yaml"))
HEADER = re.compile(
    rb'# file: (?P<file>\S+)\n# expect: line=(?:None|\|(?P<line>[^|]+)\|) field=(?P<field>\S*) '
    rb'message="(?P<message>[^"]*)" hint=(?:"(?P<hint>[^"]*)")?'
)


def _expectation(case: Path) -> dict[str, str | None]:
    match = HEADER.match(case.read_bytes())
    assert match, f"{case.name}: malformed header"
    return {k: (v.decode() if v is not None else None) for k, v in match.groupdict().items()}


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_commune_file_gives_one_located_problem(
    case: Path, inventory_dir: Path, ref: Referential
) -> None:
    expected = _expectation(case)
    communes = inventory_dir / "communes"
    for shipped in communes.glob("14047-*.yaml"):  # cases reuse Bayeux
        shipped.unlink()
    shutil.copyfile(case, communes / str(expected["file"]))

    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_dir, ref)

    problems = caught.value.problems
    assert len(problems) == 1, [p.format() for p in problems]
    problem = problems[0]
    assert problem.file == f"inventory/communes/{expected['file']}"
    if expected["line"] is None:
        assert problem.line is None
    else:  # the line the problem points at, named by its content
        assert problem.line is not None
        text = case.read_bytes().split(b"\n")[problem.line - 1].decode("latin-1")
        assert expected["line"] in text, (problem.line, text)
    assert problem.field == expected["field"]
    assert expected["message"] in problem.message + " " + (problem.expected or "")
    if expected["hint"]:
        assert problem.hint is not None and expected["hint"] in problem.hint
    # The CLI prints file:line: field: message — what an operator's editor can jump to.
    first_line = problem.format().splitlines()[0]
    assert first_line.startswith(problem.file)


def test_all_problems_reported_in_one_run(inventory_dir: Path, ref: Referential) -> None:
    communes = inventory_dir / "communes"
    for name in ("int-insee", "bad-email", "wrong-name"):
        case = CASES_DIR / f"{name}.yaml"
        target = communes / f"{_expectation(case)['file']}"
        target.unlink(missing_ok=True)
    shutil.copyfile(CASES_DIR / "bad-email.yaml", communes / "14047-bayeux.yaml")
    text = (CASES_DIR / "wrong-name.yaml").read_text().replace("14047", "14118").replace(
        "Bayeu", "Caem").replace("211400478", "211401187")
    (communes / "14118-caen.yaml").write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_dir, ref)
    fields = sorted((p.file.rsplit("/", 1)[1], p.field) for p in caught.value.problems)
    assert fields == [("14047-bayeux.yaml", "contacts.mairie"), ("14118-caen.yaml", "commune.name")]


def test_accents_and_case_are_forgiven_with_a_hint(inventory_dir: Path, ref: Referential) -> None:
    path = inventory_dir / "communes" / "14327-herouville-saint-clair.yaml"
    path.write_text(path.read_text().replace("name: Hérouville-Saint-Clair", "name: herouville saint clair"))
    inventory = load_inventory(inventory_dir, ref)
    assert [w.field for w in inventory.warnings] == ["commune.name"]
    assert "Hérouville-Saint-Clair" in (inventory.warnings[0].hint or "")


HOSTING_CASES = [
    ("unknown site", "site: rouen\n    roles: [backup]", "site: rouan\n    roles: [backup]",
     "hosts.backup-rouen.site", "unknown site 'rouan'", "did you mean 'rouen'"),
    ("size without unit", "capacity: {ram: 2GiB, disk: 1TiB, vcpu: 2}",
     "capacity: {ram: 2048, disk: 1TiB, vcpu: 2}", "hosts.backup-rouen.capacity.ram",
     "invalid value 2048", None),
    ("unknown role", "roles: [backup]", "roles: [backups]", "hosts.backup-rouen.roles[0]",
     "invalid value 'backups'", "did you mean 'backup'"),
    ("address reused", "address: 10.77.0.21", "address: 10.77.0.11",
     "hosts.backup-rouen.address", "already used by host 'msg-caen-1'", None),
    ("lab address outside subnet", "address: 10.77.0.21", "address: 10.78.0.21",
     "hosts.backup-rouen.address", "outside the lab subnet", None),
    ("shared homeserver on unknown host", "host: msg-rouen-1\n", "host: msg-rouen-2\n",
     "shared_homeserver.host", "unknown host 'msg-rouen-2'", "did you mean 'msg-rouen-1'"),
    ("bad ssh key", "ssh_keys:\n      - ssh-ed25519", "ssh_keys:\n      - ssh-dss",
     "admins.claire.ssh_keys[0]", "OpenSSH public key", None),
]


@pytest.mark.parametrize(("old", "new", "field", "message", "hint"),
                         [c[1:] for c in HOSTING_CASES], ids=[c[0] for c in HOSTING_CASES])
def test_broken_hosting_file(inventory_dir: Path, ref: Referential, old: str, new: str,
                             field: str, message: str, hint: str | None) -> None:
    path = inventory_dir / "hosting.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_dir, ref)
    problems = caught.value.problems
    assert len(problems) == 1, [p.format() for p in problems]
    problem = problems[0]
    assert problem.file == "inventory/hosting.yaml"
    assert problem.field == field
    assert problem.line is not None
    changed = path.read_text().splitlines()[problem.line - 1]
    assert any(part.strip() in changed for part in new.splitlines() if part.strip())
    assert message in problem.message + " " + (problem.expected or "")
    if hint:
        assert problem.hint is not None and hint in problem.hint


def test_missing_hosting_file(tmp_path: Path, ref: Referential) -> None:
    (tmp_path / "communes").mkdir()
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path, ref)
    assert "hosting file not found" in caught.value.format()


def test_matrix_shared_needs_a_shared_homeserver(inventory_dir: Path, ref: Referential) -> None:
    path = inventory_dir / "hosting.yaml"
    text = path.read_text()
    start = text.index("shared_homeserver:")
    end = text.index("admins:")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_dir, ref)
    fields = {(p.file.rsplit("/", 1)[1], p.field) for p in caught.value.problems}
    assert fields == {(f, "tenant.flavor") for f in (
        "14047-bayeux.yaml", "14283-fourches.yaml", "14327-herouville-saint-clair.yaml")}
