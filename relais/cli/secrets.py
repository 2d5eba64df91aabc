"""Placeholder: filled in by the secrets work."""

import typer

app = typer.Typer(help="secrets", no_args_is_help=True)
