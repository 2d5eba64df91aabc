"""`relais register`: the commune's entry in its register of processing (RGPD art. 30), in French.

    relais register 14118                      Markdown on stdout
    relais register Caen --format json         JSON on stdout
    relais register Caen --output registre/    14118-caen.md and 14118-caen.json
    relais register --all --output inventory/registre
                                               one pair per commune holding data; rule RGPD-06
                                               then checks that the Plan's retention matches
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from relais.cli.check import import_policies, parse_today
from relais.cli.context import State, load_plan
from relais.console import Console
from relais.errors import RelaisError
from relais.plan import Plan, PlannedTenant
from relais.referential import normalize

FORMATS = ("markdown", "json")


def find_tenant(plan: Plan, query: str) -> PlannedTenant:
    """A tenant by INSEE code or commune name (accents, case and dashes forgiven)."""
    wanted = query.strip()
    for t in plan.tenants:
        if t.insee == wanted.upper():
            return t
    folded = normalize(wanted)
    matches = [t for t in plan.tenants if normalize(t.commune) == folded]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RelaisError(f"{query!r} names several communes of the inventory: "
                          + ", ".join(f"{t.commune} ({t.insee})" for t in matches),
                          hint="give the INSEE code instead")
    import difflib

    close = difflib.get_close_matches(folded, [normalize(t.commune) for t in plan.tenants], n=1)
    hint = "give the INSEE code or the name of a commune of the inventory (`relais plan` lists them)"
    if close:
        found = next(t for t in plan.tenants if normalize(t.commune) == close[0])
        hint = f"did you mean {found.commune} ({found.insee})?"
    raise RelaisError(f"no tenant for {query!r} in the inventory", hint=hint)


def command(
    ctx: typer.Context,
    commune: str = typer.Argument(None, metavar="COMMUNE", help="INSEE code or name of the commune."),
    all_communes: bool = typer.Option(False, "--all", help="Every commune holding data (needs --output)."),
    fmt: str = typer.Option("markdown", "--format", "-f", help="markdown or json (on stdout)."),
    output: Path = typer.Option(None, "--output", "-o", file_okay=False,
                                help="Write <insee>-<slug>.md and .json into this folder."),
    today: str = typer.Option(None, "--today", metavar="DATE", help="Date of the entry (default: today)."),
) -> None:
    """Write the register of processing entry (art. 30 RGPD) of a commune, from the Plan."""
    state: State = ctx.obj
    if fmt not in FORMATS:
        raise RelaisError(f"unknown format {fmt!r}", hint="choose markdown or json")
    if all_communes == (commune is not None):
        raise RelaisError("give either a COMMUNE or --all",
                          hint="relais register 14118, or relais register --all --output inventory/registre")
    if all_communes and output is None:
        raise RelaisError("--all writes one file pair per commune: it needs --output DIR",
                          hint="relais register --all --output inventory/registre")
    registre = import_policies("policies.registre")
    when = parse_today(today)
    plan = load_plan(state)
    console = Console(json_mode=fmt == "json" and output is None)
    tenants: list[PlannedTenant] = registre.register_tenants(plan) if all_communes \
        else [find_tenant(plan, commune)]
    if output is None:
        data: dict[str, Any] = registre.entry(plan, tenants[0], today=when)
        if fmt == "json":
            console.json(data)
        else:
            sys.stdout.write(registre.markdown(data))
        return
    try:
        output.mkdir(parents=True, exist_ok=True)
        stale = {p.name for p in output.glob("*.json")} | {p.name for p in output.glob("*.md")}
        for tenant in tenants:
            data = registre.entry(plan, tenant, today=when)
            stem = registre.file_stem(tenant)
            (output / f"{stem}.json").write_text(
                json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            (output / f"{stem}.md").write_text(registre.markdown(data), encoding="utf-8")
            stale -= {f"{stem}.json", f"{stem}.md"}
    except OSError as error:
        raise RelaisError(f"cannot write the register in {output}: {error.strerror}") from None
    console.info(f"register: {len(tenants)} entr{'ies' if len(tenants) != 1 else 'y'} written in {output}")
    if all_communes and stale:
        console.warn(f"{output} also holds {len(stale)} file(s) of communes no longer holding data "
                     f"(e.g. {sorted(stale)[0]}); keep them as archives or remove them")
