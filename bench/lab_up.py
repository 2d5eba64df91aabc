"""Time the lab of the example region: cold `lab up`, warm `lab up`, a no-op `lab up`, `lab down`.

- cold: the base image is absent (deleted before the run), so debootstrap builds it
  through the package proxy; with ``--empty-package-cache`` the proxy's cache is
  emptied too, so every package comes from the machine's Debian mirror.
- warm: the base image is cached; hosts are created (overlay) and booted until
  SSH answers and `systemctl is-system-running --wait` returns.
- no-op: a second `lab up` with everything up (changes nothing).
- down: every machine, mount, link, rule and process removed.

Needs root. Leaves the lab down (``--keep-up`` to leave it up).

    sudo .venv/bin/python bench/lab_up.py [--rounds 3] [--empty-package-cache] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

from relais.cli.context import State, default_inventory, load_plan
from relais.errors import RelaisError
from relais.lab import Lab, LabPaths, RichReporter
from relais.lab import system as lab_system
from relais.lab.base import base_dir, current_recipe


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="warm up/down rounds (default 3)")
    parser.add_argument("--empty-package-cache", action="store_true",
                        help="also empty the package proxy's cache before the cold run")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    parser.add_argument("--keep-up", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--verbose", action="store_true", help="show the lab's progress")
    args = parser.parse_args()

    lab_system.require_root("up")
    plan = load_plan(State(inventory=default_inventory()))
    paths = LabPaths.default()
    lab = Lab(plan, paths=paths, reporter=RichReporter(quiet=not args.verbose))
    hosts = len(plan.lab_hosts())

    lab.down()
    lab_system.remove_tree(base_dir(paths.cache, current_recipe()))
    if args.empty_package_cache:
        lab_system.remove_tree(paths.package_cache)

    figures: dict[str, object] = {"hosts": hosts, "empty_package_cache": args.empty_package_cache}
    figures["cold_up_s"] = round(timed(lab.up), 2)
    figures["noop_up_s"] = round(timed(lab.up), 2)
    downs = [timed(lab.down)]
    warms: list[float] = []
    for index in range(args.rounds):
        warms.append(timed(lab.up))
        if index < args.rounds - 1 or not args.keep_up:
            downs.append(timed(lab.down))
    figures["warm_up_s"] = [round(w, 2) for w in warms]
    figures["warm_up_median_s"] = round(statistics.median(warms), 2)
    figures["down_s"] = [round(d, 2) for d in downs]
    figures["down_median_s"] = round(statistics.median(downs), 2)
    figures["base_image_mib"] = round(
        int(lab_system.run(["du", "-sm", str(base_dir(paths.cache, current_recipe()))]).stdout.split()[0])
    )

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"lab of the example region: {hosts} hosts")
        print(f"  cold up (base image absent{', package cache empty' if args.empty_package_cache else ''}): "
              f"{figures['cold_up_s']:.1f} s")
        print(f"  warm up (base image cached), median of {len(warms)}: "
              f"{figures['warm_up_median_s']:.1f} s  {figures['warm_up_s']}")
        print(f"  up again (nothing to change): {figures['noop_up_s']:.1f} s")
        print(f"  down, median of {len(downs)}: {figures['down_median_s']:.1f} s  {figures['down_s']}")
        print(f"  base image: {figures['base_image_mib']} MiB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RelaisError as error:
        print(f"error: {error.format()}", file=sys.stderr)
        sys.exit(1)
