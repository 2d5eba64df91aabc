"""`relais provision`: the Pulumi stacks fed with the Plan (preview, up, refresh, destroy).

Stacks: ``openstack`` and ``scaleway`` (the hosts of that provider, their sites' networks
and backup buckets) and ``dns`` (the syndicate's zone). Exit codes: 0 ok, 1 error,
2 CrossGuard violations in an offline preview.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from relais.cli.context import State, load_plan
from relais.console import Console
from relais.provision import default_state_dir, stack_options
from relais.provision.offline import OfflinePreview, PlannedResource

app = typer.Typer(
    help="Provision the regional hosting on OpenStack or Scaleway, and the syndicate's DNS zone, "
    "from the Plan (Pulumi).",
    no_args_is_help=True,
)

STACK_HELP = "Stack: openstack, scaleway (hosts of that provider) or dns (the syndicate's zone)."
StackOpt = typer.Option(..., "--stack", "-s", help=STACK_HELP)
StateOpt = typer.Option(None, "--state", envvar="RELAIS_PULUMI_STATE", file_okay=False,
                        help="Directory of the Pulumi state (file backend). "
                        "Default: $XDG_STATE_HOME/relais/pulumi.")
KeyOpt = typer.Option(None, "--ssh-key", envvar="RELAIS_CONTROLLER_KEY", dir_okay=False,
                      help="Public key installed by cloud-init for `relais deploy`. "
                      "Default: the lab controller's key.")
DnsOpt = typer.Option(None, "--dns-provider", envvar="RELAIS_DNS_PROVIDER",
                      help="Where the syndicate's zone is hosted: openstack (Designate) or scaleway.")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_resource(resource: PlannedResource) -> str:
    """The few inputs an operator reviews for each kind of resource."""
    i = resource.inputs
    kind = resource.type.rsplit(":", 1)[-1]
    if kind == "SecGroupRule":
        source = i.get("remoteIpPrefix") or f"group {i.get('remoteGroupId')}"
        return f"{i.get('protocol')}/{int(i.get('portRangeMin', 0))} from {source}: {i.get('description')}"
    if kind == "SecurityGroupRules":
        return ", ".join(f"{r.get('protocol', '').lower()}/{int(r.get('port', 0))} from {r.get('ipRange')}"
                         for r in i.get("inboundRules") or [])
    if kind == "SecurityGroup":
        return f"inbound {i.get('inboundDefaultPolicy')} by default, zone {i.get('zone')}"
    if kind == "Instance":
        return (f"flavor {i.get('flavorName')}, image {i.get('imageName')}, "
                f"region {i.get('region') or 'default'}, "
                f"country {(i.get('metadata') or {}).get('relais-country')}")
    if kind == "Server":
        return f"type {i.get('type')}, image {i.get('image')}, zone {i.get('zone')}"
    if kind == "Volume":
        size = i.get("size") or i.get("sizeInGb")
        return f"{int(size or 0)} GiB" + (f", zone {i['zone']}" if i.get("zone") else "")
    if kind == "Container":
        return (f"versioning {i.get('versioning')}, region {i.get('region') or 'default'}, "
                f"country {(i.get('metadata') or {}).get('relais-country')}")
    if kind == "Bucket":
        days = [r.get("noncurrentVersionExpiration", {}).get("noncurrentDays")
                for r in i.get("lifecycleRules") or [] if r.get("noncurrentVersionExpiration")]
        return (f"region {i.get('region')}, versioning {(i.get('versioning') or {}).get('enabled')}, "
                f"old versions expire after {int(days[0]) if days else '-'} days")
    if kind == "RecordSet":
        return f"{i.get('type')} {_short(', '.join(i.get('records') or []))} ttl {int(i.get('ttl', 0))}"
    if kind == "Record":
        return f"{i.get('type')} {_short(i.get('data'))} ttl {int(i.get('ttl', 0))}"
    if kind in ("Subnet", "PrivateNetwork"):
        cidr = i.get("cidr") or (i.get("ipv4Subnet") or {}).get("subnet")
        return f"{cidr}, region {i.get('region') or 'default'}"
    return ""


def render_offline(preview: OfflinePreview, console: Console) -> None:
    spec = preview.spec
    console.print(f"[bold]Stack {preview.stack}[/] (project {spec.project}, provider {spec.provider}) — "
                  "offline preview under Pulumi's mock runtime; nothing is created")
    for note in spec.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print()
    for depth, resource in preview.tree():
        label = f"{resource.type}  [bold]{escape(resource.name)}[/]"
        detail = describe_resource(resource)
        console.print("  " * depth + ("+ " if resource.custom else "") + label
                      + (f"  [dim]{escape(detail)}[/]" if detail else ""))
    console.print()
    counts = preview.counts()
    console.print(f"{sum(counts.values())} resources to create: "
                  + ", ".join(f"{n} {t.rsplit(':', 1)[-1]}" for t, n in counts.items()))
    if spec.commune_records:
        table = Table(title="Records each commune must create in its own zone", title_justify="left")
        for column in ("name", "type", "value", "ttl"):
            table.add_column(column)
        for record in spec.commune_records:
            table.add_row(record.name, record.type, record.value, str(record.ttl))
        console.print(table)
    if preview.violations:
        table = Table(title="CrossGuard violations (policies/crossguard)", title_justify="left",
                      title_style="bold red")
        for column in ("rule", "resource", "message"):
            table.add_column(column)
        for v in preview.violations:
            table.add_row(v.rule, v.name, v.message)
        console.print(table)
    else:
        console.print("CrossGuard: no violation")


def _state_dir(state: Path | None) -> Path:
    return state if state is not None else default_state_dir()


@app.command("preview")
def preview(
    ctx: typer.Context,
    stack: str = StackOpt,
    offline: bool = typer.Option(False, "--offline", help="Render the resource graph under Pulumi's "
                                 "mock runtime, without the pulumi CLI or any credentials."),
    state: Path | None = StateOpt,
    ssh_key: Path | None = KeyOpt,
    dns_provider: str | None = DnsOpt,
    json_output: bool = typer.Option(False, "--json", help="The graph and findings as JSON (offline)."),
) -> None:
    """Show what `up` would change (CrossGuard applied). Exit 2 on a policy violation."""
    console = Console(json_mode=json_output)
    plan = load_plan(ctx.obj)
    options = stack_options(stack, ssh_key=ssh_key, dns_provider=dns_provider, review_lab=offline)
    if offline:
        from relais.provision.offline import preview_offline

        result = preview_offline(plan, options)
        if json_output:
            console.json(result.as_dict())
        else:
            render_offline(result, console)
        if result.violations:
            raise typer.Exit(2)
        return
    _online(ctx, console, stack, "preview", state, ssh_key, dns_provider)


def _online(ctx: typer.Context, console: Console, stack: str, operation: str, state: Path | None,
            ssh_key: Path | None, dns_provider: str | None) -> None:
    from relais.provision.automation import pulumi_cli, run_operation

    pulumi_cli()  # before anything else: a missing CLI is the most likely problem
    plan_state: State = ctx.obj
    plan = load_plan(plan_state)
    options = stack_options(stack, ssh_key=ssh_key, dns_provider=dns_provider)
    result = run_operation(plan, options, operation,  # type: ignore[arg-type]
                           inventory=plan_state.inventory, state_dir=_state_dir(state),
                           on_output=lambda line: console.err.out(line, end="", highlight=False))
    if result.summary:
        console.info(", ".join(f"{n} {what}" for what, n in result.summary.items()))
    if result.written is not None:
        console.info(f"{result.written}: {len(result.hosts)} host addresses for the planner")


@app.command("up")
def up(ctx: typer.Context, stack: str = StackOpt, state: Path | None = StateOpt,
       ssh_key: Path | None = KeyOpt, dns_provider: str | None = DnsOpt) -> None:
    """Create or update the stack's resources, then record the hosts' addresses in
    inventory/provisioned/<stack>.yaml."""
    _online(ctx, Console(), stack, "up", state, ssh_key, dns_provider)


@app.command("refresh")
def refresh(ctx: typer.Context, stack: str = StackOpt, state: Path | None = StateOpt,
            ssh_key: Path | None = KeyOpt, dns_provider: str | None = DnsOpt) -> None:
    """Read the resources back from the cloud and rewrite the recorded addresses."""
    _online(ctx, Console(), stack, "refresh", state, ssh_key, dns_provider)


@app.command("destroy")
def destroy(ctx: typer.Context, stack: str = StackOpt, state: Path | None = StateOpt,
            ssh_key: Path | None = KeyOpt, dns_provider: str | None = DnsOpt) -> None:
    """Delete the stack's resources (backup buckets included) and forget their addresses."""
    _online(ctx, Console(), stack, "destroy", state, ssh_key, dns_provider)
