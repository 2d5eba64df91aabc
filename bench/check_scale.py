"""`relais check` at scale: the example region and every current commune of France.

Times the policies alone (`policies.catalog.check_plan` on a Plan already built), and
the whole of `relais check` as a CI job pays it (load + plan + policies), on the shipped
example region and on throw-away inventories built by bench/plan_scale.py's `build()`.
Target: policies under 5 s for all of France.

    .venv/bin/python bench/check_scale.py [--sizes example,1000,all] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from plan_scale import build  # noqa: E402

from policies.catalog import check_plan  # noqa: E402
from relais import referential  # noqa: E402
from relais.findings import render  # noqa: E402
from relais.inventory import load_inventory  # noqa: E402
from relais.lock import read_lock  # noqa: E402
from relais.planner import build_plan  # noqa: E402


def measure(root: Path, ref: referential.Referential, label: str) -> dict[str, object]:
    gc.collect()
    start = time.perf_counter()
    inventory = load_inventory(root, ref)
    plan = build_plan(inventory, read_lock(root)).plan
    planned = time.perf_counter()
    report = check_plan(plan, today=date.today(), inventory=root)
    checked = time.perf_counter()
    junit = render(report, "junit")
    rendered = time.perf_counter()
    counts = report.counts()
    return {
        "inventory": label,
        "communes": len(plan.tenants),
        "hosts": len(plan.hosts),
        "checks": counts["checks"],
        "violations": counts["failed"],
        "load_plan_s": round(planned - start, 3),
        "policies_s": round(checked - planned, 3),
        "total_s": round(checked - start, 3),
        "junit_render_s": round(rendered - checked, 3),
        "junit_mib": round(len(junit.encode()) / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="example,all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ref = referential.load_or_fetch()
    everyone = sorted(ref.all_current(), key=lambda c: c.insee)
    results = []
    for size in args.sizes.split(","):
        if size == "example":
            results.append(measure(ROOT / "inventory", ref, "example region"))
        else:
            count = len(everyone) if size == "all" else int(size)
            step = max(1, len(everyone) // count)
            sample = everyone[::step][:count]
            with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
                root = Path(tmp) / "inventory"
                build(root, sample)
                results.append(measure(root, ref, "all of France" if size == "all" else f"{count} communes"))
        row = results[-1]
        if not args.json:
            print(f"{row['inventory']:>15}: {row['communes']:>6} communes, {row['checks']:>7} checks, "
                  f"{row['violations']} violations — policies {row['policies_s']:.2f} s; "
                  f"load+plan {row['load_plan_s']:.2f} s; total {row['total_s']:.2f} s "
                  f"(JUnit report {row['junit_mib']} MiB in {row['junit_render_s']:.2f} s)", flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
