"""`relais check` at scale: the example region and every current commune of France.

End to end first: the wall time of the real console script (`relais check`, as a CI job runs
it: a fresh process, imports, load, plan, policies, report, exit) with its default table on
stdout, and with `--format json` / `--format junit` written to a file. Next to it, measured
in the same run and the same way: the bare read+parse of every commune file (one fresh
interpreter, `read_yaml` on each file, one after the other) and `relais validate` end to end.
Then the breakdown, in one fresh interpreter: imports, load (validate), plan, policies, and
rendering each report. Inventories are the shipped example region and throw-away ones built
by bench/plan_scale.py's `build()`, measured before their first `relais plan`, then with the
placements lock it writes, then also with the register of processing committed
(`relais register --all`), as a syndicate's repository holds them. Target: `relais check`
under 5 s for all of France.

Each end-to-end command runs `--runs` times (default 3): min and median are reported, with
the load average before and after, since the figures mean little on a busy machine.

    .venv/bin/python bench/check_scale.py [--sizes example,1000,all] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from relais.lock import LOCK_FILE  # noqa: E402

RELAIS = Path(sys.executable).parent / "relais"
"""The console script installed next to this interpreter (`.venv/bin/relais`)."""

# The breakdown, run in a fresh interpreter (`--step breakdown ROOT`): every figure is cold.
BREAKDOWN = """
import gc, json, sys, time
start = time.perf_counter()
from datetime import date
from pathlib import Path
from relais.cli.check import import_policies
from relais.findings import render
from relais.inventory import load_inventory
from relais.lock import read_lock
from relais.planner import build_plan
from relais import referential
catalog = import_policies("policies.catalog")
imported = time.perf_counter()
root = Path(sys.argv[1])
inventory = load_inventory(root, referential.load_or_fetch)  # as `relais check` loads it
loaded = time.perf_counter()
plan = build_plan(inventory, read_lock(root), operational=False).plan  # what the policies read
planned = time.perf_counter()
report = catalog.check_plan(plan, today=date.today(), inventory=root)
checked = time.perf_counter()
full = build_plan(inventory, read_lock(root)).plan  # the whole Plan (relais plan), for comparison
row = {"imports_s": imported - start, "load_s": loaded - imported, "plan_s": planned - loaded,
       "policies_s": checked - planned, "plan_full_s": time.perf_counter() - checked,
       "communes": len(plan.tenants), "hosts": len(plan.hosts),
       **{k: v for k, v in report.counts().items() if k in ("checks", "failed")}}
for fmt in ("table", "json", "junit", "sarif"):
    begin = time.perf_counter()
    text = render(report, fmt)
    row[f"render_{fmt}_s"] = time.perf_counter() - begin
    row[f"{fmt}_mib"] = len(text.encode()) / 2**20
json.dump(row, sys.stdout)
"""

BASELINE = """
import sys, time
from pathlib import Path
from relais.inventory import commune_files
from relais.yamlsafe import read_yaml
start = time.perf_counter()
for path in commune_files(Path(sys.argv[1])):
    read_yaml(path, path.name)
print(time.perf_counter() - start)
"""


def wall(command: list[str], *, stdout: Path | None = None) -> float:
    """Seconds from fork to exit of `command` (its output to a file: CI logs are files too)."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("RELAIS_INVENTORY", None)
    with open(stdout or os.devnull, "w", encoding="utf-8") as out:
        start = time.perf_counter()
        done = subprocess.run(command, stdout=out, stderr=subprocess.DEVNULL, env=env, check=False)
        elapsed = time.perf_counter() - start
    if done.returncode not in (0, 2):  # 2: violations, a normal outcome of `relais check`
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}")
    return elapsed


def stats(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 3), "median": round(statistics.median(samples), 3)}


REGISTER_ROWS = ("check_registre", "check_junit_registre", "check_json_registre")


def measure(root: Path, label: str, runs: int, *, generated: bool = False) -> dict[str, object]:
    base = [str(RELAIS), "-i", str(root)]
    load_before = os.getloadavg()
    samples: dict[str, list[float]] = {k: [] for k in ("check", "check_json", "check_junit", "validate",
                                                       "read_parse", "check_no_lock", *REGISTER_ROWS)}
    register_all: float | None = None
    with tempfile.TemporaryDirectory(prefix="relais-bench-out-") as out:
        report = Path(out)
        lock = root / LOCK_FILE
        if not lock.exists():
            # Before the first `relais plan`, then with the lock it writes, which a syndicate
            # commits (a line per tenant): what `relais check` reads in CI.
            for _ in range(runs):
                samples["check_no_lock"].append(wall([*base, "check"], stdout=report / "check.txt"))
            subprocess.run([*base, "plan"], check=True, capture_output=True)
        for _ in range(runs):
            samples["read_parse"].append(wall([sys.executable, "-c", BASELINE, str(root)]))
            samples["validate"].append(wall([*base, "validate"]))
            samples["check"].append(wall([*base, "check"], stdout=report / "check.txt"))
            samples["check_json"].append(wall([*base, "check", "--format", "json", "--output",
                                               str(report / "policies.json")]))
            samples["check_junit"].append(wall([*base, "check", "--format", "junit", "--output",
                                                str(report / "policies.xml")]))
        done = subprocess.run([sys.executable, "-c", BREAKDOWN, str(root)], check=True, capture_output=True,
                              text=True)
        if generated and not (root / "registre").exists():
            # With the register of processing committed, as docs/policies.md asks: RGPD-06 reads
            # an entry per commune (never written into the shipped example).
            register_all = wall([*base, "register", "--all", "--output", str(root / "registre")])
            for _ in range(runs):
                samples["check_registre"].append(wall([*base, "check"], stdout=report / "check.txt"))
                samples["check_junit_registre"].append(wall([*base, "check", "--format", "junit",
                                                             "--output", str(report / "policies.xml")]))
                samples["check_json_registre"].append(wall([*base, "check", "--format", "json",
                                                            "--output", str(report / "policies.json")]))
    load_after = os.getloadavg()
    breakdown = {k: round(v, 3) if isinstance(v, float) else v for k, v in json.loads(done.stdout).items()}
    return {
        "inventory": label,
        "runs": runs,
        "load_average": [round(x, 2) for x in (*load_before, *load_after)],
        "end_to_end_s": {name: stats(values) for name, values in samples.items() if values},
        "register_all_s": round(register_all, 3) if register_all is not None else None,
        "breakdown": breakdown,
    }


def show(row: dict[str, object]) -> None:
    e2e: dict[str, dict[str, float]] = row["end_to_end_s"]  # type: ignore[assignment]
    b: dict[str, float] = row["breakdown"]  # type: ignore[assignment]
    load = row["load_average"]
    print(f"{row['inventory']}: {b['communes']} communes, {b['checks']} checks, {b['failed']} violations; "
          f"load average {load[0]} before, {load[3]} after ({row['runs']} runs, min / median)")
    for name, title in (("check", "relais check (table)"), ("check_json", "relais check --format json -o"),
                        ("check_junit", "relais check --format junit -o"),
                        ("check_no_lock", "relais check, no lock yet"),
                        ("check_registre", "relais check, register committed"),
                        ("check_junit_registre", "  same, --format junit -o"),
                        ("check_json_registre", "  same, --format json -o"),
                        ("validate", "baseline: relais validate"),
                        ("read_parse", "baseline: read+parse YAML")):
        if name in e2e:
            print(f"  {title:32} {e2e[name]['min']:6.2f} s / {e2e[name]['median']:6.2f} s")
    if row.get("register_all_s") is not None:
        print(f"  relais register --all -o (once)  {row['register_all_s']:6.2f} s")
    print(f"  breakdown: imports {b['imports_s']:.2f} s, load {b['load_s']:.2f} s, plan {b['plan_s']:.2f} s "
          f"(whole Plan {b['plan_full_s']:.2f} s), "
          f"policies {b['policies_s']:.2f} s; render table {b['render_table_s']:.2f} s, "
          f"json {b['render_json_s']:.2f} s ({b['json_mib']:.1f} MiB), "
          f"junit {b['render_junit_s']:.2f} s ({b['junit_mib']:.1f} MiB), sarif {b['render_sarif_s']:.2f} s",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="example,all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from plan_scale import build

    from relais import referential

    ref = referential.load_or_fetch()
    everyone = sorted(ref.all_current(), key=lambda c: c.insee)
    results = []
    for size in args.sizes.split(","):
        if size == "example":
            results.append(measure(ROOT / "inventory", "example region", args.runs))
        else:
            count = len(everyone) if size == "all" else int(size)
            step = max(1, len(everyone) // count)
            sample = everyone[::step][:count]
            with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
                root = Path(tmp) / "inventory"
                build(root, sample)
                label = "all of France" if size == "all" else f"{count} communes"
                results.append(measure(root, label, args.runs, generated=True))
        if not args.json:
            show(results[-1])
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
