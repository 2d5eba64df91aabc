"""Placeholder: filled in by the lab work."""

import typer

app = typer.Typer(help="lab", no_args_is_help=True)
