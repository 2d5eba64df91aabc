"""`relais secrets`: the generated secrets, encrypted in the repository with Ansible Vault.

Only `show` ever prints a value, on stdout and on purpose; everything else
speaks of references.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from relais.cli.context import State, default_inventory, load_plan
from relais.console import Console
from relais.secrets import (
    ENV_PASSWORD,
    ENV_PASSWORD_FILE,
    SECRETS_DIR,
    SecretStore,
    init_key_file,
    key_source,
)

app = typer.Typer(
    help="Secrets the Plan refers to (passwords, signing keys, tokens), kept encrypted "
    "in the repository with Ansible Vault.",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _state(ctx: typer.Context) -> State:
    state = ctx.obj
    return state if isinstance(state, State) else State(inventory=default_inventory())


def _open_store(ctx: typer.Context, console: Console) -> SecretStore:
    source = key_source()
    if source.insecure_mode():
        console.warn(f"{source.describe()} can be read by other users; run chmod 600 on it")
    return SecretStore.open(_state(ctx).inventory)


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the vault key (outside the repository) if there is none yet; never overwrites."""
    console = Console()
    source, created = init_key_file()
    if source.path is None:
        console.info(f"the vault key comes from {ENV_PASSWORD}; nothing to create")
        return
    where = escape(str(source.path))
    if created:
        console.info(f"created the vault key [bold]{where}[/] (mode 0600)")
        console.info(
            "back it up now, outside the repository (password manager, sealed envelope, "
            "the syndicate's safe): without it the files in "
            f"{escape(str(_state(ctx).inventory / SECRETS_DIR))} can never be decrypted"
        )
    else:
        console.info(f"a vault key already exists at [bold]{where}[/]; left untouched")
    if source.env_var is None:
        console.info(f"to use another key, set {ENV_PASSWORD_FILE} or {ENV_PASSWORD}")


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: str = typer.Argument("", help="Only references under this path, e.g. tenants/14118."),
    json_: bool = JSON_OPTION,
) -> None:
    """List the stored secrets: references, kinds and creation dates, never values."""
    console = Console(json_mode=json_)
    store = _open_store(ctx, console)
    infos = store.list_info(prefix)
    if json_:
        console.json({"store": str(store.root), "secrets": [i.as_dict() for i in infos]})
        return
    for info in infos:
        console.print(f"{info.ref}\t{info.kind or '?'}\t{info.created or '?'}", markup=False)
    console.info(
        f"{len(infos)} secret{'s' if len(infos) != 1 else ''} in {escape(str(store.root))}"
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Reference, e.g. tenants/14118/db_password."),
    json_: bool = JSON_OPTION,
) -> None:
    """Print a secret's value on stdout (the only command that displays one)."""
    console = Console(json_mode=json_)
    store = _open_store(ctx, console)
    value = store.get(ref)
    console.warn(f"displaying the value of {ref}; it is now in this terminal's scrollback")
    if json_:
        console.json({**store.info(ref).as_dict(), "value": value})
        return
    sys.stdout.write(value if value.endswith("\n") else value + "\n")
    sys.stdout.flush()


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Reference, e.g. tenants/14118/db_password."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Replace a secret with a fresh value of the same kind."""
    console = Console()
    store = _open_store(ctx, console)
    info = store.info(ref)  # fails early, before asking, if the secret does not exist
    if not yes:
        typer.confirm(
            f"Replace {ref} ({info.kind or 'unknown kind'}) with a new value?",
            abort=True,
            err=True,
        )
    store.rotate(ref)
    console.info(f"rotated {escape(ref)} in {escape(str(store.path_of(ref)))}")
    console.info(
        "deployed services keep the old value until the next deploy, which installs the new "
        "one; commit the changed file first"
    )
    if info.kind == "signing-key":
        console.info(
            "the replaced signing key is kept as `previous` so deploys can publish it in "
            "Synapse's old_signing_keys (other servers still verify old events with it)"
        )


@app.command("ensure")
def ensure(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Create every secret the Plan refers to that does not exist yet (never changes one)."""
    console = Console(json_mode=json_)
    store = _open_store(ctx, console)
    plan = load_plan(_state(ctx))
    created = store.ensure_plan(plan)
    if json_:
        console.json({"store": str(store.root), "created": created})
        return
    if created:
        console.info(
            f"created {created} secret{'s' if created != 1 else ''} in "
            f"{escape(str(store.root))}; commit them"
        )
    else:
        console.info("every secret the Plan refers to already exists")
