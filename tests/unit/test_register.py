"""The register of processing (art. 30 RGPD): content in French from the Plan, files, and the
round trip with rule RGPD-06."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from policies import registre
from policies.catalog import check_plan
from relais import referential
from relais.cli.register import find_tenant
from relais.errors import RelaisError
from relais.plan import Plan
from relais.planner import plan_directory

from .test_policies_engine import TODAY, shipped_plan, with_host

__all__ = ["shipped_plan"]


def test_entry_content(shipped_plan: Plan) -> None:
    caen = shipped_plan.tenant("14118")
    data = registre.entry(shipped_plan, caen, today=TODAY)
    assert data["schema"] == "relais.registre/v2" and data["mise_a_jour"] == "2025-06-01"
    assert data["responsable_de_traitement"]["nom"] == "Commune de Caen"
    assert data["responsable_de_traitement"]["siren"] == "211401187"
    assert data["delegue_protection_donnees"] == {"nom": caen.dpo_name, "email": "dpo@caen.fr"}
    assert data["durees_conservation"]["messages_jours"] == 1095
    assert data["durees_conservation"]["journaux_jours"] == 365
    assert data["durees_conservation"]["sauvegardes_jours"] == 180
    assert [lieu["hote"] for lieu in data["localisation"]] == ["msg-caen-1", caen.backup.target_host]
    assert all(lieu["pays"] == "FR" and lieu["union_europeenne"] for lieu in data["localisation"])
    assert data["transferts_hors_ue"] == "Aucun"
    assert data["federation"] == {"protocole": "Matrix", "serveurs_du_syndicat": len(shipped_plan.federation.matrix),
                                  "serveurs_partenaires": []}
    assert "caen.fr" in shipped_plan.federation.matrix
    assert data["finalites"] and data["categories_personnes"] and data["categories_donnees"]
    assert data["destinataires"] and data["mesures_securite"]


def test_entry_reports_transfers_outside_the_eu(shipped_plan: Plan) -> None:
    plan = with_host(shipped_plan, "msg-caen-1", country="US")
    data = registre.entry(plan, plan.tenant("14118"), today=TODAY)
    assert data["transferts_hors_ue"] == ["msg-caen-1 (US)"]


def test_markdown_is_french_and_complete(shipped_plan: Plan) -> None:
    text = registre.markdown(registre.entry(shipped_plan, shipped_plan.tenant("50502"), today=TODAY))
    for heading in ("Responsable de traitement", "Délégué à la protection des données", "Finalités",
                    "Catégories de personnes concernées", "Catégories de données", "Destinataires",
                    "Durées de conservation", "Localisation des données", "Mesures de sécurité",
                    "Transferts hors de l'Union européenne"):
        assert f"## {heading}" in text
    assert "# Registre des activités de traitement — Saint-Lô (50502)" in text
    assert "| Messages et fichiers | 365 jours (1 an) |" in text
    assert "| service de messagerie et base de données | msg-caen-1 | caen | Caen | France |" in text


def test_find_tenant_by_insee_or_name(shipped_plan: Plan) -> None:
    assert find_tenant(shipped_plan, "50502").commune == "Saint-Lô"
    assert find_tenant(shipped_plan, "saint lo").insee == "50502"
    assert find_tenant(shipped_plan, "HÉROUVILLE-SAINT-CLAIR").insee == "14327"
    with pytest.raises(RelaisError) as error:
        find_tenant(shipped_plan, "Saint-Loo")
    assert error.value.hint == "did you mean Saint-Lô (50502)?"


def test_file_names_follow_the_commune_files(shipped_plan: Plan) -> None:
    assert registre.file_stem(shipped_plan.tenant("76390")) == "76390-les-loges"
    assert "61169" not in {t.id for t in registre.register_tenants(shipped_plan)}  # requested


def test_register_round_trip_with_rule_rgpd_06(inventory_dir: Path, ref: referential.Referential) -> None:
    plan = plan_directory(inventory_dir, referential=ref).plan
    folder = inventory_dir / "registre"
    folder.mkdir()
    for tenant in registre.register_tenants(plan):
        data = registre.entry(plan, tenant, today=date(2025, 1, 1))
        (folder / f"{registre.file_stem(tenant)}.json").write_text(json.dumps(data, ensure_ascii=False))
    report = check_plan(plan, today=TODAY, inventory=inventory_dir)
    assert report.not_passed() == []
    assert {f.subject for f in report.findings if f.rule == "RGPD-06"} == {
        t.id for t in registre.register_tenants(plan)}
    # Rouen's message retention changes in its commune file; the register is left behind.
    rouen = inventory_dir / "communes" / "76540-rouen.yaml"
    rouen.write_text(rouen.read_text().replace("messages: 2y", "messages: 3y"))
    plan = plan_directory(inventory_dir, referential=ref).plan
    report = check_plan(plan, today=TODAY, inventory=inventory_dir)
    [finding] = report.not_passed()
    assert (finding.rule, finding.subject) == ("RGPD-06", "76540")
    assert finding.evidence["declared"]["messages_days"] == 730
    assert finding.evidence["planned"]["messages_days"] == 1095
    assert report.exit_code() == 2


def test_a_corrupt_register_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "inventory" / "registre"
    folder.mkdir(parents=True)
    (folder / "14118-caen.json").write_text("{not json")
    with pytest.raises(RelaisError) as error:
        registre.load_retentions(folder)
    assert "inventory/registre/14118-caen.json" in error.value.message
    assert error.value.hint is not None and "relais register --all" in error.value.hint


def test_federation_names_partners_and_counts_the_syndicate_servers(shipped_plan: Plan) -> None:
    """A region's every server is the syndicate's: counted, not listed (an entry listing them
    grew with the region, a gigabyte per thousand communes); partners are named."""
    region = [f"commune-{i}.messagerie.example.fr" for i in range(5000)]
    plan = shipped_plan.model_copy(update={"federation": shipped_plan.federation.model_copy(
        update={"matrix": sorted([*shipped_plan.federation.matrix, *region]),
                "allow": ["partenaire.example.org", "caen.fr"]})})
    data = registre.entry(plan, plan.tenant("14118"), today=TODAY)
    assert data["federation"]["serveurs_du_syndicat"] == len(shipped_plan.federation.matrix) + 5000
    assert data["federation"]["serveurs_partenaires"] == ["partenaire.example.org"]
    text = registre.markdown(data)
    assert "commune-1.messagerie" not in text and len(text) < 20_000
    assert "`partenaire.example.org`" in text and f"les {len(region) + len(shipped_plan.federation.matrix)} " \
        "serveurs Matrix hébergés par le syndicat" in text
