"""Communes' requests for a messaging tenant: create, list, show, approve, reject.

A request is a directory `inventory/requests/<reference>/` holding two files:

- `<insee>-<slug>.yaml`: the commune file exactly as it will land in
  `inventory/communes/` (schema of :mod:`relais.model`, status `requested`),
  so the loader validates it as it stands;
- `request.yaml`: what is about the request rather than the tenant: its
  reference, when and how it came in, who asked (a contact, kept out of the
  commune file), and the operator's decision (approval or rejection reason).

The portal and `relais request new` build requests through :func:`check_draft`
and :func:`create_request`; both validate with the model the loader uses and
then with the loader itself, so a request that is accepted also passes
`relais validate`. Everything a commune reads (problems included) is in French.
Approval is the trust anchor: nothing a commune sends reaches the inventory
before an operator approves it.

Nothing here takes a path from a commune: directory names are generated
references, file names come from the official referential.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from relais.errors import InventoryError, ProblemCollector, RelaisError
from relais.inventory import COMMUNES_DIR, agent_login, commune_files, load_commune, load_hosting
from relais.lock import write_lock
from relais.model import DOMAIN_RE, CommuneFile, Flavor, Hosting, Status
from relais.plan import PlannedTenant
from relais.planner import plan_directory
from relais.referential import OfficialCommune, Referential, normalize, slugify
from relais.sizing import tenant_need

REQUESTS_DIR = "requests"
META_FILE = "request.yaml"
META_VERSION = 1
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
REFERENCE_RE = re.compile(r"^REQ-\d{4}-[A-HJ-NP-Z2-9]{8}$")
MAX_AGENTS = 50
MAX_TEXT = 120
MAX_MESSAGE = 1000
PENDING_NOTE = ("# Statut « requested » : rien n'est créé avant l'approbation du syndicat "
                "(relais requests approve).\n")

RequestState = Literal["pending", "approved", "rejected"]
Channel = Literal["portal", "phone"]


class RequestError(RelaisError):
    """A request cannot be created, found, approved or rejected."""


# --------------------------------------------------------------------------- bounds

@dataclass(frozen=True)
class RetentionChoice:
    value: str
    days: int
    label: str


# The bounds the syndicate allows, aligned with the CNIL's guidance: messages
# from 6 months to 5 years; connection logs 6 months to 1 year (CNIL,
# recommandation sur la journalisation, 2021). One place, until hosting.yaml
# carries them (proposed: `portal: {retention_bounds: ...}`).
MESSAGE_RETENTION = (
    RetentionChoice("6m", 180, "6 mois"),
    RetentionChoice("1y", 365, "1 an"),
    RetentionChoice("2y", 730, "2 ans"),
    RetentionChoice("3y", 1095, "3 ans"),
    RetentionChoice("5y", 1825, "5 ans"),
)
LOG_RETENTION = (
    RetentionChoice("180d", 180, "6 mois"),
    RetentionChoice("365d", 365, "1 an"),
)


def default_choice(choices: Sequence[RetentionChoice], days: int | None) -> str:
    """The choice closest to the syndicate's default (within the bounds)."""
    if days is None:
        return choices[0].value
    return min(choices, key=lambda c: (abs(c.days - days), c.days)).value


# --------------------------------------------------------------------------- services

@dataclass(frozen=True)
class ServiceOffer:
    flavor: Flavor
    title: str
    summary: str
    domain: str
    memory_mib: int
    disk_mib: int

    @property
    def cost(self) -> str:
        return (f"Pour le syndicat : environ {_mo(self.memory_mib)} de mémoire réservée et "
                f"{_mo(self.disk_mib)} de disque pour 10 comptes.")


def _mo(mib: int) -> str:
    if mib >= 1024:
        return f"{mib / 1024:.1f} Go".replace(".", ",")
    return f"{mib} Mo"


def service_offers(hosting: Hosting) -> list[ServiceOffer]:
    """The services a commune may choose, explained plainly, with what each costs the syndicate."""
    offers = [ServiceOffer(
        Flavor.MATRIX_DEDICATED, "Votre propre serveur Matrix",
        "Un serveur de messagerie Matrix rien que pour votre commune, à votre nom "
        "(par exemple @prenom.nom:votre-commune.fr). Application Element sur ordinateur, "
        "téléphone et navigateur ; messages chiffrés de bout en bout ; échanges possibles avec "
        "les autres communes du syndicat.",
        "own", *_need(Flavor.MATRIX_DEDICATED))]
    if hosting.shared_homeserver is not None:
        server = hosting.shared_homeserver.server_name or hosting.syndicate.domain
        offers.append(ServiceOffer(
            Flavor.MATRIX_SHARED, "Un espace sur le serveur Matrix partagé du syndicat",
            f"Vos agents ont un compte sur le serveur régional du syndicat ({server}), dans un espace "
            "réservé à votre commune. Aucun domaine à gérer : c'est la solution la plus simple et la "
            "plus économe pour une petite commune. Même application (Element) et même chiffrement.",
            "none", *_need(Flavor.MATRIX_SHARED)))
    offers.append(ServiceOffer(
        Flavor.XMPP, "Une messagerie XMPP",
        "Une messagerie XMPP (le protocole ouvert du « chat »), avec des adresses du type "
        "prenom.nom@votre-domaine. Applications au choix : Conversations (Android), Monal (iPhone, "
        "Mac), Gajim (ordinateur). Très légère ; le chiffrement de bout en bout (OMEMO) dépend de "
        "l'application.",
        "own", *_need(Flavor.XMPP)))
    return offers


def _need(flavor: Flavor) -> tuple[int, int]:
    need = tenant_need(flavor, 10)
    return need.ram_mib, need.disk_mib


def dns_records_to_create(flavor: Flavor, domain: str) -> list[tuple[str, str, str]]:
    """(name, type, value) the commune creates in its own zone; mirrors the planner's records."""
    relay = "l'adresse IP du relais du syndicat (communiquée à la validation)"
    records = [(domain, "A", relay)]
    if flavor is Flavor.XMPP:
        records += [
            (f"_xmpp-client._tcp.{domain}", "SRV", "0 5 5222 <serveur du syndicat>."),
            (f"_xmpp-server._tcp.{domain}", "SRV", "0 5 5269 <serveur du syndicat>."),
            (f"conference.{domain}", "CNAME", f"{domain}."),
        ]
    return records


# --------------------------------------------------------------------------- drafts

@dataclass
class AgentDraft:
    name: str = ""
    email: str = ""


@dataclass
class RequestDraft:
    """A request as a commune fills it in (raw text), from the portal or the terminal."""

    commune: str = ""
    flavor: str = ""
    domain_choice: str = "syndicate"   # syndicate | own
    own_domain: str = ""
    agents: list[AgentDraft] = field(default_factory=list)
    seats: str = ""
    mairie_email: str = ""
    dpo_name: str = ""
    dpo_email: str = ""
    retention_messages: str = ""
    retention_logs: str = ""
    requester_name: str = ""
    requester_role: str = ""
    requester_email: str = ""
    requester_phone: str = ""
    message: str = ""


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


@dataclass(frozen=True)
class Requester:
    name: str
    role: str
    email: str
    phone: str


@dataclass(frozen=True)
class CheckedRequest:
    commune: OfficialCommune
    data: dict[str, Any]          # the commune file, ready for YAML
    model: CommuneFile
    requester: Requester
    message: str


class DraftInvalid(RequestError):
    """The draft has problems, each attached to a field, in French."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"{count} point{'s' if count > 1 else ''} à corriger dans la demande")

    def format(self) -> str:
        return "\n".join(f"{p.field} : {p.message}" for p in self.problems) + f"\n{self.message}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Names of people and bodies: letters of any script, digits, spaces and the
# punctuation names use. No slash, backslash, angle bracket or `..`.
_NAME_RE = re.compile(r"^[^\W_](?:[\w '’.,()&-]*[\w.)])?$")
# Stricter than the model's e-mail rule (no quotes, slashes or `..`); what passes
# here passes the model.
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?$")
_PATHLIKE = re.compile(r"\.\.[/\\]|[/\\]\.\.")
_PHONE_RE = re.compile(r"^\+?[0-9 .()-]{6,25}$")
_LABEL_INSEE = re.compile(r"\((\d{5}|2[AB]\d{3})\)\s*$|—\s*(\d{5}|2[AB]\d{3})\b")


def check_text(value: str, label: str, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    """A problem with a name (person, service), or None."""
    value = value.strip()
    if not value:
        return f"Indiquez {label}." if required else None
    if len(value) > limit:
        return f"Ce champ est trop long ({len(value)} caractères, {limit} au plus)."
    if _CONTROL.search(value) or ".." in value or not _NAME_RE.match(value):
        return ("Ce champ contient des caractères que nous ne pouvons pas accepter "
                "(par exemple / \\ < > ou « .. »). Utilisez seulement des lettres, des chiffres, "
                "des espaces, des tirets et des apostrophes.")
    return None


def check_email(value: str, *, required: bool = True) -> str | None:
    value = value.strip()
    if not value:
        return "Indiquez une adresse e-mail." if required else None
    if len(value) > 254 or _CONTROL.search(value):
        return "Cette adresse e-mail est trop longue ou contient des caractères invalides."
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return (f"« {value} » n'est pas une adresse e-mail complète : il manque le « @ » "
                "(exemple : mairie@ma-commune.fr).")
    if not _EMAIL_LOCAL.match(local) or ".." in local:
        return (f"La partie avant le « @ » de « {value} » contient des caractères invalides "
                "(exemple : prenom.nom@ma-commune.fr).")
    if not DOMAIN_RE.match(domain.lower()):
        return (f"« {value} » n'est pas une adresse e-mail valide : après le « @ », il faut un nom "
                "de domaine complet comme ma-commune.fr.")
    return None


def check_phone(value: str) -> str | None:
    value = value.strip()
    if value and not _PHONE_RE.match(value):
        return "Ce numéro de téléphone n'est pas valide (exemple : 02 31 00 00 00)."
    return None


def check_domain(value: str, syndicate_domain: str) -> str | None:
    value = value.strip().lower().rstrip(".")
    if not value:
        return "Indiquez votre nom de domaine (par exemple ma-commune.fr)."
    if len(value) > 253 or not DOMAIN_RE.match(value):
        return (f"« {value} » n'est pas un nom de domaine valide. Indiquez un nom comme "
                "ma-commune.fr ou messagerie.ma-commune.fr, sans « http:// » ni « / ».")
    if value == syndicate_domain or value.endswith("." + syndicate_domain):
        return ("Ce domaine appartient au syndicat : choisissez plutôt l'option « sous-domaine du "
                "syndicat », nous le créerons pour vous.")
    return None


def resolve_commune(referential: Referential, text: str) -> tuple[OfficialCommune | None, str | None]:
    """The current commune meant by a name, postal code, INSEE code or an autocomplete label."""
    text = text.strip()
    if not text:
        return None, "Indiquez votre commune : son nom, son code postal ou son code INSEE."
    if len(text) > MAX_TEXT or _CONTROL.search(text):
        return None, "Ce nom de commune est trop long ou contient des caractères invalides."
    label = _LABEL_INSEE.search(text)
    if label:
        code = label.group(1) or label.group(2)
        official = referential.current(code)
        if official is not None:
            return official, None
        text = code
    code = text.upper()
    if re.fullmatch(r"\d{5}|2[AB]\d{3}", code):
        official = referential.current(code)
        if official is not None:
            return official, None
        others = referential.non_current(code)
        if others:
            parent = referential.current(others[0].parent or "")
            if parent is not None:
                return None, (f"{others[0].name} ({code}) n'est plus une commune à part entière : elle "
                              f"fait partie de {parent.name} ({parent.insee}). La demande se fait au nom "
                              f"de {parent.name}.")
        by_postal = referential.search(code, limit=8) if code.isdigit() else []
        if len(by_postal) == 1:
            return by_postal[0], None
        if by_postal:
            return None, ("Plusieurs communes ont ce code postal : "
                          + _choices(by_postal) + ". Choisissez la vôtre dans la liste.")
        return None, (f"Aucune commune n'a le code {code} dans la liste officielle. Vérifiez le code "
                      "postal ou le code INSEE, ou tapez le nom de la commune.")
    found = referential.search(text, limit=8)
    wanted = normalize(text)
    exact = [c for c in found if normalize(c.name) == wanted]
    if len(exact) == 1:
        return exact[0], None
    if len(exact) > 1:
        return None, ("Plusieurs communes portent ce nom : " + _choices(exact)
                      + ". Choisissez la vôtre dans la liste (ou tapez son code postal).")
    if found:
        return None, (f"Nous ne trouvons pas « {text} » dans la liste officielle des communes. "
                      f"Vouliez-vous dire : {_choices(found[:5])} ?")
    return None, (f"Nous ne trouvons pas « {text} » dans la liste officielle des communes. "
                  "Vérifiez l'orthographe, ou tapez le code postal ou le code INSEE de la commune.")


def commune_label(commune: OfficialCommune) -> str:
    """How a commune is shown in the autocomplete list and put back in the field."""
    return f"{commune.name} — {commune.insee} (dép. {commune.departement})"


def _choices(communes: Iterable[OfficialCommune]) -> str:
    return ", ".join(f"{c.name} ({c.insee}, dép. {c.departement})" for c in communes)


@dataclass(frozen=True)
class Context:
    """What checking a draft needs to know about the syndicate's inventory."""

    root: Path
    hosting: Hosting
    referential: Referential

    @classmethod
    def load(cls, root: Path, referential: Referential) -> Context:
        problems = ProblemCollector()
        loaded = load_hosting(root, problems)
        problems.raise_if_any()
        assert loaded is not None
        return cls(root, loaded[0], referential)


def check_draft(draft: RequestDraft, ctx: Context) -> CheckedRequest:
    """Check every field (all problems at once, in French); return the commune file to write."""
    hosting = ctx.hosting
    problems: list[FieldProblem] = []

    def bad(field_: str, message: str | None) -> None:
        if message:
            problems.append(FieldProblem(field_, message))

    official, why = resolve_commune(ctx.referential, draft.commune)
    bad("commune", why)
    if official is not None:
        bad("commune", _already_known(ctx.root, official))

    offers = {o.flavor.value: o for o in service_offers(hosting)}
    flavor: Flavor | None = None
    if draft.flavor not in offers:
        bad("flavor", "Choisissez un des services proposés.")
    else:
        flavor = Flavor(draft.flavor)

    domain: str | None = None
    if flavor is not None and flavor is not Flavor.MATRIX_SHARED:
        if draft.domain_choice == "own":
            why = check_domain(draft.own_domain, hosting.syndicate.domain)
            bad("own_domain", why)
            if why is None:
                domain = draft.own_domain.strip().lower().rstrip(".")
        elif draft.domain_choice != "syndicate":
            bad("domain_choice", "Choisissez votre propre domaine ou un sous-domaine du syndicat.")

    agents: list[dict[str, str]] = []
    logins: dict[str, int] = {}
    filled = [(i, a) for i, a in enumerate(draft.agents) if a.name.strip() or a.email.strip()]
    if not filled:
        bad("agents", "Indiquez au moins un agent (nom et adresse e-mail professionnelle).")
    if len(filled) > MAX_AGENTS:
        bad("agents", f"{MAX_AGENTS} agents au plus par demande ; le syndicat ajoutera les autres.")
    for index, agent in filled[:MAX_AGENTS]:
        name_problem = check_text(agent.name, "le nom de l'agent")
        email_problem = check_email(agent.email)
        bad(f"agents-{index}-name", name_problem)
        bad(f"agents-{index}-email", email_problem)
        if name_problem is None:
            login = agent_login(agent.name.strip(), None)
            if not login:
                bad(f"agents-{index}-name", "Nous ne pouvons pas former un identifiant avec ce nom.")
            elif login in logins:
                bad(f"agents-{index}-name", f"Deux agents auraient le même identifiant « {login} » : "
                    "ajoutez une initiale pour les distinguer.")
            logins[login] = index
        if name_problem is None and email_problem is None:
            agents.append({"name": agent.name.strip(), "email": agent.email.strip()})

    seats: int | None = None
    if draft.seats.strip():
        if not draft.seats.strip().isdigit() or not 1 <= int(draft.seats.strip()) <= 10_000:
            bad("seats", "Indiquez un nombre de comptes entre 1 et 10 000, ou laissez vide.")
        else:
            seats = int(draft.seats.strip())
            if seats < len(filled):
                bad("seats", f"Le nombre de comptes prévus ({seats}) est inférieur au nombre "
                    f"d'agents indiqués ({len(filled)}).")

    bad("mairie_email", check_email(draft.mairie_email))
    bad("dpo_name", check_text(draft.dpo_name, "le nom de votre délégué à la protection des données "
                               "(DPO) — c'est obligatoire pour une commune"))
    bad("dpo_email", check_email(draft.dpo_email) if draft.dpo_email.strip() else
        "Indiquez l'adresse e-mail de votre délégué à la protection des données (DPO).")

    messages = {c.value: c for c in MESSAGE_RETENTION}.get(draft.retention_messages)
    logs = {c.value: c for c in LOG_RETENTION}.get(draft.retention_logs)
    if messages is None:
        bad("retention_messages", "Choisissez une durée de conservation des messages proposée.")
    if logs is None:
        bad("retention_logs", "Choisissez une durée de conservation des journaux proposée.")

    bad("requester_name", check_text(draft.requester_name, "votre nom"))
    bad("requester_role", check_text(draft.requester_role, "votre fonction", required=False))
    bad("requester_email", check_email(draft.requester_email))
    phone = draft.requester_phone.strip()
    bad("requester_phone", check_phone(phone))
    message = draft.message.strip()
    if len(message) > MAX_MESSAGE:
        bad("message", f"Votre message est trop long ({len(message)} caractères, {MAX_MESSAGE} au plus).")
    elif _CONTROL.search(re.sub(r"[\r\n\t]", " ", message)) or _PATHLIKE.search(message):
        bad("message", "Votre message contient des caractères que nous ne pouvons pas accepter "
            "(caractères de contrôle, ou « ../ »).")

    if problems or official is None or flavor is None or messages is None or logs is None:
        raise DraftInvalid(problems or [FieldProblem("", "La demande est incomplète.")])

    tenant: dict[str, Any] = {"flavor": flavor.value}
    if domain is not None:
        tenant["domain"] = domain
    tenant["agents"] = agents
    if seats is not None:
        tenant["seats"] = seats
    tenant["retention"] = {"messages": messages.value, "logs": logs.value}
    tenant["status"] = Status.REQUESTED.value
    commune: dict[str, Any] = {"insee": official.insee, "name": official.name}
    if official.siren:
        commune["siren"] = official.siren
    data: dict[str, Any] = {
        "version": 1,
        "commune": commune,
        "contacts": {
            "mairie": draft.mairie_email.strip(),
            "dpo": {"name": draft.dpo_name.strip(), "email": draft.dpo_email.strip()},
        },
        "tenant": tenant,
    }
    try:
        model = CommuneFile.model_validate(data)
    except ValidationError as exc:
        # The checks above are stricter than the model; reaching this is a bug, said plainly.
        raise DraftInvalid([FieldProblem(".".join(str(p) for p in e["loc"]),
                                         "valeur refusée par le modèle de l'inventaire : " + e["msg"])
                            for e in exc.errors(include_url=False)]) from None
    requester = Requester(draft.requester_name.strip(), draft.requester_role.strip(),
                          draft.requester_email.strip(), phone)
    return CheckedRequest(official, data, model, requester, message)


def _already_known(root: Path, commune: OfficialCommune) -> str | None:
    prefix = f"{commune.insee}-"
    if any(p.name.startswith(prefix) for p in commune_files(root)):
        return (f"{commune.name} a déjà un service de messagerie déclaré auprès du syndicat. "
                f"Pour le modifier, écrivez au syndicat.")
    for request in list_requests(root, state="pending"):
        if request.insee == commune.insee:
            return (f"Une demande est déjà en cours pour {commune.name} : le syndicat vous répondra "
                    "bientôt. Pour la compléter, écrivez au syndicat.")
    return None


# --------------------------------------------------------------------------- files

@dataclass(frozen=True)
class Request:
    reference: str
    directory: Path
    state: RequestState
    insee: str
    commune: str
    flavor: str
    channel: str
    submitted_at: str
    requester: Requester
    message: str
    decided_at: str | None
    decided_by: str | None
    reason: str | None
    commune_file: str          # file name of the commune file (in the request, or in communes/ once approved)

    @property
    def commune_path(self) -> Path:
        return self.directory / self.commune_file

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "state": self.state, "insee": self.insee,
            "commune": self.commune, "flavor": self.flavor, "channel": self.channel,
            "submitted_at": self.submitted_at,
            "requester": {"name": self.requester.name, "role": self.requester.role,
                          "email": self.requester.email, "phone": self.requester.phone},
            "message": self.message, "decided_at": self.decided_at, "decided_by": self.decided_by,
            "reason": self.reason, "commune_file": self.commune_file,
        }


def requests_dir(root: Path) -> Path:
    return root / REQUESTS_DIR


def new_reference(now: datetime | None = None) -> str:
    year = (now or datetime.now(UTC)).year
    return f"REQ-{year}-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def check_reference(reference: str) -> str:
    value = reference.strip().upper()
    if not REFERENCE_RE.match(value):
        raise RequestError(f"{reference!r} is not a request reference",
                           hint="references look like REQ-2026-7KQ4M9XH; `relais requests list` shows them")
    return value


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False,
                          width=100)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _commune_text(checked_data: Mapping[str, Any], header: str) -> str:
    return header + _dump(checked_data)


def create_request(ctx: Context, checked: CheckedRequest, *, channel: Channel,
                   now: datetime | None = None) -> Request:
    """Write the request (commune file + request.yaml) under `requests/<reference>/`.

    The commune file is read back with the loader before the request is kept, so
    what is accepted here passes `relais validate` once approved.
    """
    now = now or datetime.now(UTC)
    base = requests_dir(ctx.root)
    try:
        base.mkdir(mode=0o750, exist_ok=True)
        for _ in range(5):
            reference = new_reference(now)
            directory = base / reference
            try:
                directory.mkdir(mode=0o750)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 32^8 references
            raise RequestError("could not allocate a request reference")
    except OSError as exc:
        raise RequestError(f"cannot write requests in {base}: {exc.strerror}") from None
    official = checked.commune
    name = f"{official.insee}-{slugify(official.name)}.yaml"
    stamp = now.isoformat(timespec="seconds")
    how = "portail" if channel == "portal" else "téléphone"
    header = f"# Demande {reference} reçue le {stamp} ({how}).\n{PENDING_NOTE}"
    try:
        _atomic_write(directory / name, _commune_text(checked.data, header))
        problems = ProblemCollector()
        decl = load_commune(directory / name, f"{REQUESTS_DIR}/{reference}/{name}", ctx.referential,
                            problems, [])
        if decl is None:
            raise RequestError("the request does not pass the loader: "
                               + "; ".join(p.format() for p in problems.problems))
        meta = {
            "version": META_VERSION,
            "reference": reference,
            "state": "pending",
            "channel": channel,
            "submitted_at": stamp,
            "insee": official.insee,
            "commune": official.name,
            "flavor": checked.model.tenant.flavor.value,
            "commune_file": name,
            "requester": {"name": checked.requester.name, "role": checked.requester.role,
                          "email": checked.requester.email, "phone": checked.requester.phone},
            "message": checked.message,
        }
        _atomic_write(directory / META_FILE, _dump(meta))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return read_request(ctx.root, reference)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RequestError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != META_VERSION:
        raise RequestError(f"{path}: expected `version: {META_VERSION}` and the request's fields")
    return data


def _from_meta(directory: Path, data: dict[str, Any]) -> Request:
    requester = data.get("requester") or {}
    state = str(data.get("state", "pending"))
    if state not in ("pending", "approved", "rejected"):
        raise RequestError(f"{directory / META_FILE}: unknown state {state!r}")
    return Request(
        reference=str(data.get("reference", directory.name)), directory=directory,
        state=state,  # type: ignore[arg-type]  # checked just above
        insee=str(data.get("insee", "")), commune=str(data.get("commune", "")),
        flavor=str(data.get("flavor", "")), channel=str(data.get("channel", "")),
        submitted_at=str(data.get("submitted_at", "")),
        requester=Requester(str(requester.get("name", "")), str(requester.get("role", "")),
                            str(requester.get("email", "")), str(requester.get("phone", ""))),
        message=str(data.get("message", "")),
        decided_at=_opt(data.get("decided_at")), decided_by=_opt(data.get("decided_by")),
        reason=_opt(data.get("reason")), commune_file=str(data.get("commune_file", "")),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def read_request(root: Path, reference: str) -> Request:
    reference = check_reference(reference)
    directory = requests_dir(root) / reference
    path = directory / META_FILE
    if not path.is_file():
        raise RequestError(f"no request {reference} in {requests_dir(root)}",
                           hint="`relais requests list --all` shows every request")
    return _from_meta(directory, _read_meta(path))


def list_requests(root: Path, state: RequestState | None = None) -> list[Request]:
    base = requests_dir(root)
    if not base.is_dir():
        return []
    found = []
    for directory in sorted(base.iterdir()):
        if not REFERENCE_RE.match(directory.name) or not (directory / META_FILE).is_file():
            continue
        request = _from_meta(directory, _read_meta(directory / META_FILE))
        if state is None or request.state == state:
            found.append(request)
    return sorted(found, key=lambda r: (r.submitted_at, r.reference))


def _decide(request: Request, **changes: Any) -> None:
    path = request.directory / META_FILE
    data = _read_meta(path)
    data.update(changes)
    _atomic_write(path, _dump(data))


def _pending(request: Request) -> None:
    if request.state != "pending":
        raise RequestError(f"request {request.reference} is already {request.state}"
                           + (f" ({request.decided_at})" if request.decided_at else ""))


@dataclass(frozen=True)
class Approval:
    request: Request
    commune_path: Path
    tenant: PlannedTenant
    placed: bool
    reason: str | None            # why it does not fit, when it does not


def approve(root: Path, referential: Referential, reference: str, *, by: str,
            force: bool = False, now: datetime | None = None) -> Approval:
    """Move the request into `communes/` as `approved`, plan it and record its placement.

    The whole inventory is loaded and planned with the new file in place; any
    problem (a duplicate commune or domain, a tenant that does not fit) undoes
    the move. `force` keeps an approved tenant that does not fit (it waits for
    capacity, and `relais plan` reports it).
    """
    request = read_request(root, reference)
    _pending(request)
    source = request.commune_path
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestError(f"{source}: unreadable ({exc.strerror})") from None
    status_line = re.compile(r"^(  status: )requested$", re.M)
    if len(status_line.findall(text)) != 1:
        raise RequestError(f"{source}: expected one `status: requested` line under `tenant:`")
    target = root / COMMUNES_DIR / request.commune_file
    if target.exists():
        raise RequestError(f"{target} already exists: commune {request.insee} is already declared",
                           hint=f"reject the request: relais requests reject {request.reference} "
                           "--reason '...'")
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    approved_text = status_line.sub(r"\1approved", text).replace(
        PENDING_NOTE, f"# Approuvée le {stamp} par {by}.\n")
    target.parent.mkdir(exist_ok=True)
    _atomic_write(target, approved_text)
    try:
        result = plan_directory(root, referential=referential)
    except InventoryError as error:
        target.unlink(missing_ok=True)
        raise RequestError(f"request {request.reference} does not pass the inventory checks:\n"
                           + "\n".join(p.format() for p in error.problems)) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    tenant = result.plan.tenant(request.insee)
    unplaced = next((u for u in result.plan.unplaced if u.tenant == request.insee), None)
    reason = None
    if unplaced is not None:
        reason = (f"{unplaced.reason} (missing {unplaced.missing_ram_mib} MiB of memory, "
                  f"{unplaced.missing_disk_mib} MiB of disk)")
        if not force:
            target.unlink(missing_ok=True)
            raise RequestError(f"request {request.reference}: the tenant does not fit: {reason}",
                               hint="add capacity to hosting.yaml, or approve with --force to keep "
                               "it approved until it fits")
    write_lock(root, result.lock)
    source.unlink()
    _decide(request, state="approved", decided_at=stamp, decided_by=by,
            commune_file=request.commune_file, approved_file=f"{COMMUNES_DIR}/{request.commune_file}")
    return Approval(read_request(root, request.reference), target, tenant, unplaced is None, reason)


def reject(root: Path, reference: str, *, reason: str, by: str, now: datetime | None = None) -> Request:
    """Record the refusal and its reason (the commune is told by the operator)."""
    request = read_request(root, reference)
    _pending(request)
    reason = reason.strip()
    if not reason or len(reason) > MAX_MESSAGE:
        raise RequestError("a rejection needs a reason (1 to 1000 characters): the commune will read it")
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    _decide(request, state="rejected", decided_at=stamp, decided_by=by, reason=reason)
    return read_request(root, request.reference)
