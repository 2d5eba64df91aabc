"""The `relais` command as an operator and a CI job use it: exit codes, output, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relais.lock import LOCK_FILE

from ..conftest import FIXTURES


def relais(*args: str, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
    env.pop("RELAIS_INVENTORY", None)
    return subprocess.run([sys.executable, "-m", "relais", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120, check=False)


def test_validate_ok(inventory_dir: Path, referential_cache: Path) -> None:
    result = relais("-i", str(inventory_dir), "validate", cache=referential_cache)
    assert result.returncode == 0, result.stderr
    assert "11 communes, 4 hosts" in result.stdout


def test_validate_json(inventory_dir: Path, referential_cache: Path) -> None:
    result = relais("-i", str(inventory_dir), "validate", "--json", cache=referential_cache)
    assert result.returncode == 0
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["communes"] == 11 and payload["problems"] == []


def test_broken_inventory_exit_1_with_located_errors(inventory_dir: Path, referential_cache: Path) -> None:
    shutil.copyfile(FIXTURES / "loader-errors" / "unknown-key.yaml",
                    inventory_dir / "communes" / "14047-bayeux.yaml")
    caen = inventory_dir / "communes" / "14118-caen.yaml"
    caen.write_text(caen.read_text().replace('siren: "211401187"', 'siren: 211401187'))
    result = relais("-i", str(inventory_dir), "validate", cache=referential_cache)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "inventory/communes/14047-bayeux.yaml:14: tenant.flavour: unknown key 'flavour'" in result.stderr
    assert "did you mean 'flavor'?" in result.stderr
    assert "inventory/communes/14118-caen.yaml:5: commune.siren" in result.stderr
    assert "2 problems in the inventory" in result.stderr

    as_json = relais("-i", str(inventory_dir), "validate", "--json", cache=referential_cache)
    assert as_json.returncode == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert [(p["line"], p["field"]) for p in problems] == [(14, "tenant.flavour"), (5, "commune.siren")]


def test_plan_table_and_lock(inventory_dir: Path, referential_cache: Path) -> None:
    (inventory_dir / LOCK_FILE).unlink()
    result = relais("-i", str(inventory_dir), "plan", cache=referential_cache)
    assert result.returncode == 0, result.stderr
    assert "msg-caen-1" in result.stdout and "Caen" in result.stdout
    assert "recorded 10 new placements" in result.stderr
    assert (inventory_dir / LOCK_FILE).exists()
    again = relais("-i", str(inventory_dir), "plan", "--locked", cache=referential_cache)
    assert again.returncode == 0
    assert "recorded" not in again.stderr


def test_plan_locked_fails_when_placements_would_change(inventory_dir: Path, referential_cache: Path) -> None:
    (inventory_dir / LOCK_FILE).unlink()
    result = relais("-i", str(inventory_dir), "plan", "--locked", cache=referential_cache)
    assert result.returncode == 1
    assert "placements.lock is out of date" in result.stderr
    assert not (inventory_dir / LOCK_FILE).exists()


def test_plan_json_for_ci(inventory_dir: Path, referential_cache: Path) -> None:
    result = relais("-i", str(inventory_dir), "plan", "--json", cache=referential_cache)
    assert result.returncode == 0
    plan = json.loads(result.stdout)
    assert plan["schema"] == "relais.plan/v1"
    tenants = {t["insee"]: t for t in plan["tenants"]}
    assert tenants["14118"]["host"] == "msg-caen-1"
    for tenant in plan["tenants"]:
        for secret in tenant["secrets"]:
            assert set(secret) == {"ref", "kind"}


def test_plan_exit_2_when_tenants_do_not_fit(inventory_dir: Path, referential_cache: Path) -> None:
    hosting = inventory_dir / "hosting.yaml"
    hosting.write_text(hosting.read_text().replace("capacity: {ram: 8GiB, disk: 200GiB, vcpu: 4}",
                                                   "capacity: {ram: 1GiB, disk: 200GiB, vcpu: 4}"))
    (inventory_dir / LOCK_FILE).unlink()
    result = relais("-i", str(inventory_dir), "plan", cache=referential_cache)
    assert result.returncode == 2
    assert "Tenants that do not fit" in result.stdout
    as_json = relais("-i", str(inventory_dir), "plan", "--json", cache=referential_cache)
    assert as_json.returncode == 2
    unplaced = json.loads(as_json.stdout)["unplaced"]
    assert unplaced and all(u["missing_ram_mib"] > 0 for u in unplaced)


def test_communes_lookups(referential_cache: Path) -> None:
    search = relais("communes", "search", "saint lo", "--json", cache=referential_cache)
    assert search.returncode == 0
    assert json.loads(search.stdout)[0]["insee"] == "50502"
    show = relais("communes", "show", "2A004", "--json", cache=referential_cache)
    assert json.loads(show.stdout)["name"] == "Ajaccio"
    arrondissement = relais("communes", "show", "75101", cache=referential_cache)
    assert arrondissement.returncode == 1
    assert "belongs to Paris (75056)" in arrondissement.stderr
    none = relais("communes", "search", "qqqzzz", cache=referential_cache)
    assert none.returncode == 1


def test_missing_inventory_is_a_clear_error(tmp_path: Path, referential_cache: Path) -> None:
    result = relais("-i", str(tmp_path / "nowhere"), "validate", cache=referential_cache)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_usage_error_exit_code(referential_cache: Path) -> None:
    result = relais("plan", "--no-such-option", cache=referential_cache)
    assert result.returncode == 2  # click's usage error convention
    assert "No such option" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["communes", "--help"], ["plan", "--help"]])
def test_help(args: list[str], referential_cache: Path) -> None:
    result = relais(*args, cache=referential_cache)
    assert result.returncode == 0 and "Usage" in result.stdout


def test_every_verb_of_the_readme_is_wired(referential_cache: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    verbs = {line.split()[1] for line in readme.splitlines()
             if line.startswith(("relais ", "sudo relais ")) for line in [line.removeprefix("sudo ")]}
    assert {"deploy", "audit", "drift", "probe", "backup", "tenant"} <= verbs
    for verb in sorted(verbs):
        result = relais(verb, "--help", cache=referential_cache)
        assert result.returncode == 0 and "Usage" in result.stdout, (verb, result.stderr)
