"""Communes' requests: checks in French, files the loader accepts, approval into the inventory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from relais import requests as req
from relais.cli.context import State
from relais.cli.requests import app as requests_app
from relais.cli.requests import request_app
from relais.errors import ProblemCollector
from relais.inventory import load_commune, load_inventory
from relais.lock import read_lock
from relais.planner import plan_directory
from relais.referential import Referential


def draft(**changes: object) -> req.RequestDraft:
    values: dict[str, object] = dict(
        commune="Lisieux", flavor="matrix-dedicated", domain_choice="own", own_domain="lisieux.fr",
        agents=[req.AgentDraft("Camille Martin", "c.martin@lisieux.fr"),
                req.AgentDraft("Hugo Lemaire", "h.lemaire@lisieux.fr")],
        mairie_email="mairie@lisieux.fr", dpo_name="Centre de gestion du Calvados",
        dpo_email="dpo@cdg14.fr", retention_messages="1y", retention_logs="180d",
        requester_name="Sophie Durand", requester_role="Secrétaire de mairie",
        requester_email="s.durand@lisieux.fr", requester_phone="02 31 00 00 00",
    )
    values.update(changes)
    return req.RequestDraft(**values)  # type: ignore[arg-type]


def problems_of(ctx: req.Context, d: req.RequestDraft) -> dict[str, str]:
    with pytest.raises(req.DraftInvalid) as caught:
        req.check_draft(d, ctx)
    return {p.field: p.message for p in caught.value.problems}


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def ctx(inventory_dir: Path, ref: Referential) -> req.Context:
    return req.Context.load(inventory_dir, ref)


def test_valid_request_writes_a_commune_file_the_loader_accepts(ctx: req.Context, ref: Referential) -> None:
    before = snapshot(ctx.root)
    created = req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    assert re.fullmatch(r"REQ-\d{4}-[A-HJ-NP-Z2-9]{8}", created.reference)
    written = snapshot(ctx.root) - before
    folder = ctx.root / "requests" / created.reference
    assert written == {folder / "14366-lisieux.yaml", folder / "request.yaml"}
    problems = ProblemCollector()
    decl = load_commune(folder / "14366-lisieux.yaml", "x", ref, problems, [])
    assert decl is not None, problems.problems
    assert decl.data.tenant.status == "requested"
    assert decl.data.commune.siren == "211403662"          # from the official list, not typed
    assert decl.data.tenant.domain == "lisieux.fr"
    meta = yaml.safe_load((folder / "request.yaml").read_text())
    assert meta["requester"]["email"] == "s.durand@lisieux.fr" and meta["state"] == "pending"
    # The same file dropped into communes/ passes the whole inventory's checks (relais validate).
    (ctx.root / "communes" / "14366-lisieux.yaml").write_text((folder / "14366-lisieux.yaml").read_text())
    inventory = load_inventory(ctx.root, ref)
    assert "14366" in {c.insee for c in inventory.communes}


def test_subdomain_and_shared_choices(ctx: req.Context) -> None:
    sub = req.check_draft(draft(domain_choice="syndicate"), ctx)
    assert "domain" not in sub.data["tenant"]     # the planner derives <slug>.<syndicate domain>
    shared = req.check_draft(draft(flavor="matrix-shared", domain_choice="own"), ctx)
    assert "domain" not in shared.data["tenant"]
    assert shared.model.tenant.flavor == "matrix-shared"


@pytest.mark.parametrize("field_, value, expected", [
    ("commune", "Villeneuve-sur-Nulle", "Nous ne trouvons pas « Villeneuve-sur-Nulle » dans la liste officielle"),
    ("commune", "Les Loges", "Plusieurs communes portent ce nom"),
    ("commune", "01120", "fait partie de Montluel (01262)"),
    ("commune", "99999", "Aucune commune n'a le code 99999"),
    ("commune", "Caen", "a déjà un service de messagerie"),
    ("mairie_email", "mairie@lisieux", "il faut un nom de domaine complet"),
    ("mairie_email", "mairie.lisieux.fr", "il manque le « @ »"),
    ("dpo_name", "", "délégué à la protection des données (DPO) — c'est obligatoire"),
    ("dpo_email", "", "Indiquez l'adresse e-mail de votre délégué"),
    ("own_domain", "messagerie.normandie.example", "Ce domaine appartient au syndicat"),
    ("own_domain", "https://lisieux.fr/", "n'est pas un nom de domaine valide"),
    ("retention_messages", "10y", "Choisissez une durée de conservation des messages"),
    ("retention_logs", "30d", "Choisissez une durée de conservation des journaux"),
    ("flavor", "matrix", "Choisissez un des services proposés"),
    ("seats", "1", "inférieur au nombre d'agents indiqués (2)"),
    ("requester_phone", "appelez-moi", "numéro de téléphone n'est pas valide"),
])
def test_mistakes_get_friendly_french_messages(ctx: req.Context, field_: str, value: str, expected: str) -> None:
    found = problems_of(ctx, draft(**{field_: value}))
    assert expected in found[field_], found


def test_agents_are_checked_one_by_one(ctx: req.Context) -> None:
    found = problems_of(ctx, draft(agents=[
        req.AgentDraft("Camille Martin", "c.martin@lisieux.fr"),
        req.AgentDraft("Camille Martin", "camille@lisieux.fr"),
        req.AgentDraft("Jean <script>", "jean@@lisieux.fr"),
    ]))
    assert "même identifiant « camille.martin »" in found["agents-1-name"]
    assert "caractères que nous ne pouvons pas accepter" in found["agents-2-name"]
    assert "agents-2-email" in found
    assert "Indiquez au moins un agent" in problems_of(ctx, draft(agents=[]))["agents"]


def test_second_pending_request_for_a_commune_is_refused(ctx: req.Context) -> None:
    req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    assert "Une demande est déjà en cours pour Lisieux" in problems_of(ctx, draft())["commune"]


def test_autocomplete_label_resolves_to_its_commune(ref: Referential) -> None:
    lisieux = ref.current("14366")
    assert lisieux is not None
    assert req.resolve_commune(ref, req.commune_label(lisieux)) == (lisieux, None)
    assert req.resolve_commune(ref, "14123")[0] == ref.current("14341")   # postal code of Ifs alone
    assert "Plusieurs communes ont ce code postal" in (req.resolve_commune(ref, "14100")[1] or "")
    assert req.resolve_commune(ref, "lisieux")[0] == lisieux        # case forgiven


def test_approve_moves_into_communes_plans_and_locks(ctx: req.Context, ref: Referential) -> None:
    created = req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    approval = req.approve(ctx.root, ref, created.reference, by="claire")
    target = ctx.root / "communes" / "14366-lisieux.yaml"
    assert approval.commune_path == target and approval.placed
    assert "status: approved" in target.read_text() and "requested" not in target.read_text()
    assert not (created.directory / "14366-lisieux.yaml").exists()
    assert approval.request.state == "approved" and approval.request.decided_by == "claire"
    assert read_lock(ctx.root)["14366"].host == approval.tenant.host
    plan = plan_directory(ctx.root, referential=ref).plan
    assert plan.tenant("14366").status == "approved" and plan.tenant("14366").host is not None
    with pytest.raises(req.RequestError, match="already approved"):
        req.approve(ctx.root, ref, created.reference, by="claire")


def test_approve_refuses_a_tenant_that_does_not_fit(ctx: req.Context, ref: Referential) -> None:
    created = req.create_request(ctx, req.check_draft(draft(seats="5000"), ctx), channel="phone")
    lock_before = (ctx.root / "placements.lock").read_text()
    with pytest.raises(req.RequestError, match="does not fit"):
        req.approve(ctx.root, ref, created.reference, by="claire")
    assert not (ctx.root / "communes" / "14366-lisieux.yaml").exists()
    assert (ctx.root / "placements.lock").read_text() == lock_before
    assert req.read_request(ctx.root, created.reference).state == "pending"
    forced = req.approve(ctx.root, ref, created.reference, by="claire", force=True)
    assert not forced.placed and forced.reason and "missing" in forced.reason


def test_approve_refuses_what_the_inventory_refuses(ctx: req.Context, ref: Referential) -> None:
    created = req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    # Meanwhile an operator gave lisieux.fr to another commune by hand.
    bayeux = ctx.root / "communes" / "14047-bayeux.yaml"
    bayeux.write_text(bayeux.read_text().replace("flavor: matrix-shared", "flavor: xmpp\n  domain: lisieux.fr"))
    with pytest.raises(req.RequestError, match=r"domain lisieux\.fr is already used"):
        req.approve(ctx.root, ref, created.reference, by="claire")
    assert not (ctx.root / "communes" / "14366-lisieux.yaml").exists()


def test_reject_records_the_reason(ctx: req.Context) -> None:
    created = req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    rejected = req.reject(ctx.root, created.reference, reason="Commune hors du périmètre du syndicat", by="thomas")
    assert rejected.state == "rejected" and rejected.reason == "Commune hors du périmètre du syndicat"
    assert req.list_requests(ctx.root, "pending") == []
    with pytest.raises(req.RequestError, match="already rejected"):
        req.reject(ctx.root, created.reference, reason="again", by="thomas")


@pytest.mark.parametrize("reference", ["../../etc/passwd", "REQ-2026-../../x", "REQ-2026-ABCDEFG1", ""])
def test_references_are_never_paths(inventory_dir: Path, reference: str) -> None:
    with pytest.raises(req.RequestError, match="not a request reference"):
        req.read_request(inventory_dir, reference)


# --------------------------------------------------------------------------- CLI

PHONE_ANSWERS = "\n".join([
    "Les Loges",          # ambiguous: a numbered list follows
    "1",                  # Les Loges (14374)
    "3",                  # xmpp (offers: dedicated, shared, xmpp)
    "1",                  # subdomain of the syndicate
    "Anne Lefrançois", "anne@lesloges14.fr",
    "Paul Durand", "pas-une-adresse", "p.durand@lesloges14.fr",   # a mistake, asked again
    "",                   # no more agents
    "mairie@lesloges14.fr",
    "Centre de gestion du Calvados", "dpo@cdg14.fr",
    "",                   # messages: the default (1 an)
    "",                   # logs: the default (6 mois)
    "Marie Lenoir", "Maire", "maire@lesloges14.fr", "",
]) + "\n"


def test_request_new_from_the_terminal(inventory_dir: Path, ref: Referential) -> None:
    runner = CliRunner()
    result = runner.invoke(request_app, ["new"], input=PHONE_ANSWERS, obj=State(inventory_dir))
    assert result.exit_code == 0, result.output
    assert "Plusieurs communes portent ce nom" in result.output
    assert "il manque le « @ »" in result.output
    reference = re.search(r"Demande enregistrée : (REQ-\d{4}-\w{8})", result.output)
    assert reference, result.output
    request = req.read_request(inventory_dir, reference.group(1))
    assert request.channel == "phone" and request.insee == "14374"
    problems = ProblemCollector()
    decl = load_commune(request.commune_path, "x", ref, problems, [])
    assert decl is not None, problems.problems
    assert [a.email for a in decl.data.tenant.agents] == ["anne@lesloges14.fr", "p.durand@lesloges14.fr"]
    assert decl.data.tenant.retention.messages == 365 and decl.data.tenant.retention.logs == 180

    listed = runner.invoke(requests_app, ["list", "--json"], obj=State(inventory_dir))
    assert [r["reference"] for r in json.loads(listed.output)] == [request.reference]
    shown = runner.invoke(requests_app, ["show", request.reference], obj=State(inventory_dir))
    assert "Les Loges (14374), xmpp: pending" in shown.output and "status: requested" in shown.output
    approved = runner.invoke(requests_app, ["approve", request.reference], obj=State(inventory_dir),
                             env={"RELAIS_OPERATOR": "claire"})
    assert approved.exit_code == 0, approved.output
    assert "on host msg-" in approved.output
    assert json.loads(runner.invoke(requests_app, ["list", "--all", "--json"],
                                    obj=State(inventory_dir)).output)[0]["decided_by"] == "claire"


def test_reject_from_the_terminal(ctx: req.Context) -> None:
    created = req.create_request(ctx, req.check_draft(draft(), ctx), channel="portal")
    runner = CliRunner()
    result = runner.invoke(requests_app, ["reject", created.reference, "--reason", "Doublon"],
                           obj=State(ctx.root))
    assert result.exit_code == 0, result.output
    assert req.read_request(ctx.root, created.reference).reason == "Doublon"
