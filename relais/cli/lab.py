"""`relais lab`: the regional hosting on this machine (systemd-nspawn hosts on a lab bridge)."""

from __future__ import annotations

import os
import sys
import time

import typer
from rich.table import Table

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.errors import RelaisError
from relais.lab import Lab, LabStatus, RichReporter
from relais.lab import system as lab_system

app = typer.Typer(
    help="The lab: every `provider: lab` host as a systemd-nspawn machine on this machine (root).",
    no_args_is_help=True,
)


def _lab(ctx: typer.Context, console: Console, *, need_plan: bool = True) -> Lab:
    reporter = RichReporter(console.err, quiet=console.quiet)
    state: State = ctx.obj
    if need_plan:
        return Lab(load_plan(state), reporter=reporter)
    try:
        plan = load_plan(state)
    except RelaisError as error:
        # `down` must work even when the inventory no longer loads: use the lab's own record.
        console.warn(f"inventory not loaded ({error.message}); using the lab as last brought up")
        plan = None
    return Lab(plan, reporter=reporter)


def _render(status: LabStatus, console: Console) -> None:
    def flag(ok: bool) -> str:
        return "[green]yes[/]" if ok else "[red]no[/]"

    console.print(
        f"bridge {status.bridge} {status.gateway} ({status.subnet}): up {flag(status.bridge_up)}, "
        f"isolated {flag(status.isolated)}, resolver {flag(status.resolver)}, "
        f"package proxy {flag(status.package_proxy)}"
    )
    console.print(f"base image: {status.base_image or '[yellow]not built[/]'}")
    table = Table(show_edge=False, pad_edge=False)
    for column in ("host", "address", "state", "pid", "ssh", "systemd"):
        table.add_column(column)
    colours = {"running": "green", "starting": "yellow", "orphaned": "red", "stopped": "red",
               "absent": "dim"}
    for host in status.hosts:
        ssh_text = "-" if host.ssh is None else ("[green]ok[/]" if host.ssh else "[red]no[/]")
        systemd = host.systemd or "-"
        if host.systemd and host.systemd != "running":
            systemd = f"[yellow]{systemd}[/]"
        table.add_row(
            f"{host.name} [dim]{host.fqdn}[/]",
            host.address,
            f"[{colours.get(host.state, 'white')}]{host.state}[/]",
            str(host.pid or "-"),
            ssh_text,
            systemd,
        )
    console.print(table)


@app.command("up")
def up(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Changes and status as JSON on stdout."),
) -> None:
    """Bring the lab up (idempotent: a second run changes nothing; killed hosts are restarted)."""
    console = Console(json_mode=json_output)
    result = _lab(ctx, console).up()
    if json_output:
        console.json(result.as_dict())
        return
    if not result.changes:
        console.info("lab already up: nothing changed")
    console.info(f"lab up in {result.seconds:.1f} s")
    _render(result.status, console)


@app.command("down")
def down(
    ctx: typer.Context,
    purge: bool = typer.Option(
        False, "--purge", help="Also delete cached base images, the package cache and the controller key."
    ),
    json_output: bool = typer.Option(False, "--json", help="What was removed, as JSON on stdout."),
) -> None:
    """Remove every lab machine, mount, link, rule and process (caches are kept unless --purge)."""
    console = Console(json_mode=json_output)
    lab_system.require_root("down")
    started = time.monotonic()
    changes = _lab(ctx, console, need_plan=False).down(purge=purge)
    seconds = time.monotonic() - started
    if json_output:
        console.json({"changed": bool(changes), "changes": changes, "seconds": round(seconds, 2)})
    elif not changes:
        console.info("lab already down: nothing to remove")
    else:
        console.info(f"lab down in {seconds:.1f} s")


@app.command("status")
def status(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Status as JSON on stdout."),
) -> None:
    """What runs: bridge, isolation, resolver, package proxy, and each host (state, SSH, systemd)."""
    console = Console(json_mode=json_output)
    lab_system.require_root("status")
    result = _lab(ctx, console, need_plan=False).status()
    if json_output:
        console.json(result.as_dict())
    else:
        _render(result, console)


@app.command("ssh")
def ssh(
    host: str = typer.Argument(..., help="Lab host name (short or fully qualified)."),
) -> None:
    """Open a shell on a lab host (host key checked against the recorded known_hosts): as root
    on a fresh host, as the deploy account (then `sudo -i`) once hardening closed root login."""
    from relais.lab.ssh import admin_params

    lab_system.require_root("ssh")
    params = admin_params(Lab(None).ssh_params(host))
    argv = params.argv(tty=sys.stdin.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


@app.command("exec")
def exec_(
    host: str = typer.Argument(..., help="Lab host name (short or fully qualified)."),
    command: list[str] = typer.Argument(
        ..., help="Command to run (after --). One argument is run by the remote shell; several are quoted."
    ),
) -> None:
    """Run a command on a lab host as root (sudo once root login is closed); exits with its code."""
    lab_system.require_root("exec")
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise typer.BadParameter("give the command after --, e.g. `relais lab exec HOST -- hostname`")
    result = Lab(None).exec(host, command, timeout=None, capture=False)
    raise typer.Exit(result.returncode)


@app.command("ssh-params")
def ssh_params(
    host: str = typer.Argument(..., help="Lab host name."),
) -> None:
    """SSH connection parameters of a lab host, as JSON (for tools: pyinfra, ansible)."""
    console = Console(json_mode=True)
    lab_system.require_root("ssh-params")
    from relais.lab.ssh import admin_params

    console.json(admin_params(Lab(None).ssh_params(host)).as_dict())
