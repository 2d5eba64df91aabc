"""Offboarding a tenant: confirmations, dry-run listing, the run with hosts faked at the helper's
JSON interface (the archive is really encrypted with gpg and decrypted back), resumption after an
interruption, the evidence record, and the commune file's status change keeping its comments."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from relais import offboarding as off
from relais.lock import read_lock
from relais.offboarding import host as host_helper
from relais.plan import Plan
from relais.planner import plan_directory
from relais.referential import Referential
from relais.secrets import SecretStore, plan_secret_refs

PASSPHRASE = "une phrase secrète assez longue"
MESSAGE = "Bonjour de la mairie de Caen"


def _plan(inventory: Path, ref: Referential) -> Plan:
    return plan_directory(inventory, referential=ref).plan


def _host_tar(members: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeHosts:
    """Answers as the host helper would; records every request; can fail one action once."""

    def __init__(self, fail: str | None = None, remains: list[str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail
        self.remains = remains or []
        self.tar = _host_tar(
            {
                # Room ids make long paths (PAX headers in the host's tar).
                f"utilisateurs/c.martin_caen.fr/rooms/!{'r' * 80}:caen.fr/events": json.dumps(
                    {"type": "m.room.message", "content": {"body": MESSAGE}}
                )
                + "\n"
            }
        )

    def call(self, host: str, request: Mapping[str, Any], timeout: int = 3600) -> dict[str, Any]:
        self.calls.append((host, dict(request)))
        action = request["action"]
        if action == self.fail:
            self.fail = None
            raise off.HostStepError(f"{host}: {action}: connection lost", steps=[
                {"what": "systemd unit", "subject": "synapse-14118.service", "result": "erased"}])
        if action.startswith("export"):
            return {
                "ok": True,
                "tar": request["workdir"] + ".tar",
                "size": len(self.tar),
                "sha256": __import__("hashlib").sha256(self.tar).hexdigest(),
                "users": [
                    {
                        "user": "@c.martin:caen.fr",
                        "directory": "utilisateurs/c.martin_caen.fr",
                        "rooms": 1,
                        "events": 1,
                        "media": 0,
                    }
                ],
            }
        if action == "inspect":
            remains, self.remains = self.remains, []
            return {"ok": True, "remains": remains}
        if action == "erase_dedicated":
            return {
                "ok": True,
                "steps": [
                    {"what": "systemd unit", "subject": "synapse-14118.service", "result": "absent"},
                {"what": "PostgreSQL database", "subject": request["database"], "result": "erased"},
                    {"what": "Unix user", "subject": request["unix_user"], "result": "erased"},
                ],
            }
        return {
            "ok": True,
            "steps": [{"what": action, "subject": str(request.get("repository", "")), "result": "erased"}],
        }

    def fetch(self, host: str, path: str, dest: Path, timeout: int = 3600) -> None:
        dest.write_bytes(self.tar)

    def actions(self) -> list[str]:
        return [request["action"] for _, request in self.calls]


@pytest.fixture
def store(inventory_dir: Path, ref: Referential) -> SecretStore:
    secrets = SecretStore(inventory_dir / "secrets", b"a test vault key of enough length")
    secrets.ensure_plan(_plan(inventory_dir, ref))
    return secrets


def _run(
    inventory: Path,
    ref: Referential,
    secrets: SecretStore,
    hosts: FakeHosts,
    commune: str = "14118",
    *,
    passphrase: str | None = PASSPHRASE,
) -> off.Outcome:
    targets, progress = off.find_offboarding(_plan(inventory, ref), inventory, commune)
    converged: list[Plan] = []

    def replan() -> Plan:
        from relais.lock import write_lock

        result = plan_directory(inventory, referential=ref)
        write_lock(inventory, result.lock)
        return result.plan

    run = off.Offboarding(
        targets,
        progress,
        hosts,
        off.Options(inventory, "claire", passphrase=(lambda: passphrase) if passphrase else None),
        secrets=secrets,
        replan=replan,
        converge=converged.append,
    )
    outcome = run.run()
    assert "converge" in outcome.skipped or (
        converged and all(t.id != commune or t.status == "offboarded" for t in converged[-1].tenants)
    )
    return outcome


# --------------------------------------------------------------------------- confirmation


def test_both_confirmations_given_as_options() -> None:
    off.check_confirmation("14118", "Caen", yes_erase_data=True, confirm="14118", ask=None)


@pytest.mark.parametrize(
    ("yes", "confirm", "message"),
    [
        (True, "14047", "does not match"),  # another commune's code: refused whatever else
        (True, None, "needs the commune's INSEE code"),
        (False, "14118", "confirmation needed"),
        (False, None, "confirmation needed"),
    ],
)
def test_confirmation_refused_without_a_terminal(yes: bool, confirm: str | None, message: str) -> None:
    with pytest.raises(off.OffboardingError, match=message):
        off.check_confirmation("14118", "Caen", yes_erase_data=yes, confirm=confirm, ask=None)


def test_interactive_confirmation_needs_yes_and_the_typed_code() -> None:
    asked: list[str] = []

    def answers(*replies: str) -> Any:
        it = iter(replies)

        def ask(question: str) -> str:
            asked.append(question)
            return next(it)

        return ask

    off.check_confirmation("14118", "Caen", yes_erase_data=False, confirm=None, ask=answers("yes", "14118"))
    assert len(asked) == 2 and "INSEE" in asked[1]
    with pytest.raises(off.OffboardingError, match="not the INSEE code"):
        off.check_confirmation(
            "14118", "Caen", yes_erase_data=False, confirm=None, ask=answers("yes", "14119")
        )
    with pytest.raises(off.OffboardingError, match="not confirmed"):
        off.check_confirmation("14118", "Caen", yes_erase_data=False, confirm=None, ask=answers("no"))
    # The flag replaces the first question only: the code is still typed.
    off.check_confirmation("14118", "Caen", yes_erase_data=True, confirm=None, ask=answers("14118"))
    with pytest.raises(off.OffboardingError, match="does not match"):
        off.check_confirmation("14118", "Caen", yes_erase_data=True, confirm="1411", ask=answers("14118"))


def test_passphrase_from_a_file_or_refused(tmp_path: Path) -> None:
    good = tmp_path / "pass"
    good.write_text(PASSPHRASE + "\nignored\n", encoding="utf-8")
    assert off.read_passphrase(good, interactive=False) == PASSPHRASE
    short = tmp_path / "short"
    short.write_text("court\n", encoding="utf-8")
    with pytest.raises(off.OffboardingError, match="too short"):
        off.read_passphrase(short, interactive=False)
    with pytest.raises(off.OffboardingError, match="needs a passphrase"):
        off.read_passphrase(None, interactive=False)
    typed = iter([PASSPHRASE, PASSPHRASE + "x"])
    with pytest.raises(off.OffboardingError, match="differ"):
        off.read_passphrase(None, interactive=True, prompt=lambda _: next(typed))


# --------------------------------------------------------------------------- refusals and listing


@pytest.mark.parametrize(
    ("commune", "message"),
    [
        ("61169", "is requested"),  # Flers: a request, no data
        ("14283", "is approved"),  # Fourches: approved, not deployed yet
        ("Atlantis", "no tenant"),
    ],
)
def test_tenants_without_data_are_refused(
    inventory_dir: Path, ref: Referential, commune: str, message: str
) -> None:
    with pytest.raises(Exception, match=message):
        off.find_offboarding(_plan(inventory_dir, ref), inventory_dir, commune)


def test_dry_run_listing_of_each_flavor(inventory_dir: Path, ref: Referential) -> None:
    plan = _plan(inventory_dir, ref)
    caen = off.listing(off.find_offboarding(plan, inventory_dir, "14118")[0])
    subjects = {(i["host"], i["subject"]) for i in caen["erase"]}
    assert ("msg-caen-1", "synapse_14118") in subjects  # database and role
    assert ("msg-caen-1", "synapse-14118") in subjects  # Unix user
    assert ("msg-caen-1", "/var/lib/relais/synapse/14118") in subjects  # data and media
    assert ("backup-rouen", "/srv/borg/14118") in subjects  # borg repository
    assert ("controller", "secrets/tenants/14118.vault") in subjects
    assert ("controller", "secrets/pki/caen.fr.vault") in subjects
    assert any(plan.tenant("14118").agents[0].address in e for e in caen["export"])

    bayeux = off.listing(off.find_offboarding(plan, inventory_dir, "Bayeux")[0])
    whats = " ".join(i["what"] for i in bayeux["erase"])
    assert "deactivated with erase=true" in whats and "space" in whats
    # Never the shared database.
    assert not any(i["subject"] == "synapse_shared" for i in bayeux["erase"])
    assert not any(i["subject"].startswith("/srv/borg") for i in bayeux["erase"])
    assert any("shared homeserver's encrypted backups" in k for k in bayeux["kept"])

    hautot = off.listing(off.find_offboarding(plan, inventory_dir, "76350")[0])
    assert ("msg-caen-1", "/etc/prosody/relais.d/76350.cfg.lua") in {
        (i["host"], i["subject"]) for i in hautot["erase"]
    }
    assert any("%2e" in e for e in hautot["export"])


def test_shared_requests_never_reach_other_communes(inventory_dir: Path, ref: Referential) -> None:
    plan = _plan(inventory_dir, ref)
    targets = off.find_offboarding(plan, inventory_dir, "14047")[0]
    request = off.service_request(targets, lambda _ref: "registration-secret")
    assert request["user_prefix"] == "@bayeux." and request["shared"] is True
    assert request["backup_job"] is None and request["tls_dirs"] == []
    assert off.export_request(targets)["user_prefix"] == "@bayeux."


# --------------------------------------------------------------------------- inventory edit


COMMUNE = """version: 1
# Déclaration de la commune (commentaire conservé)
commune:
  insee: "14118"
  name: Caen
tenant:
  flavor: matrix-dedicated  # propre serveur
  agents:
    - {name: Camille Martin, email: c.martin@caen.fr}
  status: active
"""


def test_status_change_keeps_comments_and_layout() -> None:
    edited = off.mark_offboarded(COMMUNE, "2026-11-30T10:00:00Z", "claire", "offboarding/14118-2026-11-30.md")
    assert (
        edited.replace(
            "  status: offboarded  # offboarded 2026-11-30T10:00:00Z by claire (offboarding/14118-2026-11-30.md)\n",
            "  status: active\n",
        )
        == COMMUNE
    )


# --------------------------------------------------------------------------- the run


def test_offboarding_a_dedicated_tenant(inventory_dir: Path, ref: Referential, store: SecretStore) -> None:
    assert store.list("tenants/14118")
    hosts = FakeHosts()
    outcome = _run(inventory_dir, ref, store, hosts)

    assert hosts.actions()[:3] == ["export_matrix", "cleanup_export", "erase_dedicated"]
    assert ("backup-rouen", "erase_repository") in [(h, r["action"]) for h, r in hosts.calls]
    # The archive: gpg-encrypted, it decrypts with the passphrase to the README and the message.
    archive = outcome.archive
    assert archive.name.startswith("relais-14118-caen-") and archive.suffixes[-2:] == [".tar", ".gpg"]
    assert archive.read_bytes()[:1] != b"/" and MESSAGE.encode() not in archive.read_bytes()
    plain = off.decrypt(archive, PASSPHRASE)
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        names = tar.getnames()
        top = archive.name.removesuffix(".tar.gpg")
        assert all(n.startswith(top + "/") for n in names), names
        readme = next(n for n in names if n.endswith("LISEZMOI.txt"))
        assert "gpg --decrypt" in tar.extractfile(readme).read().decode()  # type: ignore[union-attr]
        events = next(n for n in names if n.endswith("/events"))
        assert MESSAGE in tar.extractfile(events).read().decode()  # type: ignore[union-attr]
    with pytest.raises(off.OffboardingError):
        off.decrypt(archive, "pas la bonne phrase secrète")
    assert (archive.parent / "LISEZMOI.txt").is_file()

    # The inventory: offboarded (comment added), placement gone, secrets shredded and not recreated.
    text = (inventory_dir / "communes" / "14118-caen.yaml").read_text(encoding="utf-8")
    assert "status: offboarded  # offboarded " in text and "by claire" in text
    assert "14118" not in read_lock(inventory_dir)
    assert store.list("tenants/14118") == [] and store.list("pki/caen.fr") == []
    assert not (inventory_dir / "pki" / "certs" / "caen.fr.crt").exists()
    plan = _plan(inventory_dir, ref)
    assert not any(r.ref.startswith("tenants/14118/") for r in plan_secret_refs(plan))
    caen = plan.tenant("14118")
    assert caen.host is None and not caen.probes and not any(r.name == "caen.fr" for r in plan.dns)

    # The evidence record, and its French version.
    record = json.loads(outcome.evidence_json.read_text(encoding="utf-8"))
    assert record["schema"] == "relais.offboarding/v1" and record["operator"] == "claire"
    assert record["export"]["sha256"] == off.sha256_file(archive)
    assert record["export"]["size_bytes"] == archive.stat().st_size
    assert "path" not in record["export"]  # the operator's own paths stay out of the repository
    assert "tenants/14118/backup_passphrase" in record["secrets_destroyed"]
    assert {
        "host": "msg-caen-1",
        "what": "PostgreSQL database",
        "subject": "synapse_14118",
        "result": "erased",
    } in record["erased"]
    assert record["finished_at"].endswith("Z") and record["verification"]["msg-caen-1"] == []
    assert outcome.evidence_json.name == f"14118-{record['finished_at'][:10]}.json"
    markdown = outcome.evidence_md.read_text(encoding="utf-8")
    assert "Procès-verbal" in markdown and record["export"]["sha256"] in markdown
    assert "synapse_14118" in markdown
    # Archives stay out of git; the evidence records are committed.
    assert (inventory_dir / "offboarding" / ".gitignore").read_text(encoding="utf-8").endswith("/*/\n")

    with pytest.raises(off.OffboardingError, match="already offboarded"):
        off.find_offboarding(_plan(inventory_dir, ref), inventory_dir, "14118")
    # A record is never overwritten (a commune that came back and left again the same day).
    stem = outcome.evidence_json.stem
    assert off.evidence_stem(outcome.evidence_json.parent, "14118", stem[6:]) == f"{stem}-2"


def test_an_interrupted_offboarding_resumes_without_redoing_the_export(
    inventory_dir: Path, ref: Referential, store: SecretStore
) -> None:
    hosts = FakeHosts(fail="erase_dedicated")
    with pytest.raises(off.OffboardingError, match="connection lost"):
        _run(inventory_dir, ref, store, hosts)
    progress = off.read_progress(inventory_dir, "14118")
    assert progress is not None and progress["done"] == ["export", "inventory"]
    archive = Path(progress["export"]["path"])
    digest = off.sha256_file(archive)
    # The status changed before any erasure: a deploy in between cannot recreate the tenant.
    assert _plan(inventory_dir, ref).tenant("14118").status == "offboarded"

    targets, resumed = off.find_offboarding(_plan(inventory_dir, ref), inventory_dir, "14118")
    assert resumed is not None and targets["host"] == "msg-caen-1"  # from the progress file
    outcome = _run(inventory_dir, ref, store, hosts, passphrase=None)  # no passphrase needed any more
    assert outcome.resumed and outcome.skipped == ["export", "inventory"]
    # What the failed run erased before failing is in the evidence, not hidden by the retry's "absent".
    record = json.loads(outcome.evidence_json.read_text())
    assert {"host": "msg-caen-1", "what": "systemd unit", "subject": "synapse-14118.service",
            "result": "erased"} in record["erased"]
    assert hosts.actions().count("export_matrix") == 1 and off.sha256_file(archive) == digest
    assert json.loads(outcome.evidence_json.read_text())["export"]["sha256"] == digest


def test_what_remains_after_erasure_fails_the_run_and_is_erased_again(
    inventory_dir: Path, ref: Referential, store: SecretStore
) -> None:
    hosts = FakeHosts(remains=["database synapse_14118"])
    with pytest.raises(off.OffboardingError, match=r"not entirely erased.*synapse_14118"):
        _run(inventory_dir, ref, store, hosts)
    progress = off.read_progress(inventory_dir, "14118")
    assert progress is not None and "service" not in progress["done"] and "evidence" not in progress["done"]
    _run(inventory_dir, ref, store, hosts, passphrase=None)
    assert hosts.actions().count("erase_dedicated") == 2


def test_a_recorded_archive_that_changed_is_exported_again(
    inventory_dir: Path, ref: Referential, store: SecretStore
) -> None:
    hosts = FakeHosts(fail="erase_dedicated")
    with pytest.raises(off.OffboardingError):
        _run(inventory_dir, ref, store, hosts)
    progress = off.read_progress(inventory_dir, "14118")
    assert progress is not None
    progress["done"] = []  # as if interrupted right after the archive was written
    off.write_json(off.progress_path(inventory_dir, "14118"), progress)
    Path(progress["export"]["path"]).write_bytes(b"tampered")
    _run(inventory_dir, ref, store, hosts)
    assert hosts.actions().count("export_matrix") == 2


# --------------------------------------------------------------------------- host helper and CLI


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/etc",
        "/srv/borg/",
        "/srv/borg/.ssh",
        "/srv/borg/shared",
        "/var/lib/relais/synapse/shared",
        "/var/lib/relais/synapse/14118/../shared",
        "/home/x",
        "/etc/relais/tls",
    ],
)
def test_the_host_helper_refuses_paths_it_does_not_own(path: str) -> None:
    with pytest.raises(host_helper.HostError):
        host_helper.checked_path(path)


def test_the_host_helper_refuses_shared_names() -> None:
    for name in ("synapse_shared", "postgres", "root", "synapse-shared", "a;drop"):
        with pytest.raises(host_helper.HostError):
            host_helper.checked_name(name, "database")
    assert host_helper.checked_path("/srv/borg/14118") == "/srv/borg/14118"


def test_the_host_helper_answers_one_json_line_with_errors() -> None:
    source = off.HOST_HELPER.read_text(encoding="utf-8")
    payload = json.dumps(
        {"script": source, "request": {"action": "erase_repository", "repository": "/etc/passwd", "job": "x"}}
    )
    done = subprocess.run(
        [sys.executable, "-c", off.HOST_BOOTSTRAP],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "refusing to touch /etc/passwd" in json.loads(done.stdout)["error"]


def _cli(*args: str, inventory: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200", "RELAIS_INVENTORY": str(inventory)}
    return subprocess.run(
        [sys.executable, "-m", "relais", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_dry_run_and_refusals(inventory_dir: Path, referential_cache: Path) -> None:
    before = (inventory_dir / "communes" / "14118-caen.yaml").read_text(encoding="utf-8")
    done = _cli(
        "tenant", "offboard", "Caen", "--dry-run", "--json", inventory=inventory_dir, cache=referential_cache
    )
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["tenant"] == "14118" and listing["erase"] and listing["export"]

    refused = _cli(
        "tenant",
        "offboard",
        "Caen",
        "--yes-erase-data",
        "--confirm",
        "14047",
        inventory=inventory_dir,
        cache=referential_cache,
    )
    assert refused.returncode == 1 and "does not match" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = _cli(
        "tenant", "offboard", "Caen", "--yes-erase-data", inventory=inventory_dir, cache=referential_cache
    )
    assert missing.returncode == 1 and "--confirm 14118" in missing.stderr
    flers = _cli(
        "tenant",
        "offboard",
        "61169",
        "--yes-erase-data",
        "--confirm",
        "61169",
        inventory=inventory_dir,
        cache=referential_cache,
    )
    assert flers.returncode == 1 and "only an active or suspended tenant" in flers.stderr
    assert (inventory_dir / "communes" / "14118-caen.yaml").read_text(encoding="utf-8") == before
    assert not (inventory_dir / "offboarding").exists()
