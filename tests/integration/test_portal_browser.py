"""A mairie fills in the portal's form in a real browser (Debian's headless Chromium).

The browser reaches nothing but the portal on 127.0.0.1: every other host name
resolves to nothing and every other connection goes to a dead proxy. It makes
the mistakes people make (an unknown commune, a malformed e-mail, no DPO),
reads the French messages, corrects them with the autocomplete, and sends a
valid request; the request file then passes the loader and approval.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from relais import requests as req
from relais.errors import ProblemCollector
from relais.inventory import load_commune, load_inventory
from relais.portal import create_app
from relais.referential import Referential
from tests.chromium import CHROMEDRIVER, CHROMIUM, chromium


@pytest.fixture
def portal(inventory_dir: Path, ref: Referential) -> Iterator[str]:
    app = create_app(inventory_dir, ref)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")) or not Path(CHROMEDRIVER).exists():
        pytest.fail("Chromium and its driver are missing: run scripts/browser-prereqs.sh (as root), "
                    "which installs Debian's chromium and chromium-driver packages")
    with chromium(tmp_path / "chromium-profile", monkeypatch,
                  # Only loopback: no name resolves, and anything else goes to a closed port.
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                  "--proxy-server=http://127.0.0.1:9", window="1280,2000") as driver:
        yield driver


def fill(driver: WebDriver, field_id: str, value: str) -> None:
    element = driver.find_element(By.ID, field_id)
    element.clear()
    if value:
        element.send_keys(value)


def error_of(driver: WebDriver, field_id: str) -> str:
    return driver.find_element(By.ID, f"{field_id}-erreur").text


def test_a_mairie_requests_a_tenant(portal: str, browser: WebDriver, inventory_dir: Path,
                                    ref: Referential) -> None:
    wait = WebDriverWait(browser, 15)
    browser.get(portal + "/")
    assert browser.title.startswith("Demander une messagerie pour votre commune")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"

    # First attempt, with the mistakes people make.
    fill(browser, "commune", "Villeneuve-sur-Nulle")
    browser.find_element(By.ID, "flavor-matrix-dedicated").click()
    browser.find_element(By.ID, "domain-own").click()
    fill(browser, "own_domain", "lisieux.fr")
    fill(browser, "agents-0-name", "Camille Martin")
    fill(browser, "agents-0-email", "c.martin@lisieux")
    fill(browser, "mairie_email", "mairie@lisieux.fr")
    fill(browser, "requester_name", "Sophie Durand")
    fill(browser, "requester_role", "Secrétaire de mairie")
    fill(browser, "requester_email", "s.durand@lisieux.fr")
    browser.find_element(By.ID, "envoyer").click()

    summary = wait.until(ec.visibility_of_element_located((By.ID, "resume-erreurs")))
    assert "Quelques points à corriger" in summary.text
    assert ("Nous ne trouvons pas « Villeneuve-sur-Nulle » dans la liste officielle des communes"
            in error_of(browser, "commune"))
    assert "il faut un nom de domaine complet comme ma-commune.fr" in error_of(browser, "agents-0-email")
    assert "c'est obligatoire pour une commune" in error_of(browser, "dpo_name")
    assert "adresse e-mail de votre délégué à la protection des données" in error_of(browser, "dpo_email")
    # What was typed is kept.
    assert browser.find_element(By.ID, "agents-0-name").get_attribute("value") == "Camille Martin"
    assert browser.find_element(By.ID, "flavor-matrix-dedicated").is_selected()
    assert not (inventory_dir / "requests").exists() or not any((inventory_dir / "requests").iterdir())

    # Corrections: the commune from the autocomplete (official list), the e-mail, the DPO.
    fill(browser, "commune", "lisie")
    option = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#commune-suggestions li")))
    assert "Lisieux" in option.text and "14100" in option.text
    option.click()
    assert browser.find_element(By.ID, "commune").get_attribute("value") == "Lisieux — 14366 (dép. 14)"
    fill(browser, "agents-0-email", "c.martin@lisieux.fr")
    assert not browser.find_element(By.ID, "agents-3-name").is_displayed()   # rows appear on demand
    browser.find_element(By.ID, "ajouter-agent").click()
    fill(browser, "agents-3-name", "Hugo Lemaire")
    fill(browser, "agents-3-email", "h.lemaire@lisieux.fr")
    fill(browser, "dpo_name", "Centre de gestion du Calvados")
    fill(browser, "dpo_email", "dpo@cdg14.fr")
    browser.find_element(By.CSS_SELECTOR, "#retention_messages option[value='3y']").click()
    browser.find_element(By.ID, "envoyer").click()

    reference = wait.until(ec.visibility_of_element_located((By.ID, "reference"))).text
    assert "Votre demande est enregistrée" in browser.page_source
    assert "mots de passe initiaux" in browser.page_source

    # The request is a commune file the loader accepts, as it stands and in the inventory.
    request = req.read_request(inventory_dir, reference)
    assert (request.insee, request.state, request.channel) == ("14366", "pending", "portal")
    problems = ProblemCollector()
    decl = load_commune(request.commune_path, request.commune_file, ref, problems, [])
    assert decl is not None, problems.problems
    tenant = decl.data.tenant
    assert (tenant.status, tenant.domain, tenant.retention.messages) == ("requested", "lisieux.fr", 1095)
    assert [a.name for a in tenant.agents] == ["Camille Martin", "Hugo Lemaire"]
    approval = req.approve(inventory_dir, ref, reference, by="claire")
    assert approval.placed and approval.tenant.host
    assert "14366" in {c.insee for c in load_inventory(inventory_dir, ref).communes}

    # No Content-Security-Policy violation, no script error, nothing missing along the way
    # (the 422 of the first attempt is the form answering with its corrections).
    logged = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    unexpected = [m for m in logged if "status of 422" not in m]
    assert unexpected == [], unexpected
