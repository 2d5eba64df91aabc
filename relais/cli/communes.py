"""`relais communes`: the official list of communes (fetch, import, search, show)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from relais import referential
from relais.console import Console
from relais.errors import ReferentialError

app = typer.Typer(help="The official list of communes (Etalab, via npm).", no_args_is_help=True)


@app.command()
def fetch(
    if_missing: bool = typer.Option(False, "--if-missing", help="Do nothing when already cached."),
) -> None:
    """Fetch the pinned dataset with npm, verify its integrity and cache it."""
    console = Console()
    if if_missing and referential.cache_path().is_file():
        try:
            count = len(referential.load())
        except ReferentialError:
            pass  # unreadable or old format: fetch it again
        else:
            console.info(f"official list of communes already cached ({count} current communes)")
            return
    console.info(f"fetching {referential.PACKAGE}@{referential.PINNED_VERSION} with npm…")
    path = referential.fetch()
    console.print(f"cached {len(referential.load())} current communes in {path}")


@app.command("import")
def import_(path: Path = typer.Argument(..., help="communes.json or the package tarball (.tgz)")) -> None:
    """Import the dataset from a file, for syndicates without registry access."""
    console = Console()
    cached = referential.import_file(path)
    console.print(f"imported {len(referential.load())} current communes into {cached}")


def _table(communes: list[referential.OfficialCommune]) -> Table:
    table = Table()
    for column in ("INSEE", "name", "département", "population", "postal codes", "SIREN"):
        table.add_column(column)
    for c in communes:
        table.add_row(c.insee, c.name, c.departement, str(c.population or "-"),
                      " ".join(c.postal_codes[:4]) + (" …" if len(c.postal_codes) > 4 else ""),
                      c.siren or "-")
    return table


@app.command()
def search(
    query: str = typer.Argument(..., help="Name, postal code or INSEE code"),
    limit: int = typer.Option(10, min=1, max=200),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Find current communes by name (accents and case forgiven), postal code or INSEE code."""
    console = Console(json_mode=json_output)
    found = referential.load_or_fetch().search(query, limit)
    if json_output:
        console.json([c.as_dict() for c in found])
    elif found:
        console.print(_table(found))
    else:
        console.print(f"no current commune matches {query!r}")
    if not found:
        raise typer.Exit(1)


@app.command()
def show(insee: str, json_output: bool = typer.Option(False, "--json")) -> None:
    """Show one commune by INSEE code (and what a non-current code belongs to)."""
    console = Console(json_mode=json_output)
    ref = referential.load_or_fetch()
    code = insee.strip().upper()
    commune = ref.current(code)
    if commune is None:
        others = ref.non_current(code)
        if not others:
            raise ReferentialError(f"no commune has INSEE code {code!r}",
                                   hint="`relais communes search NAME` finds codes")
        other = others[0]
        parent = ref.current(other.parent or "")
        raise ReferentialError(
            f"{code} ({other.name}) is {referential.KIND_LABELS.get(other.kind, other.kind)}",
            hint=f"it belongs to {parent.name} ({parent.insee})" if parent else None,
        )
    if json_output:
        console.json(commune.as_dict())
    else:
        console.print(_table([commune]))
