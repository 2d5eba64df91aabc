"""`relais request new` (a request taken by phone, French prompts) and
`relais requests list|show|approve|reject` (the operator's decision).

The prompts speak French because the operator reads the answers back to a
mairie; the operator-facing verbs speak the CLI's language (English).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable

import typer
from rich.markup import escape
from rich.table import Table

from relais import referential
from relais import requests as requests_mod
from relais.cli.context import State
from relais.console import Console
from relais.model import Flavor
from relais.requests import (
    LOG_RETENTION,
    MESSAGE_RETENTION,
    AgentDraft,
    Context,
    DraftInvalid,
    RequestDraft,
    RequestState,
    check_domain,
    check_email,
    check_phone,
    check_text,
    default_choice,
    resolve_commune,
    service_offers,
)

request_app = typer.Typer(help="Take a commune's request from the terminal (French prompts).",
                          no_args_is_help=True)
app = typer.Typer(help="Communes' requests: list, show, approve (into the inventory), reject.",
                  no_args_is_help=True)


@request_app.callback()
def _request_group() -> None:
    """Take a commune's request from the terminal (French prompts)."""


# --------------------------------------------------------------------------- request new


def _ask(console: Console, question: str, check: Callable[[str], str | None], default: str = "") -> str:
    """Ask until the answer passes `check` (its French message is shown otherwise)."""
    while True:
        answer: str = typer.prompt(question, default=default, show_default=bool(default))
        problem = check(answer)
        if problem is None:
            return answer.strip()
        console.err.print(f"[red]✗[/] {escape(problem)}")


def _choose(question: str, options: list[str], default: int = 1) -> int:
    """A numbered choice; returns the 0-based index."""
    for number, label in enumerate(options, start=1):
        typer.echo(f"  {number}. {label}")
    while True:
        answer: str = typer.prompt(question, default=str(default))
        if answer.strip().isdigit() and 1 <= int(answer.strip()) <= len(options):
            return int(answer.strip()) - 1
        typer.echo(f"Répondez par un numéro entre 1 et {len(options)}.", err=True)


def _agent_name_check(*, first: bool) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return check_text(value, "le nom de l'agent", required=first)
    return check


@request_app.command("new")
def new(ctx: typer.Context) -> None:
    """Enter a commune's request (by phone) with French prompts; writes it like the portal does."""
    state: State = ctx.obj
    console = Console()
    ref = referential.load_or_fetch()
    context = Context.load(state.inventory, ref)
    hosting = context.hosting
    draft = RequestDraft()

    typer.echo("Nouvelle demande de messagerie pour une commune (Ctrl-C pour abandonner).\n")
    while True:
        text = typer.prompt("Commune (nom, code postal ou code INSEE)")
        commune, problem = resolve_commune(ref, text)
        if commune is None:
            candidates = ref.search(text, limit=6) if text.strip() else []
            if candidates and len(text.strip()) <= 120:
                console.err.print(f"[yellow]?[/] {escape(problem or '')}")
                labels = [requests_mod.commune_label(c) for c in candidates] + ["Aucune de ces communes"]
                index = _choose("Votre choix", labels, default=len(labels))
                if index == len(candidates):
                    continue
                commune = candidates[index]
            else:
                console.err.print(f"[red]✗[/] {escape(problem or '')}")
                continue
        draft.commune = requests_mod.commune_label(commune)
        typer.echo(f"→ {commune.name} (INSEE {commune.insee}, département {commune.departement})\n")
        break

    offers = service_offers(hosting)
    typer.echo("Service :")
    index = _choose("Votre choix", [f"{o.title} — {o.cost}" for o in offers])
    flavor = offers[index].flavor
    draft.flavor = flavor.value

    if flavor is not Flavor.MATRIX_SHARED:
        typer.echo("\nAdresse de la messagerie :")
        own = _choose("Votre choix", [f"Un sous-domaine du syndicat (…{hosting.syndicate.domain})",
                                      "Le domaine de la commune (enregistrements DNS à créer)"]) == 1
        draft.domain_choice = "own" if own else "syndicate"
        if own:
            draft.own_domain = _ask(console, "Nom de domaine",
                                    lambda v: check_domain(v, hosting.syndicate.domain))

    typer.echo("\nAgents (laissez le nom vide pour terminer) :")
    while len(draft.agents) < requests_mod.MAX_AGENTS:
        number = len(draft.agents) + 1
        name = _ask(console, f"Agent {number} : prénom et nom", _agent_name_check(first=number == 1))
        if not name:
            break
        email = _ask(console, f"Agent {number} : e-mail professionnel", check_email)
        draft.agents.append(AgentDraft(name, email))

    typer.echo("")
    draft.mairie_email = _ask(console, "E-mail de la mairie", check_email)
    typer.echo("Le délégué à la protection des données (DPO) est obligatoire pour toute commune "
               "(souvent le centre de gestion).")
    draft.dpo_name = _ask(console, "Nom du DPO", lambda v: check_text(v, "le nom du DPO"))
    draft.dpo_email = _ask(console, "E-mail du DPO", check_email)

    defaults = hosting.defaults.retention
    typer.echo("\nConservation des messages :")
    draft.retention_messages = MESSAGE_RETENTION[_choose(
        "Votre choix", [c.label for c in MESSAGE_RETENTION],
        default=1 + [c.value for c in MESSAGE_RETENTION].index(
            default_choice(MESSAGE_RETENTION, defaults.messages)))].value
    typer.echo("Conservation des journaux de connexion (la CNIL recommande 6 mois à 1 an) :")
    log_default = [c.value for c in LOG_RETENTION].index(default_choice(LOG_RETENTION, defaults.logs))
    draft.retention_logs = LOG_RETENTION[_choose(
        "Votre choix", [c.label for c in LOG_RETENTION], default=1 + log_default)].value

    typer.echo("\nLa personne qui fait la demande :")
    draft.requester_name = _ask(console, "Prénom et nom", lambda v: check_text(v, "le nom"))
    draft.requester_role = _ask(console, "Fonction (facultatif)",
                                lambda v: check_text(v, "la fonction", required=False))
    draft.requester_email = _ask(console, "E-mail", check_email)
    draft.requester_phone = _ask(console, "Téléphone (facultatif)", check_phone)

    try:
        checked = requests_mod.check_draft(draft, context)
    except DraftInvalid as invalid:
        for field_problem in invalid.problems:
            console.err.print(f"[red]✗[/] {escape(field_problem.message)}")
        raise
    created = requests_mod.create_request(context, checked, channel="phone")
    console.print(f"Demande enregistrée : [bold]{created.reference}[/] "
                  f"({created.commune}, {created.flavor}) dans {created.directory}")
    console.print(f"Pour l'approuver : relais requests approve {created.reference}")


# --------------------------------------------------------------------------- requests


def _operator() -> str:
    try:
        return os.environ.get("RELAIS_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include approved and rejected requests."),
    state_: str = typer.Option("pending", "--state", help="pending, approved or rejected."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable list on stdout."),
) -> None:
    """List requests (pending ones by default)."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    if state_ not in ("pending", "approved", "rejected"):
        raise requests_mod.RequestError(f"unknown state {state_!r}",
                                        hint="one of pending, approved, rejected (or --all)")
    wanted: RequestState | None = None if all_ else state_  # type: ignore[assignment]  # checked above
    found = requests_mod.list_requests(state.inventory, wanted)
    if json_output:
        console.json([r.as_dict() for r in found])
        return
    if not found:
        console.print("no request" + ("" if all_ else f" in state {state_}"))
        return
    table = Table()
    for column in ("reference", "state", "submitted", "INSEE", "commune", "flavor", "requester", "channel"):
        table.add_column(column)
    for r in found:
        table.add_row(r.reference, r.state, r.submitted_at, r.insee, r.commune, r.flavor,
                      f"{r.requester.name} <{r.requester.email}>", r.channel)
    console.print(table)


@app.command()
def show(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="REQ-YYYY-XXXXXXXX"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Show one request: who asked, the decision, and the commune file."""
    state: State = ctx.obj
    console = Console(json_mode=json_output)
    request = requests_mod.read_request(state.inventory, reference)
    path = request.commune_path if request.state != "approved" else (
        state.inventory / "communes" / request.commune_file)
    try:
        commune_text = path.read_text(encoding="utf-8")
    except OSError:
        commune_text = ""
    if json_output:
        console.json({**request.as_dict(), "commune_yaml": commune_text})
        return
    r = request
    console.print(f"[bold]{r.reference}[/] — {escape(r.commune)} ({r.insee}), {r.flavor}: {r.state}")
    console.print(f"submitted {r.submitted_at} via {r.channel} by {escape(r.requester.name)}"
                  + (f" ({escape(r.requester.role)})" if r.requester.role else "")
                  + f" <{escape(r.requester.email)}>"
                  + (f", {escape(r.requester.phone)}" if r.requester.phone else ""))
    if r.message:
        console.print(f"message: {escape(r.message)}")
    if r.decided_at:
        console.print(f"decided {r.decided_at} by {escape(r.decided_by or '?')}"
                      + (f": {escape(r.reason)}" if r.reason else ""))
    if commune_text:
        console.print(f"\n[dim]{path}[/]")
        console.print(escape(commune_text), end="")


@app.command()
def approve(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="REQ-YYYY-XXXXXXXX"),
    force: bool = typer.Option(False, "--force", help="Approve even if the tenant does not fit yet."),
) -> None:
    """Move the request into communes/ as approved, plan it and record its placement."""
    state: State = ctx.obj
    console = Console()
    approval = requests_mod.approve(state.inventory, referential.load_or_fetch(), reference,
                                    by=_operator(), force=force)
    tenant = approval.tenant
    console.print(f"approved {approval.request.reference}: {approval.commune_path}")
    if approval.placed:
        console.print(f"{tenant.commune} ({tenant.insee}): {tenant.flavor} {tenant.server_name} "
                      f"on host {tenant.host}; placement recorded in placements.lock")
        console.print(f"next: `relais tenant activate {tenant.insee}` deploys it, "
                      f"then `relais onboarding {tenant.insee}`")
    else:
        console.warn(f"{tenant.insee} is approved but does not fit: {approval.reason}")
        raise typer.Exit(2)


@app.command()
def reject(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="REQ-YYYY-XXXXXXXX"),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (the commune is told; write it in French)."),
) -> None:
    """Record the rejection of a request and its reason."""
    state: State = ctx.obj
    request = requests_mod.reject(state.inventory, reference, reason=reason, by=_operator())
    Console().print(f"rejected {request.reference} ({request.commune}): {escape(reason)}")
    Console().print(f"tell the requester: {request.requester.name} <{request.requester.email}>")
