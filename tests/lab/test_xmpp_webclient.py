"""An agent logs in to the commune's web client (Converse.js over HTTPS and WebSocket) in
Debian's headless Chromium.

TLS is verified, not bypassed: the browser's profile gets an NSS database (certutil) that
trusts the lab CA, and no certificate error is ignored. The browser reaches only the
commune's lab host: its domain is mapped to the host's lab address and every other name
resolves to nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from relais.cli.context import default_inventory
from relais.deploy import DeployReport
from relais.lab import Lab
from relais.plan import Plan, PlannedTenant
from relais.secrets import ENV_PASSWORD_FILE, SecretStore, key_source
from tests.chromium import CHROMEDRIVER, chromium


@pytest.fixture(scope="module")
def tenant(plan: Plan) -> PlannedTenant:
    for candidate in plan.tenants:
        if candidate.flavor == "xmpp" and candidate.host and candidate.status == "active" and candidate.agents:
            return candidate
    pytest.fail("the lab inventory has no active xmpp commune")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: Plan, tenant: PlannedTenant
            ) -> Iterator[WebDriver]:
    if not Path(CHROMEDRIVER).exists() or not shutil.which("certutil"):
        pytest.fail("Chromium, its driver or certutil are missing: run scripts/browser-prereqs.sh "
                    "and install libnss3-tools")
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Relais lab CA", "-t", "C,,",
                    "-i", str(default_inventory() / "pki" / "ca.crt")], check=True)
    key = key_source().path
    if key is not None:  # the vault key stays where it is when $HOME changes
        monkeypatch.setenv(ENV_PASSWORD_FILE, str(key))
    monkeypatch.setenv("HOME", str(home))  # Chromium reads $HOME/.pki/nssdb
    address = plan.host(tenant.host or "").address
    with chromium(tmp_path / "profile", monkeypatch,
                  f"--host-resolver-rules=MAP {tenant.domain} {address}, MAP * ~NOTFOUND",
                  "--no-proxy-server", page_load_timeout=60) as driver:
        yield driver


def test_agent_logs_in_to_the_web_client(deployed: DeployReport, lab: Lab, plan: Plan, tenant: PlannedTenant,
                                         browser: WebDriver) -> None:
    agent = tenant.agents[0]
    password = SecretStore.open(default_inventory()).get(agent.password.ref)
    # No earlier session of this agent (another test, a resumable one) may pass for the browser's.
    kick = (f'>local sm = require"core.sessionmanager"; for _, s in pairs(prosody.full_sessions) do '
            f'if s.username and s.username.."@"..s.host == "{agent.address}" then s:close(); '
            f'sm.destroy_session(s, "test") end end')
    lua = f'>return prosody.bare_sessions["{agent.address}"] and "connected" or "absent"'
    lab.exec(tenant.host or "", ["prosodyctl", "shell", "--quiet"], input_text=kick + "\n")
    before = lab.exec(tenant.host or "", ["prosodyctl", "shell", "--quiet"], input_text=lua + "\n").stdout
    assert "absent" in before, before
    browser.get(f"https://{tenant.domain}/")
    assert browser.title == f"Messagerie de {tenant.commune}"
    wait = WebDriverWait(browser, 60)
    login = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "form#converse-login input[name=jid]")))
    login.send_keys(agent.login)
    browser.find_element(By.CSS_SELECTOR, "form#converse-login input[name=password]").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form#converse-login [type=submit]").click()
    # Logged in: the control box shows the agent's own profile.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "converse-user-profile, .controlbox-profile")))
    # Prosody has the session (the page's only way in is the WebSocket behind nginx).
    shown = lab.exec(tenant.host or "", ["prosodyctl", "shell", "--quiet"], input_text=lua + "\n").stdout
    assert "connected" in shown, shown
    # The policy only ever had to block third-party images (Converse's sponsors' logos on
    # conversejs.org): the page reaches no other site, and our own scripts and socket are allowed.
    violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert all("img-src" in v and "https://conversejs.org/" in v for v in violations), violations
