"""A commune's whole life on the lab, as its mairie and the syndicate's operator live it:
a request (as the portal writes it) → approval → activation and deploy → an agent logs in
(matrix-nio, over HTTPS verifying the syndicate's CA) and sends a message → backed up →
offboarding → the encrypted archive, decrypted here, holds that message; afterwards nothing of
the tenant remains on its host or on the backup host (files, database, role, units, Unix user,
borg repository), its keys are gone from the vault, the other tenants still answer, and a
deploy after it changes nothing of theirs.

Flers (61169), a `requested` commune of the example region, is replaced by a fresh request for
a dedicated homeserver; its file, the placements lock and the offboarding folder are restored
at the end.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relais import offboarding, referential
from relais import requests as requests_mod
from relais.cli.context import State, default_inventory, load_plan
from relais.deploy import DeployReport
from relais.deploy.targets import resolve
from relais.lab import Lab
from relais.plan import Plan
from relais.probes import health
from relais.probes.matrix import deliver
from relais.probes.net import ProbeContext
from relais.secrets import SecretStore

FLERS = "61169"
PASSPHRASE = "Flers — phrase secrète de l'archive 2026"
FIGURES: dict[str, Any] = {}


def relais(*args: str, timeout: int = 3600) -> subprocess.CompletedProcess[str]:
    """The operator's command line (same environment: inventory, vault key, deploy steps)."""
    done = subprocess.run([sys.executable, "-m", "relais", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200", "RELAIS_OPERATOR": "lab-test"})
    assert done.returncode == 0, f"relais {' '.join(args)}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def on_host(plan: Plan, host: str, command: str) -> subprocess.CompletedProcess[str]:
    target = resolve(plan, plan.host(host))
    wrapped = f"sudo -n sh -c {shlex.quote(command)}" if target.user != "root" else command
    return target.run(wrapped, timeout=300)


def current_plan() -> Plan:
    return load_plan(State(inventory=default_inventory()))


@pytest.fixture(scope="module")
def inventory() -> Iterator[Path]:
    """The inventory the lab runs (the shipped example in CI): Flers' file, the lock and the
    offboarding folder are put back as they were at the end."""
    root = default_inventory()
    communes = root / "communes"
    saved = {p: p.read_text(encoding="utf-8") for p in communes.glob(f"{FLERS}-*.yaml")}
    lock = root / "placements.lock"
    saved_lock = lock.read_text(encoding="utf-8")
    records = root / "offboarding"
    existing = set(records.rglob("*")) if records.exists() else set()
    for path in saved:
        path.unlink()
    progress = offboarding.progress_path(root, FLERS).parent
    shutil.rmtree(progress, ignore_errors=True)  # an earlier run's archive
    try:
        yield root
    finally:
        for path in communes.glob(f"{FLERS}-*.yaml"):
            path.unlink()
        for path, text in saved.items():
            path.write_text(text, encoding="utf-8")
        lock.write_text(saved_lock, encoding="utf-8")
        if records.exists():
            for path in sorted(set(records.rglob("*")) - existing, reverse=True):
                if not path.is_dir():
                    path.unlink()
                elif not any(path.iterdir()):
                    path.rmdir()


@pytest.fixture(scope="module")
def others(deployed: DeployReport, plan: Plan) -> dict[str, Any]:
    """Tenants of the other communes that must be untouched, healthy before anything happens."""
    probe = ProbeContext.for_inventory(plan, default_inventory(), timeout=180)
    chosen = [next(t for t in plan.tenants if t.flavor == f and t.status == "active")
              for f in ("matrix-dedicated", "matrix-shared", "xmpp")]
    before = health(probe, chosen)
    assert all(r.health == "ok" for r in before), [(r.tenant, r.checks) for r in before]
    return {"tenants": chosen}


def test_request_approve_deploy_message_offboard(lab: Lab, inventory: Path, others: dict[str, Any],
                                                  tmp_path: Path) -> None:
    ref = referential.load_or_fetch()
    # 1. The mairie's request, as the portal writes it.
    draft = requests_mod.RequestDraft(
        commune=FLERS, flavor="matrix-dedicated", domain_choice="syndicate",
        agents=[requests_mod.AgentDraft("Émilie Guérin", "e.guerin@flers.fr"),
                requests_mod.AgentDraft("Paul Lebrun", "p.lebrun@flers.fr")],
        mairie_email="contact@flers.fr", dpo_name="Flers Agglo, DPO mutualisé", dpo_email="dpo@flers-agglo.fr",
        retention_messages="1y", retention_logs="180d", requester_name="Émilie Guérin",
        requester_role="Secrétaire de mairie", requester_email="e.guerin@flers.fr")
    context = requests_mod.Context.load(inventory, ref)
    created = requests_mod.create_request(context, requests_mod.check_draft(draft, context), channel="portal")

    # 2. The operator approves, activates and deploys the commune's hosts.
    relais("requests", "approve", created.reference)
    relais("tenant", "activate", FLERS, "--no-deploy")
    started = time.monotonic()
    relais("deploy", "--limit", FLERS)
    FIGURES["deploy_new_tenant_s"] = round(time.monotonic() - started)
    plan = current_plan()
    flers = plan.tenant(FLERS)
    assert flers.status == "active" and flers.flavor == "matrix-dedicated" and flers.host
    assert flers.backup.target_host and flers.backup.repository
    host, backup_host = flers.host, flers.backup.target_host

    # 3. An agent logs in and sends a message to a colleague (matrix-nio, HTTPS, the CA verified).
    probe = ProbeContext.for_inventory(plan, inventory, timeout=180)
    delivery = deliver(probe, flers.agents[0], flers.agents[1])
    assert delivery.delivered, delivery

    # 4. The nightly backup has run: a borg repository exists on the backup host.
    relais("backup", "run", FLERS)
    assert on_host(plan, backup_host, f"test -d {flers.backup.repository}").returncode == 0
    assert SecretStore.open(inventory).list(f"tenants/{FLERS}")

    # 5. Offboarding: a dry run touches nothing, then the real one (double confirmation by options).
    dry = json.loads(relais("tenant", "offboard", FLERS, "--dry-run", "--json").stdout)
    assert any(i["subject"] == flers.database for i in dry["erase"])
    assert current_plan().tenant(FLERS).status == "active"
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n", encoding="utf-8")
    passphrase.chmod(0o600)
    started = time.monotonic()
    done = relais("tenant", "offboard", FLERS, "--yes-erase-data", "--confirm", FLERS,
                  "--passphrase-file", str(passphrase), "--json")
    FIGURES["offboard_s"] = round(time.monotonic() - started)
    record = json.loads(done.stdout)
    archive = Path(record["archive"])
    FIGURES["archive_bytes"] = archive.stat().st_size
    assert PASSPHRASE not in done.stdout + done.stderr

    # 6. The archive, decrypted as the commune would, holds the message.
    assert offboarding.sha256_file(archive) == record["export"]["sha256"]
    with tarfile.open(fileobj=io.BytesIO(offboarding.decrypt(archive, PASSPHRASE))) as tar:
        names = tar.getnames()
        assert any(n.endswith("/LISEZMOI.txt") for n in names)
        events = "".join(tar.extractfile(n).read().decode()  # type: ignore[union-attr]
                         for n in names if n.endswith("/events"))
    assert delivery.body in events
    assert {u["user"] for u in record["export"]["users"]} >= {a.address for a in flers.agents}

    # 7. Nothing of the tenant remains on its host or on the backup host.
    checks = {
        host: [f"test -e /etc/relais/synapse/{FLERS}", f"test -e /var/lib/relais/synapse/{FLERS}",
               f"id {flers.unix_user}", f"getent group {flers.unix_user}",
               f"systemctl cat synapse-{FLERS}.service", f"systemctl cat relais-backup-{FLERS}.timer",
               f"ls /etc/relais/backup/{FLERS}.*", f"test -e /var/lib/relais/backup/borg/{FLERS}",
               f"test -e /etc/relais/tls/{flers.server_name}",
               f"ls /etc/nginx/sites-enabled/relais-matrix-{flers.server_name}.conf",
               f"runuser -u postgres -- psql -Atc \"SELECT 1 FROM pg_database WHERE datname='{flers.database}'\""
               " | grep -q 1",
               f"runuser -u postgres -- psql -Atc \"SELECT 1 FROM pg_roles WHERE rolname='{flers.database}'\""
               " | grep -q 1",
               f"grep -rq {flers.server_name} /etc/relais/synapse /etc/nginx/sites-enabled /etc/postgresql",
               f"test -e {offboarding.WORK_ROOT}/{FLERS}"],
        backup_host: [f"test -e {flers.backup.repository}",
                      f"grep -q relais-backup-{FLERS} /srv/borg/.ssh/authorized_keys"],
    }
    for where, commands in checks.items():
        for command in commands:
            assert on_host(plan, where, command).returncode != 0, f"{where}: still there: {command}"
    assert SecretStore.open(inventory).list(f"tenants/{FLERS}") == []
    assert SecretStore.open(inventory).list(f"pki/{flers.server_name}") == []

    # 8. The inventory says so, the evidence is recorded, the Plan forgot the tenant.
    after = current_plan()
    assert after.tenant(FLERS).status == "offboarded" and after.tenant(FLERS).host is None
    assert not any(r.name == flers.server_name for r in after.dns)
    assert flers.server_name not in after.federation.matrix
    evidence = json.loads(Path(record["evidence"]["json"]).read_text(encoding="utf-8"))
    assert evidence["export"]["sha256"] == record["export"]["sha256"]
    assert all(not remains for remains in evidence["verification"].values())
    assert {(e["host"], e["what"]) for e in evidence["erased"]} >= {
        (host, "PostgreSQL database"), (host, "PostgreSQL role"), (host, "Unix user"),
        (backup_host, "borg repository (with its repokey)")}
    assert f"tenants/{FLERS}/backup_passphrase" in evidence["secrets_destroyed"]
    assert Path(record["evidence"]["md"]).read_text(encoding="utf-8").startswith("# Procès-verbal")

    # 9. The other tenants still answer, and a deploy recreates nothing of Flers.
    after_probe = ProbeContext.for_inventory(after, inventory, timeout=180)
    results = health(after_probe, [after.tenant(t.id) for t in others["tenants"]])
    assert all(r.health == "ok" for r in results), [(r.tenant, r.checks) for r in results]
    dedicated = after.tenant(others["tenants"][0].id)
    assert deliver(after_probe, dedicated.agents[0], dedicated.agents[1]).delivered
    relais("deploy", "--limit", host)
    assert on_host(after, host, f"test -e /etc/relais/synapse/{FLERS}").returncode != 0
    assert on_host(after, host, f"id {flers.unix_user}").returncode != 0
    print(f"\nlifecycle figures: {FIGURES}")
