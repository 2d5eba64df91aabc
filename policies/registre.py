"""The register of processing activities (RGPD art. 30), one entry per commune, in French.

The entry is built from the Plan alone: the commune is the controller (responsable de
traitement), the syndicate its processor (sous-traitant, art. 28). `relais register` writes
it as Markdown (for people) and JSON (`relais.registre/v2`, for tools); rule RGPD-06 reads
the JSON files committed under ``inventory/registre/`` back and compares their retention
with the Plan's.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from policies.engine import LIVE_STATUSES, RegisterRetention
from policies.rgpd import backup_window_days
from relais.errors import RelaisError
from relais.model import EU_EEA_COUNTRIES
from relais.plan import Plan, PlannedHost, PlannedTenant
from relais.yamlsafe import read_bounded

REGISTER_SCHEMA = "relais.registre/v2"
REGISTER_DIR = "registre"
MAX_ENTRY_BYTES = 1_000_000
"""An entry is a few kB; a larger file (or one that never ends) is not read to its end."""

FLAVORS_FR = {
    "matrix-dedicated": "Matrix, serveur dédié à la commune",
    "matrix-shared": "Matrix, espace sur le serveur régional mutualisé du syndicat",
    "xmpp": "XMPP, hôte virtuel sur le serveur du syndicat",
}
STATUSES_FR = {"requested": "demandé", "approved": "approuvé", "active": "actif", "suspended": "suspendu",
               "offboarded": "résilié"}
COUNTRIES_FR = {"FR": "France", "BE": "Belgique", "DE": "Allemagne", "NL": "Pays-Bas", "LU": "Luxembourg",
                "IT": "Italie", "ES": "Espagne", "PL": "Pologne", "IE": "Irlande", "AT": "Autriche"}


def slug_of(tenant: PlannedTenant) -> str:
    """The slug of the commune file name (<insee>-<slug>.yaml), so register files line up with it."""
    stem = Path(tenant.source).stem
    prefix = f"{tenant.insee}-"
    return stem[len(prefix):] if stem.startswith(prefix) else stem


def file_stem(tenant: PlannedTenant) -> str:
    return f"{tenant.insee}-{slug_of(tenant)}"


def _duree(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{days} jours ({years} an{'s' if years > 1 else ''})"
    if days % 30 == 0 and days < 365:
        return f"{days} jours ({days // 30} mois)"
    return f"{days} jours"


def _lieu(host: PlannedHost | None, role: str) -> dict[str, Any]:
    if host is None:
        return {"role": role, "hote": None, "site": None, "ville": None, "pays": None,
                "union_europeenne": None}
    return {"role": role, "hote": host.name, "site": host.site, "ville": host.city,
            "pays": host.country, "union_europeenne": host.country.upper() in EU_EEA_COUNTRIES}


_servers: list[Any] = [None, None, None]


def _syndicate_servers(plan: Plan, xmpp: bool) -> frozenset[str]:
    """The syndicate's own Matrix or XMPP servers, as a set made once per Plan."""
    fed = plan.federation
    if _servers[0] is not fed:
        _servers[:] = [fed, frozenset(fed.matrix), frozenset(fed.xmpp)]
    found: frozenset[str] = _servers[2 if xmpp else 1]
    return found


def entry(plan: Plan, tenant: PlannedTenant, *, today: date) -> dict[str, Any]:
    """The register entry of one tenant, as a JSON-ready dict with French keys."""
    hosts = {h.name: h for h in plan.hosts}
    home = hosts.get(tenant.host or "")
    backup_host = hosts.get(tenant.backup.target_host or "")
    r = tenant.retention
    window = backup_window_days(tenant.backup)
    xmpp = tenant.flavor == "xmpp"
    own = _syndicate_servers(plan, xmpp)
    # Servers beyond the syndicate's own, by name; the syndicate's own, by count: listing them
    # made each entry of a region name every other commune's server (a gigabyte per thousand).
    partenaires = sorted(s for s in set(plan.federation.allow) | set(tenant.federation_extra)
                         if s not in own)
    lieux = [_lieu(home, "service de messagerie et base de données"),
             _lieu(backup_host, "sauvegardes chiffrées")]
    hors_ue = [lieu for lieu in lieux if lieu["union_europeenne"] is False]
    mesures = [
        "Chiffrement des échanges (TLS) entre clients et serveur et entre serveurs fédérés",
        f"Sauvegardes quotidiennes ({tenant.backup.time}) chiffrées côté client (borg, "
        f"{tenant.backup.encryption}) vers un autre site que le serveur",
        "Durcissement des serveurs selon les recommandations de l'ANSSI (BP-028, usage sécurisé "
        "d'OpenSSH) : accès d'administration par clé SSH nominative, depuis les réseaux des exploitants",
        "Pare-feu local : tout flux entrant non nécessaire est refusé",
        "Inscription fermée : seuls les agents déclarés par la commune ont un compte"
        if not tenant.messaging.registration_open else "Inscription ouverte (à justifier)",
        "API d'administration non exposée sur Internet" if not tenant.messaging.admin_api_exposed
        else "API d'administration exposée (à justifier)",
        "Fédération limitée aux serveurs du syndicat et aux partenaires déclarés",
        "Journalisation des accès, conservée selon la recommandation de la CNIL",
        "Secrets (mots de passe, clés) conservés chiffrés dans un coffre (Ansible Vault)",
    ]
    return {
        "schema": REGISTER_SCHEMA,
        "mise_a_jour": today.isoformat(),
        "traitement": f"Messagerie instantanée des agents de la commune de {tenant.commune}",
        "commune": {"insee": tenant.insee, "nom": tenant.commune, "siren": tenant.siren or None,
                    "departement": tenant.departement, "region": tenant.region},
        "responsable_de_traitement": {
            "nom": f"Commune de {tenant.commune}", "siren": tenant.siren or None,
            "contact": tenant.mairie, "representant": "le maire",
        },
        "delegue_protection_donnees": {"nom": tenant.dpo_name, "email": tenant.dpo_email},
        "sous_traitant": {"nom": plan.syndicate.name, "contact": plan.syndicate.contact,
                          "role": "hébergement et exploitation du service (art. 28 RGPD)"},
        "service": {"type": FLAVORS_FR.get(tenant.flavor, tenant.flavor), "serveur": tenant.server_name,
                    "statut": STATUSES_FR.get(tenant.status, tenant.status), "comptes": tenant.accounts},
        "finalites": [
            "Permettre aux agents et aux élus de la commune d'échanger par messagerie instantanée "
            "dans un cadre professionnel",
            "Gérer les comptes des agents (création, désactivation, réinitialisation)",
            "Assurer la sécurité du service : journalisation des accès, détection des incidents",
            "Sauvegarder et restaurer les données en cas d'incident",
        ],
        "base_legale": "Exécution d'une mission d'intérêt public (art. 6(1)(e) RGPD)",
        "categories_personnes": [
            "Agents de la commune", "Élus de la commune",
            "Correspondants des serveurs fédérés autorisés (autres collectivités du syndicat et partenaires)",
        ],
        "categories_donnees": [
            "Identification : nom, prénom, adresse électronique professionnelle, identifiant de compte",
            "Contenu des échanges : messages, fichiers et médias partagés, salons",
            "Données de connexion : adresses IP, horodatages, appareils (journaux)",
        ],
        "donnees_sensibles": "Aucune collecte prévue ; les agents sont informés de ne pas en échanger",
        "destinataires": [
            "Agents et élus de la commune, selon les salons auxquels ils participent",
            f"Exploitants habilités du sous-traitant ({plan.syndicate.name}), pour l'administration",
            "Serveurs fédérés autorisés, pour les seuls échanges avec leurs utilisateurs",
        ],
        "federation": {
            "protocole": "XMPP" if xmpp else "Matrix",
            "serveurs_du_syndicat": len(own),
            "serveurs_partenaires": partenaires,
        },
        "transferts_hors_ue": ("Aucun" if not hors_ue else
                               [f"{lieu['hote']} ({lieu['pays']})" for lieu in hors_ue]),
        "durees_conservation": {
            "messages_jours": r.messages_days,
            "journaux_jours": r.logs_days,
            "journaux_justification": r.logs_justification,
            "sauvegardes_jours": window,
            "sauvegardes_rotation": {"quotidiennes": tenant.backup.keep_daily,
                                     "hebdomadaires": tenant.backup.keep_weekly,
                                     "mensuelles": tenant.backup.keep_monthly},
            "comptes": "Jusqu'au départ de l'agent, puis suppression à la demande de la commune",
        },
        "localisation": lieux,
        "mesures_securite": mesures,
    }


def markdown(data: dict[str, Any]) -> str:
    """The entry as a Markdown page for the commune's register."""
    c = data["commune"]
    rt = data["responsable_de_traitement"]
    dpo = data["delegue_protection_donnees"]
    st = data["sous_traitant"]
    d = data["durees_conservation"]

    def bullets(items: list[str]) -> str:
        return "\n".join(f"- {item}" for item in items)

    lieux = "\n".join(
        f"| {lieu['role']} | {lieu['hote'] or 'non placé'} | {lieu['site'] or '-'} | {lieu['ville'] or '-'} "
        f"| {COUNTRIES_FR.get(lieu['pays'] or '', lieu['pays'] or '-')} |" for lieu in data["localisation"])
    transferts = data["transferts_hors_ue"]
    journaux = _duree(d["journaux_jours"]) + (f" — justification : {d['journaux_justification']}"
                                              if d["journaux_justification"] else "")
    rot = d["sauvegardes_rotation"]
    f = data["federation"]
    federes = (f"les {f['serveurs_du_syndicat']} serveurs {f['protocole']} hébergés par le syndicat "
               f"({data['sous_traitant']['nom']}), dont celui de la commune"
               + (", et : " + ", ".join(f"`{s}`" for s in f["serveurs_partenaires"])
                  if f["serveurs_partenaires"] else " ; aucun autre"))
    return f"""# Registre des activités de traitement — {c['nom']} ({c['insee']})

*Fiche de traitement au titre de l'article 30 du RGPD, générée par Relais depuis le plan
de déploiement le {data['mise_a_jour']}. Ne pas modifier à la main : modifier l'inventaire,
puis relancer `relais register`.*

## Traitement

**{data['traitement']}** — {data['service']['type']} (`{data['service']['serveur']}`),
{data['service']['comptes']} compte(s), statut : {data['service']['statut']}.

## Responsable de traitement

{rt['nom']}{f" (SIREN {rt['siren']})" if rt['siren'] else ''}, représentée par {rt['representant']}.
Contact : {rt['contact']}.

## Délégué à la protection des données

{dpo['nom']} — {dpo['email']}

## Sous-traitant

{st['nom']} ({st['contact']}) : {st['role']}.

## Finalités

{bullets(data['finalites'])}

Base légale : {data['base_legale']}.

## Catégories de personnes concernées

{bullets(data['categories_personnes'])}

## Catégories de données

{bullets(data['categories_donnees'])}

Données sensibles : {data['donnees_sensibles']}.

## Destinataires

{bullets(data['destinataires'])}

Serveurs fédérés autorisés : {federes}.

## Transferts hors de l'Union européenne

{transferts if isinstance(transferts, str) else bullets(transferts)}

## Durées de conservation

| données | durée |
|---|---|
| Messages et fichiers | {_duree(d['messages_jours'])} |
| Journaux de connexion | {journaux} |
| Sauvegardes | {_duree(d['sauvegardes_jours'])} au plus ({rot['quotidiennes']} quotidiennes, \
{rot['hebdomadaires']} hebdomadaires, {rot['mensuelles']} mensuelles) |
| Comptes | {d['comptes']} |

## Localisation des données

| rôle | hôte | site | ville | pays |
|---|---|---|---|---|
{lieux}

## Mesures de sécurité

{bullets(data['mesures_securite'])}
"""


def register_tenants(plan: Plan) -> list[PlannedTenant]:
    """Tenants that hold personal data and therefore need a register entry."""
    return [t for t in plan.tenants if t.status in LIVE_STATUSES]


def load_retentions(folder: Path) -> dict[str, RegisterRetention] | None:
    """Retention stated by each register JSON file in `folder`; None when there is no folder."""
    if not folder.is_dir():
        return None
    from relais.inventory import gc_paused

    with gc_paused():  # a region's entries are tens of thousands of small containers, no cycles
        return _load_retentions(folder)


def _load_retentions(folder: Path) -> dict[str, RegisterRetention]:
    found: dict[str, RegisterRetention] = {}
    where = str(folder)
    # Names as text, sorted as text (the order of `sorted(folder.glob("*.json"))` for these
    # names, at a third of the cost for a region's tens of thousands of files).
    for name in sorted(n for n in os.listdir(where) if n.endswith(".json") and not n.startswith(".")):
        display = f"{folder.parent.name}/{folder.name}/{name}"
        try:
            with open(f"{where}/{name}", "rb") as stream:
                raw = read_bounded(stream, MAX_ENTRY_BYTES)
            if len(raw) > MAX_ENTRY_BYTES:
                raise ValueError(f"larger than {MAX_ENTRY_BYTES // 1000} kB")
            data = json.loads(raw.decode("utf-8"))
            insee = str(data["commune"]["insee"])
            d = data["durees_conservation"]
            found[insee] = RegisterRetention(
                file=display, messages_days=_int(d.get("messages_jours")),
                logs_days=_int(d.get("journaux_jours")), backups_days=_int(d.get("sauvegardes_jours")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RelaisError(
                f"{display}: not a register entry ({type(exc).__name__}: {exc})",
                hint="regenerate it with `relais register --all --output "
                     f"{folder.parent.name}/{folder.name}`",
            ) from None
    return found


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
