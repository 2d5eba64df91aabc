"""How many small-commune tenants fit in 8 GiB, per flavor, measured on the lab's hosts.

    sudo -E .venv/bin/python bench/tenant_density.py [--flavor matrix|xmpp|all] [--json]

Each flavor's measurement lives in its own module (bench/density_<flavor>.py) exposing
`measure(args) -> dict` (and optionally `add_arguments(parser)` and `render(result) -> str`);
a module that is absent is reported, not fatal. Needs a deployed lab (`relais deploy`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

FLAVORS = ("matrix", "xmpp")


def _module(flavor: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        return importlib.import_module(f"density_{flavor}")
    except ModuleNotFoundError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=[*FLAVORS, "all"], default="all")
    parser.add_argument("--json", action="store_true")
    flavors = FLAVORS
    for flavor in flavors:
        module = _module(flavor)
        if module is not None and hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args()
    chosen = FLAVORS if args.flavor == "all" else (args.flavor,)
    results = {}
    for flavor in chosen:
        module = _module(flavor)
        if module is None:
            results[flavor] = {"error": f"bench/density_{flavor}.py is not there yet"}
            continue
        results[flavor] = module.measure(args)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    for flavor, result in results.items():
        print(f"== {flavor}")
        module = _module(flavor)
        if "error" not in result and module is not None and hasattr(module, "render"):
            print(module.render(result))
        else:
            print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
