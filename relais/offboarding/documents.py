"""What the commune and its DPO read about an offboarding (French): the archive's LISEZMOI.txt
and the Markdown version of the evidence record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FLAVOR_LABELS = {
    "matrix-dedicated": "serveur Matrix dédié",
    "matrix-shared": "espace sur le serveur Matrix partagé du syndicat",
    "xmpp": "messagerie XMPP",
}
RESULT_LABELS = {"erased": "effacé", "absent": "déjà absent", "kept": "conservé"}


def _size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} Mio".replace(".", ",")
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} Kio".replace(".", ",")
    return f"{size} octets"


def readme(targets: Mapping[str, Any], syndicate: str, archive_name: str) -> str:
    """LISEZMOI.txt: beside the archive (how to open it) and inside it (what it holds)."""
    flavor = targets["flavor"]
    if flavor == "xmpp":
        content = (
            "  xmpp/<domaine>/             les données du serveur XMPP de la commune (Prosody) :\n"
            "                              comptes, listes de contacts, archives des messages\n"
            "  xmpp/conference.<domaine>/  les salons de discussion de groupe et leurs archives\n"
            "\n"
            "Les fichiers sont au format de stockage de Prosody (texte lisible) ; un autre\n"
            "prestataire utilisant Prosody peut les reprendre tels quels. Les comptes contiennent\n"
            "une empreinte (jamais le mot de passe en clair) des mots de passe des agents.\n"
        )
    else:
        content = (
            "  utilisateurs/<compte>/      un dossier par compte d'agent, produit par la commande\n"
            "                              d'export officielle de Synapse (« export-data ») :\n"
            "    rooms/<salon>/events      les messages et événements des salons (JSON, un par ligne)\n"
            "    rooms/<salon>/state       l'état des salons (nom, membres…)\n"
            "    user_data/                profil, appareils, connexions, données de compte\n"
            "    media_ids/ et media/      la description et le contenu des fichiers envoyés\n"
            "\n"
            "Les messages chiffrés de bout en bout restent chiffrés : seuls les appareils des\n"
            "agents (ou leur sauvegarde de clés) peuvent les lire.\n"
        )
    return (
        f"Export des données de messagerie — commune de {targets['commune']} (INSEE {targets['insee']})\n"
        f"{'=' * 72}\n"
        "\n"
        f"Service : {FLAVOR_LABELS.get(flavor, flavor)} ({targets['server_name']})\n"
        f"Préparé par : {syndicate}\n"
        f"Archive : {archive_name}\n"
        "\n"
        "Ouvrir l'archive\n"
        "----------------\n"
        "L'archive est chiffrée (format OpenPGP, AES-256). La phrase secrète vous est\n"
        "communiquée séparément (jamais dans le même envoi que l'archive).\n"
        "\n"
        "  Sous Linux ou macOS (GnuPG) :\n"
        f"    gpg --decrypt {archive_name} > export.tar\n"
        "    tar -xf export.tar\n"
        "\n"
        "  Sous Windows : installez Gpg4win (logiciel libre recommandé par l'ANSSI pour le\n"
        "  chiffrement de fichiers), ouvrez l'archive avec Kleopatra (« Déchiffrer/Vérifier »)\n"
        "  et saisissez la phrase secrète ; ouvrez ensuite le fichier .tar obtenu avec\n"
        "  l'explorateur de fichiers ou 7-Zip.\n"
        "\n"
        "Vérifier l'archive : son empreinte SHA-256 figure dans le procès-verbal\n"
        "d'effacement remis par le syndicat (commande : sha256sum <archive>).\n"
        "\n"
        "Contenu\n"
        "-------\n"
        f"{content}"
        "  manifeste.json              la liste des comptes exportés et le détail de l'export\n"
        "\n"
        "Après l'export, le syndicat a effacé le service, ses données, ses sauvegardes et\n"
        "leurs clés de chiffrement : cette archive est la seule copie restante. Conservez-la\n"
        "selon les règles d'archivage de la commune (durée d'utilité administrative).\n"
    )


def evidence_markdown(record: Mapping[str, Any]) -> str:
    """The evidence record in French, for the commune and its DPO."""
    commune = record["commune"]
    tenant = record["tenant"]
    export = record.get("export") or {}
    lines = [
        f"# Procès-verbal de fin de service — {commune['name']} (INSEE {commune['insee']})",
        "",
        f"- Référence : `{record['reference']}`",
        f"- Service : {FLAVOR_LABELS.get(tenant['flavor'], tenant['flavor'])} (`{tenant['server_name']}`), "
        f"hébergé sur `{tenant['host']}`",
        f"- Opération menée par : {record['operator']}",
        f"- Début : {record['started_at']} (UTC) — fin : {record['finished_at']} (UTC)",
        f"- Délégué à la protection des données : {commune['dpo']['name']} ({commune['dpo']['email']})",
        "",
        "## 1. Export remis à la commune",
        "",
    ]
    if export:
        lines += [
            f"- Archive : `{export['archive']}` ({_size(int(export['size_bytes']))})",
            f"- Empreinte SHA-256 : `{export['sha256']}`",
            f"- Chiffrement : {export['encryption']} ; la phrase secrète est transmise séparément.",
            f"- Exportée le : {export['created_at']} (UTC)",
        ]
        for user in export.get("users") or []:
            lines.append(
                f"  - compte `{user['user']}` : {user['rooms']} salon(s), {user['events']} événement(s), "
                f"{user['media']} fichier(s)"
            )
        for store in export.get("stores") or []:
            lines.append(f"  - domaine `{store['domain']}` : {store['files']} fichier(s) de données")
    lines += [
        "",
        "## 2. Données effacées",
        "",
        "| serveur | élément | objet | résultat |",
        "|---|---|---|---|",
    ]
    for item in record.get("erased") or []:
        lines.append(
            f"| {item['host']} | {item['what']} | `{item['subject']}` | "
            f"{RESULT_LABELS.get(item['result'].split(' ')[0], item['result'])} |"
        )
    lines += ["", "## 3. Clés détruites (effacement cryptographique)", ""]
    lines += [f"- `{ref}`" for ref in record.get("secrets_destroyed") or []] or ["- aucune"]
    lines += [
        "",
        "Les sauvegardes étaient chiffrées ; leur dépôt (qui contenait sa clé) et la phrase secrète "
        "de cette clé ont été détruits : aucune copie des sauvegardes ne peut plus être déchiffrée.",
        "",
    ]
    lines += ["## 4. Vérification", ""]
    for host, remains in sorted((record.get("verification") or {}).items()):
        lines.append(
            f"- `{host}` : " + ("rien ne subsiste" if not remains else "subsiste : " + ", ".join(remains))
        )
    lines += ["", "## 5. Ce qui n'est pas effacé, et pourquoi", ""]
    lines += [f"- {item}" for item in record.get("kept_fr") or []]
    lines += [
        "",
        f"Déclaration de l'inventaire : `{record['inventory']['file']}`, statut "
        f"« {record['inventory']['status']} ».",
        "",
    ]
    return "\n".join(lines)


def kept_in_french(targets: Mapping[str, Any]) -> list[str]:
    kept = [
        "les journaux système des serveurs (journaux de service), jusqu'à l'expiration de leur durée de "
        "conservation"
    ]
    if targets["flavor"] == "matrix-shared":
        kept.append(
            "les identifiants des comptes sur le serveur partagé, désactivés et effacés (Synapse garde "
            "l'identifiant pour qu'il ne soit jamais réattribué à quelqu'un d'autre)"
        )
        kept.append(
            "les messages envoyés par les agents dans des salons partagés avec d'autres communes : "
            "masqués pour toute personne qui rejoint ensuite (effacement RGPD), encore visibles dans "
            "l'historique des membres déjà présents"
        )
        shared = targets.get("shared_backup")
        if shared:
            kept.append(
                "les sauvegardes chiffrées du serveur partagé, qui contiennent toutes les communes "
                "ensemble, jusqu'à ce que leur rotation supprime les archives antérieures à la fin "
                "de service"
            )
    return kept
