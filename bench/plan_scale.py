"""Validate + plan at the scale of France: 1,000, 10,000 and every current commune.

Builds throw-away inventories (one file per commune, real INSEE codes, names and
SIRENs from the official referential; flavors mixed like a real region) in a
temporary directory, then times `load_inventory` + `build_plan` and reports peak
memory of that work (tracemalloc) and the time per commune. A baseline —
just reading and YAML-parsing the same files, one after the other — shows what
the checks and the planner add on top of I/O. Every step runs in a fresh
interpreter, so each figure is cold (see docs/performance.md). Large
inventories are parsed on every core; RELAIS_WORKERS=1 measures one core.

    .venv/bin/python bench/plan_scale.py [--sizes 1000,10000,all] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from relais import referential
from relais.inventory import commune_files, load_inventory
from relais.lock import read_lock
from relais.planner import build_plan
from relais.yamlsafe import read_yaml

FLAVORS = ("xmpp", "matrix-shared", "xmpp", "matrix-dedicated", "xmpp", "matrix-shared")


def hosting_yaml(communes: int) -> str:
    # Enough messaging capacity for everyone: one 64 GiB host per 800 communes per site.
    per_site = max(1, communes // 1600 + 1)
    lines = [
        "version: 1",
        "syndicate: {name: Bench, domain: messagerie.bench.example, contact: ops@bench.example}",
        "sites:",
        "  nord: {country: FR, city: Lille}",
        "  sud: {country: FR, city: Toulouse}",
        "shared_homeserver: {host: shared-1}",
        "hosts:",
        "  shared-1: {site: nord, roles: [messaging, proxy, database], provider: openstack,"
        " capacity: {ram: 512GiB, disk: 100TiB, vcpu: 64}}",
        "  backup-nord: {site: nord, roles: [backup], provider: openstack,"
        " capacity: {ram: 8GiB, disk: 1000TiB, vcpu: 4}}",
        "  backup-sud: {site: sud, roles: [backup], provider: openstack,"
        " capacity: {ram: 8GiB, disk: 1000TiB, vcpu: 4}}",
    ]
    for site in ("nord", "sud"):
        for index in range(per_site):
            lines.append(
                f"  msg-{site}-{index}: {{site: {site}, roles: [messaging, proxy, database],"
                " provider: openstack, capacity: {ram: 64GiB, disk: 20TiB, vcpu: 16}}"
            )
    return "\n".join(lines) + "\n"


def commune_yaml(c: referential.OfficialCommune, index: int) -> str:
    flavor = FLAVORS[index % len(FLAVORS)]
    if flavor == "matrix-dedicated" and (c.population or 0) < 5000:
        flavor = "xmpp"
    slug = referential.slugify(c.name)
    return (
        "version: 1\n"
        "commune:\n"
        f'  insee: "{c.insee}"\n'
        f"  name: \"{c.name}\"\n"
        + (f'  siren: "{c.siren}"\n' if c.siren else "")
        + "contacts:\n"
        f"  mairie: mairie@{slug}.example.fr\n"
        "  dpo: {name: Centre de gestion, email: dpo@cdg.example.fr}\n"
        "tenant:\n"
        f"  flavor: {flavor}\n"
        "  agents:\n"
        f"    - {{name: Agent Un, email: agent1@{slug}.example.fr}}\n"
        f"    - {{name: Agent Deux, email: agent2@{slug}.example.fr}}\n"
        "  retention: {messages: 1y, logs: 180d}\n"
        "  status: active\n"
    )


def build(root: Path, communes: list[referential.OfficialCommune]) -> None:
    (root / "communes").mkdir(parents=True)
    (root / "hosting.yaml").write_text(hosting_yaml(len(communes)), encoding="utf-8")
    for index, c in enumerate(communes):
        path = root / "communes" / f"{c.insee}-{referential.slugify(c.name)}.yaml"
        path.write_text(commune_yaml(c, index), encoding="utf-8")


def _child(step: str, root: Path) -> dict[str, float]:
    """Run one measuring step in a fresh interpreter: every figure is cold (no memo,
    frozen objects or warm caches left by an earlier step or size)."""
    out = subprocess.run([sys.executable, __file__, "--step", step, str(root)],
                         check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def step_baseline(root: Path) -> dict[str, float]:
    """Just read and YAML-parse every commune file, one after the other."""
    gc.collect()
    start = time.perf_counter()
    for path in commune_files(root):
        read_yaml(path, path.name)
    return {"baseline_read_parse_s": time.perf_counter() - start}


def step_time(root: Path) -> dict[str, float]:
    ref = referential.load_or_fetch()
    gc.collect()
    start = time.perf_counter()
    inventory = load_inventory(root, ref)
    loaded = time.perf_counter()
    result = build_plan(inventory, read_lock(root))
    done = time.perf_counter()
    return {"communes": len(inventory.communes),
            "placed": sum(1 for t in result.plan.tenants if t.host),
            "validate_s": loaded - start, "plan_s": done - loaded}


def step_memory(root: Path) -> dict[str, float]:
    # Memory is measured in a separate run: tracemalloc slows Python down. It traces
    # this process (which keeps the inventory and the Plan), not the short-lived
    # helper processes that parse files for large inventories.
    ref = referential.load_or_fetch()
    gc.collect()
    tracemalloc.start()
    inventory = load_inventory(root, ref)
    build_plan(inventory, read_lock(root))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"peak_mib": peak / 2**20}


STEPS = {"baseline": step_baseline, "time": step_time, "memory": step_memory}


def measure(root: Path) -> dict[str, float]:
    row = _child("baseline", root) | _child("time", root) | _child("memory", root)
    total = row["validate_s"] + row["plan_s"]
    return {
        "communes": row["communes"],
        "placed": row["placed"],
        "baseline_read_parse_s": round(row["baseline_read_parse_s"], 3),
        "validate_s": round(row["validate_s"], 3),
        "plan_s": round(row["plan_s"], 3),
        "total_s": round(total, 3),
        "us_per_commune": round(total / row["communes"] * 1e6, 1),
        "ratio_to_baseline": round(total / row["baseline_read_parse_s"], 2),
        "peak_mib": round(row["peak_mib"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,all")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--step", nargs=2, metavar=("STEP", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        json.dump(STEPS[args.step[0]](Path(args.step[1])), sys.stdout)
        return 0
    ref = referential.load_or_fetch()
    everyone = sorted(ref.all_current(), key=lambda c: c.insee)
    results = []
    for size in args.sizes.split(","):
        count = len(everyone) if size == "all" else int(size)
        # Spread the sample over France rather than taking the first départements.
        step = max(1, len(everyone) // count)
        sample = everyone[::step][:count]
        with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
            root = Path(tmp) / "inventory"
            build(root, sample)
            results.append(measure(root))
        row = results[-1]
        if not args.json:
            print(f"{row['communes']:>6} communes: validate {row['validate_s']:.2f} s + plan "
                  f"{row['plan_s']:.2f} s = {row['total_s']:.2f} s "
                  f"({row['us_per_commune']:.0f} µs/commune, {row['ratio_to_baseline']}× read+parse "
                  f"baseline of {row['baseline_read_parse_s']:.2f} s), peak {row['peak_mib']} MiB, "
                  f"{row['placed']} placed", flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
