"""`relais check` and `relais register` as an operator and a CI job run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import xmlschema

from ..conftest import FIXTURES

# Until relais/cli/__init__.py wires the two verbs, the test wires them the same way.
RUN = """
import os
import sys
from relais.cli import app, main
from relais.cli import check, register
names = {c.name for c in app.registered_commands}
if "check" not in names:
    app.command("check")(check.command)
if "register" not in names:
    app.command("register")(register.command)
sys.argv[0] = "relais"
if os.environ.get("TEST_REGISTERS_FORKED"):  # read the registers in a child from the first file on
    import policies.catalog
    policies.catalog.BACKGROUND_MIN_REGISTERS = 1
main()
"""


def relais(*args: str, cache: Path, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200", **extra}
    env.pop("RELAIS_INVENTORY", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, check=False)


def _break_caen(inventory: Path) -> None:
    caen = inventory / "communes" / "14118-caen.yaml"
    caen.write_text(caen.read_text().replace("logs: 1y", "logs: 2y"))


def test_example_region_passes(inventory_dir: Path, referential_cache: Path) -> None:
    result = relais("-i", str(inventory_dir), "check", cache=referential_cache, cwd=inventory_dir.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ") and "0 errors" in result.stdout


def test_violation_exit_2_table(inventory_dir: Path, referential_cache: Path) -> None:
    _break_caen(inventory_dir)
    result = relais("-i", str(inventory_dir), "check", cache=referential_cache, cwd=inventory_dir.parent)
    assert result.returncode == 2
    assert "CNIL-01" in result.stdout and "inventory/communes/14118-caen.yaml:19" in result.stdout
    assert "Traceback" not in result.stderr


def test_json_junit_sarif_outputs(inventory_dir: Path, referential_cache: Path, tmp_path: Path) -> None:
    _break_caen(inventory_dir)
    run = relais("-i", str(inventory_dir), "check", "--json", cache=referential_cache, cwd=tmp_path)
    assert run.returncode == 2
    data = json.loads(run.stdout)
    assert data["ok"] is False and data["counts"]["errors"] == 1

    junit = tmp_path / "reports" / "relais.xml"
    run = relais("-i", str(inventory_dir), "check", "--format", "junit", "--output", str(junit),
                 cache=referential_cache, cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == "" and "report in" in run.stderr
    xmlschema.XMLSchema(str(FIXTURES / "schemas" / "junit-10.xsd")).validate(str(junit))

    run = relais("-i", str(inventory_dir), "check", "-f", "sarif", cache=referential_cache, cwd=tmp_path)
    sarif = json.loads(run.stdout)
    jsonschema.validate(sarif, json.loads((FIXTURES / "schemas" / "sarif-2.1.0.json").read_text()),
                        cls=jsonschema.Draft4Validator)
    [result] = sarif["runs"][0]["results"]
    assert result["ruleId"] == "CNIL-01"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 19


def test_rule_filter_strict_and_waivers(inventory_dir: Path, referential_cache: Path) -> None:
    _break_caen(inventory_dir)
    run = relais("-i", str(inventory_dir), "check", "--rule", "MSG-*", cache=referential_cache,
                 cwd=inventory_dir.parent)
    assert run.returncode == 0, run.stdout
    hosting = inventory_dir / "hosting.yaml"
    text = hosting.read_text()
    # The example already ends with its `waivers:` list (lab limits): add one item to it.
    hosting.write_text(text + ("" if "\nwaivers:\n" in text else "waivers:\n") + (
        "  - {rule: CNIL-01, subject: \"14118\", reason: archives judiciaires, expires: 2025-12-31}\n"))
    run = relais("-i", str(inventory_dir), "check", "--today", "2025-06-01", cache=referential_cache,
                 cwd=inventory_dir.parent)
    assert run.returncode == 0 and "waived until 2025-12-31" in run.stdout
    run = relais("-i", str(inventory_dir), "check", "--today", "2026-01-01", cache=referential_cache,
                 cwd=inventory_dir.parent)
    assert run.returncode == 2 and "WAIVER-01" in run.stdout and "expired on 2025-12-31" in run.stdout


def test_usage_errors_exit_1_without_traceback(inventory_dir: Path, referential_cache: Path) -> None:
    for args, message in ((["--rule", "NOPE-1"], "no rule matches 'NOPE-1'"),
                          (["--format", "html"], "unknown format 'html'"),
                          (["--today", "tomorrow"], "is not a date")):
        run = relais("-i", str(inventory_dir), "check", *args, cache=referential_cache, cwd=inventory_dir.parent)
        assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr


def test_list_rules(inventory_dir: Path, referential_cache: Path) -> None:
    run = relais("-i", str(inventory_dir), "check", "--list-rules", "--json", cache=referential_cache,
                 cwd=inventory_dir.parent)
    assert run.returncode == 0
    ids = [r["id"] for r in json.loads(run.stdout)]
    assert "RGPD-01" in ids and "ANSSI-FW-01" in ids and "OPS-03" in ids


def test_register_command(inventory_dir: Path, referential_cache: Path) -> None:
    run = relais("-i", str(inventory_dir), "register", "Saint-Lô", cache=referential_cache, cwd=inventory_dir.parent)
    assert run.returncode == 0 and "# Registre des activités de traitement — Saint-Lô (50502)" in run.stdout
    run = relais("-i", str(inventory_dir), "register", "14118", "--format", "json", cache=referential_cache,
                 cwd=inventory_dir.parent)
    assert json.loads(run.stdout)["commune"]["insee"] == "14118"
    run = relais("-i", str(inventory_dir), "register", "--all", cache=referential_cache, cwd=inventory_dir.parent)
    assert run.returncode == 1 and "needs --output" in run.stderr

    folder = inventory_dir / "registre"
    run = relais("-i", str(inventory_dir), "register", "--all", "--output", str(folder),
                 cache=referential_cache, cwd=inventory_dir.parent)
    assert run.returncode == 0, run.stderr
    assert (folder / "14118-caen.json").is_file() and (folder / "14118-caen.md").is_file()
    assert not (folder / "61169-flers.json").exists()  # requested: no data yet
    forked = {"TEST_REGISTERS_FORKED": "1", "RELAIS_WORKERS": "2"}
    for extra in ({}, forked):
        assert relais("-i", str(inventory_dir), "check", cache=referential_cache,
                      cwd=inventory_dir.parent, **extra).returncode == 0
    rouen = inventory_dir / "communes" / "76540-rouen.yaml"
    rouen.write_text(rouen.read_text().replace("messages: 2y", "messages: 3y"))
    runs = [relais("-i", str(inventory_dir), "check", "--rule", "RGPD-06", "--json", cache=referential_cache,
                   cwd=inventory_dir.parent, **extra) for extra in ({}, forked)]
    assert runs[0].returncode == runs[1].returncode == 2 and runs[0].stdout == runs[1].stdout
    assert [f["subject"] for f in json.loads(runs[0].stdout)["findings"] if f["status"] == "failed"] == ["76540"]
    (folder / "14118-caen.json").write_text("{")
    runs = [relais("-i", str(inventory_dir), "check", cache=referential_cache, cwd=inventory_dir.parent, **extra)
            for extra in ({}, forked)]
    assert runs[0].returncode == runs[1].returncode == 1 and runs[0].stderr == runs[1].stderr
    assert "registre/14118-caen.json: not a register entry" in runs[0].stderr
