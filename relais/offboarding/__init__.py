"""Offboarding a commune's tenant: export its data for the commune, then erase it everywhere.

`relais tenant offboard COMMUNE` runs, in this order, steps that are each recorded in a
progress file (`<inventory>/offboarding/<insee>/progress.json`, not committed) so that an
interrupted offboarding resumes where it stopped and converges:

1. ``export``     every account's data (Synapse's `export-data` admin command per user, with
                  the media files it lists; Prosody's stores of the commune's virtual host and
                  group-chat component), packed with a French LISEZMOI.txt into a tar encrypted
                  with OpenPGP (``gpg --symmetric``, AES-256) under the passphrase the operator
                  gives (file or prompt, never a command-line argument). Not redone once the
                  archive exists with the hash recorded in the progress file.
2. ``inventory``  the commune file's status becomes `offboarded` (comments kept) and the
                  placement leaves `placements.lock`: from now on no deploy recreates anything,
                  and the Plan drops its DNS records, probes and backup job.
3. ``service``    on the tenant's host: a dedicated homeserver's unit, configuration, signing
                  key, data, media, database, role and Unix user; a shared commune's accounts
                  (deactivated and erased through Synapse's admin API), media, space and rooms;
                  an XMPP commune's virtual host and its data. Also its certificate, nginx site
                  and backup job (timers, passphrase and SSH key files, borg cache).
4. ``repository`` its borg repository on the backup host (the repokey lives in it) and the
                  backup key's line in the borg account's authorized_keys.
5. ``secrets``    crypto-shredding: the tenant's vault file (`tenants/<insee>`: backup passphrase
                  and SSH key, database password, signing key, agents' passwords) and its TLS
                  key (`pki/<name>`), and its certificate file in the inventory.
6. ``converge``   a deploy of every host, so that federation lists, monitoring targets, proxy
                  sites and the backup host's keys follow the Plan (skipped with --no-deploy).
7. ``verify``     each host is asked what of the tenant remains: the answer must be nothing.
8. ``evidence``   `<inventory>/offboarding/<insee>-<date>.json` and `.md` (French, for the
                  commune and its DPO): what was exported (names, sizes, SHA-256), what was
                  erased (host, paths, database, role, Unix user, repository, secret refs),
                  when (UTC) and by whom.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from relais.errors import RelaisError
from relais.plan import Plan, PlannedTenant

OFFBOARDING_DIR = "offboarding"
PROGRESS_FILE = "progress.json"
EVIDENCE_SCHEMA = "relais.offboarding/v1"
OFFBOARDABLE = ("active", "suspended")
WORK_ROOT = "/var/lib/relais/offboarding"
HOST_HELPER = Path(__file__).resolve().parent / "host.py"
MIN_PASSPHRASE = 12
STEPS = ("export", "inventory", "service", "repository", "secrets", "converge", "verify", "evidence")
GITIGNORE = (
    "# Archives of offboarded communes' data and progress files stay on the controller:\n"
    "# only the evidence records (<insee>-<date>.json/.md) are committed.\n/*/\n"
)
# Bootstrap run on a host: the helper's source and its request arrive on standard input.
HOST_BOOTSTRAP = (
    'import json,sys;d=json.load(sys.stdin);g={"__name__":"relais_offboarding_host"};'
    'exec(compile(d["script"],"relais-offboarding-host","exec"),g);'
    'sys.exit(g["main"](d["request"]))'
)


class OffboardingError(RelaisError):
    """An offboarding cannot start, or one of its steps failed."""


class HostStepError(OffboardingError):
    """A step failed on a host after erasing part of what it was asked to (`steps`)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 steps: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.steps = steps or []


# --------------------------------------------------------------------------- targets


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prosody_escape(name: str) -> str:
    from relais.backup.jobs import prosody_escape as escape

    return escape(name)


def shared_prefix(tenant: PlannedTenant) -> str | None:
    """The localpart prefix of a shared commune's accounts (`@<slug>.`)."""
    if not tenant.agents:
        return None
    return "@" + tenant.agents[0].login.split(".", 1)[0] + "."


def targets_for(plan: Plan, tenant: PlannedTenant) -> dict[str, Any]:
    """Everything of `tenant` that offboarding exports and erases, from the Plan as it is
    before the status changes (recorded in the progress file: afterwards the Plan no longer
    knows where the tenant was)."""
    from relais.matrix.homeservers import (
        ADMIN_LOCALPART,
        CONFIG_ROOT,
        DATA_ROOT,
        SHARED_ID,
        SYNAPSE_VENV,
    )
    from relais.xmpp.config import DATA_DIR, TENANTS_DIR, conference_domain
    from relais.xmpp.web import WEB_ROOT, site_name

    if tenant.host is None:
        raise OffboardingError(
            f"{tenant.commune} ({tenant.id}) is not placed on any host",
            hint="`relais plan` shows why; an unplaced tenant has no data to offboard",
        )
    key = tenant.id.lower()
    targets: dict[str, Any] = {
        "tenant": tenant.id,
        "insee": tenant.insee,
        "commune": tenant.commune,
        "siren": tenant.siren,
        "departement": tenant.departement,
        "source": tenant.source,
        "flavor": tenant.flavor,
        "status_before": tenant.status,
        "server_name": tenant.server_name,
        "domain": tenant.domain,
        "host": tenant.host,
        "agents": [a.address for a in tenant.agents],
        "mairie": tenant.mairie,
        "dpo": {"name": tenant.dpo_name, "email": tenant.dpo_email},
        "secret_owners": [f"tenants/{key}"],
        "certificates": [],
        "tls_dirs": [],
        "nginx_sites": [],
        "backup": None,
        "syndicate": plan.syndicate.name,
    }
    if tenant.flavor != "matrix-shared":
        name = tenant.server_name
        targets["secret_owners"].append(f"pki/{name}")
        targets["certificates"].append(f"pki/certs/{name}.crt")
        targets["tls_dirs"].append(f"/etc/relais/tls/{name}")
    if tenant.backup.target_host and tenant.backup.repository and tenant.flavor != "matrix-shared":
        targets["backup"] = {
            "job": tenant.id,
            "data_host": tenant.host,
            "target_host": tenant.backup.target_host,
            "repository": tenant.backup.repository,
        }
    if tenant.flavor == "matrix-dedicated":
        if tenant.unix_user is None or tenant.database is None:
            raise OffboardingError(f"{tenant.commune}: the Plan has no Unix user or database for it")
        targets["homeserver"] = {
            "unit": f"synapse-{tenant.id}.service",
            "config_dir": f"{CONFIG_ROOT}/{tenant.id}",
            "data_dir": f"{DATA_ROOT}/{tenant.id}",
            "database": tenant.database,
            "unix_user": tenant.unix_user,
            "python": f"{SYNAPSE_VENV}/bin/python",
            "admin_user": f"@{ADMIN_LOCALPART}:{tenant.server_name}",
        }
        targets["nginx_sites"].append(f"relais-matrix-{tenant.server_name}.conf")
    elif tenant.flavor == "matrix-shared":
        shared = plan.shared_homeserver
        if shared is None or shared.port is None or shared.database is None:
            raise OffboardingError(
                f"{tenant.commune} is a shared commune but the Plan has no shared homeserver"
            )
        targets["homeserver"] = {
            "unit": f"synapse-{SHARED_ID}.service",
            "config_dir": f"{CONFIG_ROOT}/{SHARED_ID}",
            "data_dir": f"{DATA_ROOT}/{SHARED_ID}",
            "database": shared.database,
            "unix_user": shared.unix_user,
            "python": f"{SYNAPSE_VENV}/bin/python",
            "admin_user": f"@{ADMIN_LOCALPART}:{shared.server_name}",
            "base_url": f"http://127.0.0.1:{shared.port}",
            "state_file": f"{DATA_ROOT}/{SHARED_ID}/accounts.json",
            "registration_secret": "services/shared-homeserver/registration_secret",
            "user_prefix": shared_prefix(tenant),
        }
        if shared.backup_target and shared.backup_repository:
            targets["shared_backup"] = {
                "target_host": shared.backup_target,
                "repository": shared.backup_repository,
            }
    else:
        domain = tenant.domain or tenant.server_name
        names = [domain, conference_domain(domain)]
        targets["xmpp"] = {
            "tenant_file": f"{TENANTS_DIR}/{tenant.id}.cfg.lua",
            "domain": domain,
            "stores": {n: f"{DATA_DIR}/{prosody_escape(n)}" for n in names},
            "web_dir": f"{WEB_ROOT}/{domain}",
        }
        targets["nginx_sites"].append(site_name(tenant))
    return targets


# --------------------------------------------------------------------------- host requests


def export_request(targets: Mapping[str, Any]) -> dict[str, Any]:
    workdir = f"{WORK_ROOT}/{targets['tenant']}/export"
    if "xmpp" in targets:
        return {"action": "export_xmpp", "workdir": workdir, "stores": targets["xmpp"]["stores"]}
    hs = targets["homeserver"]
    return {
        "action": "export_matrix",
        "workdir": workdir,
        "python": hs["python"],
        "config_dir": hs["config_dir"],
        "data_dir": hs["data_dir"],
        "unix_user": hs["unix_user"],
        "database": hs["database"],
        "server_name": targets["server_name"],
        "admin_user": hs["admin_user"],
        "agents": targets["agents"],
        "user_prefix": hs.get("user_prefix") if targets["flavor"] == "matrix-shared" else None,
        "shared": targets["flavor"] == "matrix-shared",
    }


def service_request(targets: Mapping[str, Any], secret: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The erasure on the tenant's host. Only the shared flavor needs a secret (the shared
    homeserver's admin password, derived from its registration secret)."""
    common = {
        "tenant": targets["tenant"],
        "tls_dirs": targets["tls_dirs"],
        "nginx_sites": targets["nginx_sites"],
        "backup_job": (targets["backup"] or {}).get("job"),
    }
    flavor = targets["flavor"]
    if flavor == "matrix-dedicated":
        hs = targets["homeserver"]
        return {
            "action": "erase_dedicated",
            **common,
            "unit": hs["unit"],
            "config_dir": hs["config_dir"],
            "data_dir": hs["data_dir"],
            "database": hs["database"],
            "unix_user": hs["unix_user"],
        }
    if flavor == "matrix-shared":
        from relais.matrix.homeservers import admin_password

        hs = targets["homeserver"]
        password = admin_password(secret(hs["registration_secret"])) if secret else "<from the vault>"
        return {
            "action": "erase_shared",
            **common,
            "base_url": hs["base_url"],
            "admin_user": hs["admin_user"],
            "admin_password": password,
            "state_file": hs["state_file"],
            "database": hs["database"],
            "server_name": targets["server_name"],
            "agents": targets["agents"],
            "user_prefix": hs.get("user_prefix"),
            "shared": True,
        }
    return xmpp_request(targets, common)


def _xmpp_sync() -> tuple[str, str]:
    """Prosody's admin-shell helper and the input that drops virtual hosts no longer configured
    (the xmpp deploy's own, so that both agree)."""
    import sys

    from relais.deploy.hosts import REPO_ROOT

    if str(REPO_ROOT) not in sys.path:  # deploys/ sits beside relais/ in a checkout
        sys.path.insert(0, str(REPO_ROOT))
    from deploys.xmpp import SHELL_HELPER, sync_input

    return SHELL_HELPER, sync_input([])


def xmpp_request(targets: Mapping[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    helper, stdin = _xmpp_sync()
    xmpp = targets["xmpp"]
    return {
        "action": "erase_xmpp",
        **common,
        "tenant_file": xmpp["tenant_file"],
        "domain": xmpp["domain"],
        "stores": xmpp["stores"],
        "web_dir": xmpp["web_dir"],
        "shell_helper": helper,
        "sync_input": stdin,
    }


def repository_request(targets: Mapping[str, Any]) -> dict[str, Any] | None:
    backup = targets.get("backup")
    if not backup:
        return None
    return {"action": "erase_repository", "repository": backup["repository"], "job": backup["job"]}


def inspect_requests(targets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per host, what to look for after the erasure (every item must be gone)."""
    host = targets["host"]
    paths = [*targets["tls_dirs"]]
    paths += [
        f"/etc/nginx/{d}/{s}" for s in targets["nginx_sites"] for d in ("sites-enabled", "sites-available")
    ]
    paths.append(f"{WORK_ROOT}/{targets['tenant']}")
    request: dict[str, Any] = {"action": "inspect", "paths": paths, "units": [], "users": [], "globs": []}
    backup = targets.get("backup")
    if backup:
        job = backup["job"]
        paths += [f"/etc/relais/backup/{job}{s}" for s in (".json", ".passphrase", ".key")]
        paths += [f"/var/lib/relais/backup/{job}.status.json", f"/var/lib/relais/backup/borg/{job}"]
        request["units"] += [f"relais-backup-{job}.timer", f"relais-backup-check-{job}.timer"]
    flavor = targets["flavor"]
    if flavor == "matrix-dedicated":
        hs = targets["homeserver"]
        paths += [hs["config_dir"], hs["data_dir"]]
        request["units"].append(hs["unit"])
        request["users"].append(hs["unix_user"])
        request["databases"] = [hs["database"]]
        request["roles"] = [hs["database"]]
    elif flavor == "matrix-shared":
        hs = targets["homeserver"]
        request["matrix_users"] = {
            "database": hs["database"],
            "users": targets.get("erased_users") or targets["agents"],
        }
        request["grep"] = [[hs["state_file"], a] for a in targets["agents"]]
    else:
        xmpp = targets["xmpp"]
        paths += [xmpp["tenant_file"], xmpp["web_dir"], *xmpp["stores"].values()]
        request["globs"].append(f"/var/lib/relais/xmpp/accounts/*@{xmpp['domain']}*")
    requests = {host: request}
    if backup:
        requests.setdefault(backup["target_host"], {"action": "inspect", "paths": [], "grep": []})
        target = requests[backup["target_host"]]
        target["paths"] = [*target.get("paths", []), backup["repository"]]
        target["grep"] = [
            *target.get("grep", []),
            ["/srv/borg/.ssh/authorized_keys", f"relais-backup-{backup['job']}"],
        ]
    return requests


def listing(targets: Mapping[str, Any]) -> dict[str, Any]:
    """What would be exported and erased, for --dry-run (no host is contacted)."""
    host = targets["host"]
    flavor = targets["flavor"]
    exported: list[str]
    erased: list[dict[str, str]] = []

    def add(where: str, what: str, subject: str) -> None:
        erased.append({"host": where, "what": what, "subject": subject})

    if flavor == "xmpp":
        exported = [f"Prosody data of {name} ({path})" for name, path in targets["xmpp"]["stores"].items()]
        xmpp = targets["xmpp"]
        add(host, "Prosody virtual host configuration", xmpp["tenant_file"])
        for name, path in xmpp["stores"].items():
            add(host, f"Prosody data of {name}", path)
        add(host, "account markers", f"/var/lib/relais/xmpp/accounts/*@{xmpp['domain']}")
        add(host, "web client page", xmpp["web_dir"])
    else:
        hs = targets["homeserver"]
        exported = [
            f"Synapse export-data of {a}"
            + (" (and any other account of the commune in the database)" if i == 0 else "")
            for i, a in enumerate(targets["agents"])
        ]
        if flavor == "matrix-dedicated":
            add(host, "systemd unit", hs["unit"])
            add(host, "homeserver configuration and signing key", hs["config_dir"])
            add(host, "homeserver data and media store", hs["data_dir"])
            add(host, "PostgreSQL database", hs["database"])
            add(host, "PostgreSQL role", hs["database"])
            add(host, "Unix user and group", hs["unix_user"])
        else:
            for agent in targets["agents"]:
                add(host, "Matrix account: media deleted, deactivated with erase=true", agent)
            add(host, "commune's space and room (purged)", f"Commune de {targets['commune']}")
            add(host, "accounts and space in the deploy's state file", hs["state_file"])
    for path in targets["tls_dirs"]:
        add(host, "TLS certificate and key", path)
    for site in targets["nginx_sites"]:
        add(host, "nginx site", site)
    backup = targets.get("backup")
    if backup:
        add(
            host,
            "backup job (timers, configuration, passphrase and SSH key files, borg cache)",
            backup["job"],
        )
        add(backup["target_host"], "borg repository (with its repokey)", backup["repository"])
        add(
            backup["target_host"],
            "backup SSH key in the borg account's authorized_keys",
            f"relais-backup-{backup['job']}",
        )
    for owner in targets["secret_owners"]:
        add("controller", "vault file (crypto-shredding)", f"secrets/{owner}.vault")
    for cert in targets["certificates"]:
        add("controller", "certificate file", cert)
    add(
        "controller",
        "commune file: status offboarded (DNS records, probes and backup job leave the Plan)",
        targets["source"],
    )
    add("controller", "placement", f"placements.lock: {targets['tenant']}")
    return {
        "tenant": targets["tenant"],
        "commune": targets["commune"],
        "flavor": flavor,
        "host": host,
        "export": exported,
        "erase": erased,
        "kept": kept_by_design(targets),
    }


def kept_by_design(targets: Mapping[str, Any]) -> list[str]:
    """What offboarding does not erase, said plainly in the evidence record."""
    kept = [
        "the hosts' system journal (service logs) until its retention expires "
        "(the logs retention of the inventory)"
    ]
    if targets["flavor"] == "matrix-shared":
        shared = targets.get("shared_backup")
        kept.append(
            "the commune's accounts' identifiers on the shared homeserver, deactivated and erased "
            "(Synapse keeps an identifier so that it is never given to someone else)"
        )
        kept.append(
            "messages the commune's agents sent in rooms shared with other communes: hidden from "
            "anyone who joins later (GDPR erasure), still in the history of the members present"
        )
        if shared:
            kept.append(
                f"the shared homeserver's encrypted backups on {shared['target_host']} "
                f"({shared['repository']}), which hold every shared commune together, until their "
                "rotation drops the archives made before the offboarding"
            )
    return kept


# --------------------------------------------------------------------------- hosts


class Hosts(Protocol):
    """How offboarding reaches hosts (SSH in production and the lab; a fake in unit tests)."""

    def call(self, host: str, request: Mapping[str, Any], timeout: int = 3600) -> dict[str, Any]: ...

    def fetch(self, host: str, path: str, dest: Path, timeout: int = 3600) -> None: ...


class SshHosts:
    """The host helper over SSH, as root (`sudo -n` once root login is closed): its source and
    the request on standard input, one JSON line back."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._targets: dict[str, Any] = {}

    def _target(self, host: str) -> Any:
        from relais.deploy.targets import TargetError, resolve

        if host not in self._targets:
            try:
                self._targets[host] = resolve(self.plan, self.plan.host(host))
            except TargetError as error:
                raise OffboardingError(error.message, hint=error.hint) from None
            except KeyError:
                raise OffboardingError(
                    f"host {host} is no longer in the inventory",
                    hint="the offboarding needs to reach the host its tenant was on",
                ) from None
        return self._targets[host]

    def _ssh(self, host: str, command: str) -> list[str]:
        target = self._target(host)
        sudo = "" if target.user == "root" else "sudo -n "
        return ["ssh", *target.ssh_options(), target.address, sudo + command]

    def call(self, host: str, request: Mapping[str, Any], timeout: int = 3600) -> dict[str, Any]:
        payload = json.dumps({"script": HOST_HELPER.read_text(encoding="utf-8"), "request": dict(request)})
        argv = self._ssh(host, "python3 -c " + shlex.quote(HOST_BOOTSTRAP))
        try:
            done = subprocess.run(
                argv, input=payload, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise OffboardingError(f"{host}: {request['action']} did not finish within {timeout} s") from None
        try:
            answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = (done.stderr or "no output").strip().splitlines()[-1:] or ["no output"]
            raise OffboardingError(
                f"{host}: {request['action']}: {detail[0]}",
                hint="check that the host is up (`relais lab status`), then run the "
                "offboarding again: it resumes",
            ) from None
        if not answer.get("ok"):
            raise OffboardingError(
                f"{host}: {request['action']}: {answer.get('error', 'failed')}",
                hint="fix the cause, then run the offboarding again: it resumes",
            )
        return answer

    def fetch(self, host: str, path: str, dest: Path, timeout: int = 3600) -> None:
        argv = self._ssh(host, "cat " + shlex.quote(path))
        with dest.open("wb") as out:
            try:
                done = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise OffboardingError(f"{host}: copying {path} did not finish within {timeout} s") from None
        if done.returncode != 0:
            raise OffboardingError(
                f"{host}: cannot copy {path}: {done.stderr.decode(errors='replace').strip()}"
            )


# --------------------------------------------------------------------------- archive


def read_passphrase(
    path: Path | None, *, interactive: bool, prompt: Callable[[str], str] = getpass.getpass
) -> str:
    """The archive's passphrase: from a file (first line), or typed twice at a prompt."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OffboardingError(f"cannot read the passphrase file {path}: {exc}") from None
        passphrase = text.splitlines()[0] if text.splitlines() else ""
    elif interactive:
        passphrase = prompt("Passphrase of the commune's archive: ")
        if prompt("The same passphrase again: ") != passphrase:
            raise OffboardingError("the two passphrases differ")
    else:
        raise OffboardingError(
            "the archive needs a passphrase",
            hint="give --passphrase-file FILE (first line), or run in a terminal to type it",
        )
    if len(passphrase) < MIN_PASSPHRASE:
        raise OffboardingError(
            f"the archive's passphrase is too short ({len(passphrase)} characters)",
            hint=f"at least {MIN_PASSPHRASE} characters; send it to the commune by "
            "another channel than the archive",
        )
    return passphrase


def _gpg(args: list[str], passphrase: str, *, stdout: Any = None) -> subprocess.CompletedProcess[bytes]:
    """gpg in a throw-away home (the operator's keyring is never touched); the passphrase goes
    through a pipe (`--passphrase-fd`), never a command line."""
    with tempfile.TemporaryDirectory(prefix="relais-gpg-") as home:
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, passphrase.encode() + b"\n")
            os.close(write_fd)
            try:
                done = subprocess.run(
                    [
                        "gpg",
                        "--homedir",
                        home,
                        "--batch",
                        "--yes",
                        "--quiet",
                        "--no-symkey-cache",
                        "--pinentry-mode",
                        "loopback",
                        "--passphrase-fd",
                        str(read_fd),
                        *args,
                    ],
                    pass_fds=(read_fd,),
                    stdout=stdout or subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    check=False,
                    timeout=3600,
                )
            except FileNotFoundError:
                raise OffboardingError(
                    "gpg is not installed on the controller", hint="apt-get install gnupg"
                ) from None
        finally:
            os.close(read_fd)
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
    if done.returncode != 0:
        raise OffboardingError(
            "gpg failed: " + done.stderr.decode(errors="replace").strip().splitlines()[-1:][0]
            if done.stderr.strip()
            else "gpg failed"
        )
    return done


def encrypt(source: Path, dest: Path, passphrase: str) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    _gpg(
        [
            "--symmetric",
            "--cipher-algo",
            "AES256",
            "--s2k-mode",
            "3",
            "--s2k-digest-algo",
            "SHA512",
            "--s2k-count",
            "65011712",
            "--output",
            str(tmp),
            str(source),
        ],
        passphrase,
    )
    tmp.replace(dest)


def decrypt(archive: Path, passphrase: str) -> bytes:
    """The plain tar of an archive (tests, and operators checking an archive before sending it)."""
    return _gpg(["--decrypt", str(archive)], passphrase).stdout


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts


def build_archive(host_tar: Path, out_tar: Path, top: str, readme: str, manifest: Mapping[str, Any]) -> None:
    """The commune's tar: LISEZMOI.txt, manifeste.json, and what the host exported, under `top/`."""
    with tarfile.open(out_tar, "w") as out:
        for name, text in (
            ("LISEZMOI.txt", readme),
            ("manifeste.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"),
        ):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(datetime.now(UTC).timestamp())
            out.addfile(info, io.BytesIO(data))
        with tarfile.open(host_tar, "r") as source:
            for member in source.getmembers():
                if not _safe_member(member.name) or not (member.isfile() or member.isdir()):
                    continue
                # Long names: a PAX `path` header would win over the new name.
                member.pax_headers = {k: v for k, v in member.pax_headers.items() if k != "path"}
                member.name = f"{top}/{member.name}"
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                out.addfile(member, source.extractfile(member) if member.isfile() else None)


# --------------------------------------------------------------------------- confirmation


def check_confirmation(
    insee: str, commune: str, *, yes_erase_data: bool, confirm: str | None, ask: Callable[[str], str] | None
) -> None:
    """Two confirmations, both required: the intent to erase (`--yes-erase-data`, or answering
    `yes` at the prompt) and the commune's INSEE code (`--confirm INSEE`, or typed at the
    prompt). A mismatching code is refused whatever else was given; without a terminal both
    options are needed."""
    insee = insee.upper()
    if confirm is not None and confirm.strip().upper() != insee:
        raise OffboardingError(
            f"--confirm {confirm!r} does not match the INSEE code of {commune} ({insee})",
            hint="check which commune you are offboarding: nothing was touched",
        )
    if not yes_erase_data:
        if ask is None:
            raise OffboardingError(
                "offboarding erases the tenant's data: confirmation needed",
                hint=f"give --yes-erase-data --confirm {insee} (or run in a terminal)",
            )
        answer = ask(f"Erase every piece of data of {commune} ({insee}) once exported? Type yes")
        if answer.strip().lower() != "yes":
            raise OffboardingError("not confirmed: nothing was touched")
    if confirm is None:
        if ask is None:
            raise OffboardingError(
                "--yes-erase-data needs the commune's INSEE code as well",
                hint=f"add --confirm {insee} (or run in a terminal and type it)",
            )
        typed = ask(f"Type the INSEE code of {commune} to confirm")
        if typed.strip().upper() != insee:
            raise OffboardingError(
                f"{typed.strip()!r} is not the INSEE code of {commune} ({insee})", hint="nothing was touched"
            )


# --------------------------------------------------------------------------- progress


def offboarding_dir(inventory: Path) -> Path:
    return inventory / OFFBOARDING_DIR


def progress_path(inventory: Path, tenant_id: str) -> Path:
    return offboarding_dir(inventory) / tenant_id / PROGRESS_FILE


def read_progress(inventory: Path, tenant_id: str) -> dict[str, Any] | None:
    path = progress_path(inventory, tenant_id)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OffboardingError(
            f"{path}: unreadable ({exc})",
            hint="it records an interrupted offboarding; restore it or inspect it",
        ) from None
    return data


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def ensure_gitignore(inventory: Path) -> None:
    path = offboarding_dir(inventory) / ".gitignore"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GITIGNORE, encoding="utf-8")


def operator_name(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    for value in (explicit, env.get("SUDO_USER"), env.get("USER"), env.get("LOGNAME")):
        if value and value.strip():
            return value.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --------------------------------------------------------------------------- inventory


def mark_offboarded(text: str, stamp: str, operator: str, evidence: str) -> str:
    """The commune file with `tenant.status: offboarded` and a comment saying when and by whom;
    everything else (comments, layout) is kept."""
    from relais.tenant_ops import _yaml, dump_document

    document = _yaml().load(text)
    tenant = document["tenant"]
    tenant["status"] = "offboarded"
    # Two spaces after the value (ruamel would otherwise align the comment on a far column).
    tenant.yaml_add_eol_comment(
        f"offboarded {stamp} by {operator} ({evidence})", "status", column=len("  status: offboarded  ")
    )
    return dump_document(document)


@dataclass
class Options:
    inventory: Path
    operator: str
    output: Path | None = None
    passphrase: Callable[[], str] | None = None
    converge: bool = True
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class Outcome:
    record: dict[str, Any]
    evidence_json: Path
    evidence_md: Path
    archive: Path
    resumed: bool
    skipped: list[str]


# --------------------------------------------------------------------------- the run


def find_offboarding(
    plan: Plan, inventory: Path, commune: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(targets, progress of an interrupted run or None). Refuses what cannot be offboarded."""
    from relais.tenant_ops import find_tenant

    tenant = find_tenant(plan, commune)
    progress = read_progress(inventory, tenant.id)
    unfinished = progress is not None and not progress.get("completed")
    if tenant.status == "offboarded":
        if unfinished:
            assert progress is not None
            return progress["targets"], progress
        hint = (
            f"evidence: {progress['evidence']['json']}"
            if progress and progress.get("evidence")
            else "its data was erased; nothing is left to offboard"
        )
        raise OffboardingError(f"{tenant.commune} ({tenant.id}) is already offboarded", hint=hint)
    if unfinished:
        assert progress is not None
        return progress["targets"], progress
    if tenant.status not in OFFBOARDABLE:
        raise OffboardingError(
            f"{tenant.commune} ({tenant.id}) is {tenant.status}: "
            "only an active or suspended tenant is offboarded",
            hint="a requested or approved tenant has no data: reject the request or delete its commune file",
        )
    return targets_for(plan, tenant), None


def commune_path(inventory: Path, source: str) -> Path:
    """The commune file a Plan's `source` names (relative to the inventory or to its parent)."""
    relative = Path(source)
    for path in (inventory / relative, inventory.parent / relative, inventory / "communes" / relative.name):
        if path.is_file():
            return path
    raise OffboardingError(f"the commune file {source} is missing from {inventory}")


def archive_name(targets: Mapping[str, Any], day: str) -> str:
    return f"relais-{Path(targets['source']).stem}-{day}.tar.gpg"


class Offboarding:
    """One offboarding run (new or resumed), step by step, each recorded before the next."""

    def __init__(
        self,
        targets: dict[str, Any],
        progress: dict[str, Any] | None,
        hosts: Hosts,
        options: Options,
        *,
        secrets: Any,
        replan: Callable[[], Plan],
        converge: Callable[[Plan], None],
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.targets = targets
        self.resumed = progress is not None
        self.hosts = hosts
        self.options = options
        self.secrets = secrets
        self.replan = replan
        self.converge_hosts = converge
        self.log = log
        self.skipped: list[str] = []
        self.path = progress_path(options.inventory, targets["tenant"])
        self.progress = progress or {
            "schema": EVIDENCE_SCHEMA + "#progress",
            "targets": targets,
            "operator": options.operator,
            "started_at": self._stamp(),
            "done": [],
            "erased": [],
            "export": None,
            "secrets_destroyed": [],
            "files_removed": [],
            "verification": {},
            "completed": False,
        }
        if self.resumed:
            self.progress.setdefault("operators", [])
            if options.operator not in self.progress["operators"] + [self.progress["operator"]]:
                self.progress["operators"].append(options.operator)

    def _stamp(self) -> str:
        return self.options.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _save(self) -> None:
        write_json(self.path, self.progress)

    def _done(self, step: str) -> bool:
        return step in self.progress["done"]

    def _finish(self, step: str) -> None:
        if step not in self.progress["done"]:
            self.progress["done"].append(step)
        self._save()

    def run(self) -> Outcome:
        ensure_gitignore(self.options.inventory)
        self._save()
        for step in STEPS:
            if self._done(step):
                self.skipped.append(step)
                continue
            getattr(self, f"_step_{step}")()
        export = self.progress["export"]
        return Outcome(
            self.progress["record"],
            Path(self.progress["evidence"]["json"]),
            Path(self.progress["evidence"]["md"]),
            Path(export["path"]),
            self.resumed,
            self.skipped,
        )

    # -- steps ---------------------------------------------------------------

    def _archive_ok(self) -> bool:
        export = self.progress.get("export")
        if not export:
            return False
        path = Path(export["path"])
        return path.is_file() and sha256_file(path) == export["sha256"]

    def _step_export(self) -> None:
        if self._archive_ok():
            self.log("export: the archive exists with its recorded hash; not redone")
            self._finish("export")
            return
        if self.options.passphrase is None:
            raise OffboardingError("the export needs the archive's passphrase")
        passphrase = self.options.passphrase()
        t = self.targets
        host = t["host"]
        directory = (self.options.output or offboarding_dir(self.options.inventory) / t["tenant"]).resolve()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        day = self.options.now().strftime("%Y%m%d")
        name = archive_name(t, day)
        self.log(f"export: {t['commune']} on {host}…")
        request = export_request(t)
        answer = self.hosts.call(host, request)
        with tempfile.TemporaryDirectory(prefix="relais-offboarding-") as tmp:
            host_tar = Path(tmp) / "host.tar"
            self.hosts.fetch(host, answer["tar"], host_tar)
            if sha256_file(host_tar) != answer["sha256"]:
                raise OffboardingError(
                    f"the export copied from {host} does not match its hash",
                    hint="run the offboarding again: the export is redone",
                )
            manifest = {
                "commune": t["commune"],
                "insee": t["insee"],
                "service": t["flavor"],
                "server_name": t["server_name"],
                "exported_at": self._stamp(),
                "users": answer.get("users"),
                "stores": answer.get("stores"),
            }
            text = readme(t, name)
            plain = Path(tmp) / "export.tar"
            build_archive(host_tar, plain, Path(name).name.removesuffix(".tar.gpg"), text, manifest)
            encrypt(plain, directory / name, passphrase)
        (directory / "LISEZMOI.txt").write_text(text, encoding="utf-8")
        self.hosts.call(host, {"action": "cleanup_export", "workdir": request["workdir"]})
        archive = directory / name
        self.progress["export"] = {
            "archive": name,
            "path": str(archive),
            "size_bytes": archive.stat().st_size,
            "sha256": sha256_file(archive),
            "created_at": self._stamp(),
            "encryption": "OpenPGP symmetric (GnuPG, AES-256, S2K SHA-512)",
            "plain_size_bytes": answer["size"],
            "users": answer.get("users"),
            "stores": answer.get("stores"),
        }
        self.log(f"export: {archive} ({archive.stat().st_size} bytes)")
        self._finish("export")

    def _step_inventory(self) -> None:
        from relais.tenant_ops import _yaml

        t = self.targets
        path = commune_path(self.options.inventory, t["source"])
        document = _yaml().load(path.read_text(encoding="utf-8"))
        if document["tenant"].get("status") != "offboarded":
            before = path.read_text(encoding="utf-8")
            day = self.options.now().strftime("%Y-%m-%d")
            evidence = f"{OFFBOARDING_DIR}/{t['tenant']}-{day}.md"
            path.write_text(
                mark_offboarded(before, self._stamp(), self.progress["operator"], evidence), encoding="utf-8"
            )
            try:
                self.replan()
            except RelaisError:
                path.write_text(before, encoding="utf-8")
                raise
        else:
            self.replan()
        self.log(f"inventory: {t['source']} is offboarded; its placement left placements.lock")
        self._finish("inventory")

    def _record(self, host: str, steps: Iterable[Mapping[str, Any]]) -> None:
        """Add what a host erased; a resumed run's `absent` never hides an earlier `erased`."""
        erased = self.progress["erased"]
        for step in steps:
            entry = {"host": host, **step}
            key = (host, step["what"], step["subject"])
            known = next((e for e in erased if (e["host"], e["what"], e["subject"]) == key), None)
            if known is None:
                erased.append(entry)
            elif known["result"] == "absent" and step["result"] != "absent":
                known.update(entry)

    def _erase(self, host: str, request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            answer = self.hosts.call(host, request)
        except HostStepError as error:
            self._record(host, error.steps)
            self._save()
            raise
        self._record(host, answer["steps"])
        return answer

    def _step_service(self) -> None:
        t = self.targets
        self.log(f"erase: {t['commune']} on {t['host']}…")
        answer = self._erase(t["host"], service_request(t, self.secrets.get))
        if t["flavor"] == "matrix-shared":
            t["erased_users"] = sorted(
                {s["subject"] for s in answer["steps"] if s["what"].startswith("Matrix account")}
            )
        self._finish("service")

    def _step_repository(self) -> None:
        request = repository_request(self.targets)
        if request is not None:
            target = self.targets["backup"]["target_host"]
            self.log(f"erase: backup repository on {target}…")
            self._erase(target, request)
        self._finish("repository")

    def _step_secrets(self) -> None:
        t = self.targets
        for owner in t["secret_owners"]:
            refs = self.secrets.destroy_owner(owner)
            self.progress["secrets_destroyed"] = sorted({*self.progress["secrets_destroyed"], *refs})
        for relative in t["certificates"]:
            path = self.options.inventory / relative
            if path.exists():
                path.unlink()
                self.progress["files_removed"].append(relative)
        self.log(f"secrets: {len(self.progress['secrets_destroyed'])} destroyed")
        self._finish("secrets")

    def _step_converge(self) -> None:
        if not self.options.converge:
            self.log("converge: skipped (--no-deploy): run `relais deploy` to update the other hosts")
            self.progress["converged"] = False
            self._finish("converge")
            return
        self.log("converge: deploying the hosts to the Plan without the tenant…")
        self.converge_hosts(self.replan())
        self.progress["converged"] = True
        self._finish("converge")

    def _step_verify(self) -> None:
        verification: dict[str, list[str]] = {}
        for host, request in sorted(inspect_requests(self.targets).items()):
            verification[host] = list(self.hosts.call(host, request)["remains"])
        left = [ref for owner in self.targets["secret_owners"] for ref in self.secrets.list(owner)]
        verification["controller"] = [f"secret {ref}" for ref in left] + [
            f"file {c}" for c in self.targets["certificates"] if (self.options.inventory / c).exists()
        ]
        self.progress["verification"] = verification
        if any(verification.values()):
            for step in ("service", "repository", "secrets", "verify"):
                if step in self.progress["done"]:
                    self.progress["done"].remove(step)
            self._save()
            raise OffboardingError(
                "the tenant is not entirely erased: "
                + "; ".join(f"{h}: {', '.join(r)}" for h, r in verification.items() if r),
                hint="run the offboarding again: the erasure steps are redone",
            )
        self.log("verify: nothing of the tenant remains on its hosts")
        self._finish("verify")

    def _step_evidence(self) -> None:
        from relais.offboarding.documents import evidence_markdown, kept_in_french

        t = self.targets
        finished = self._stamp()
        day = finished[:10]
        export = self.progress["export"]
        record = {
            "schema": EVIDENCE_SCHEMA,
            "reference": f"OFF-{t['tenant']}-{day.replace('-', '')}",
            "commune": {
                "insee": t["insee"],
                "name": t["commune"],
                "siren": t["siren"],
                "departement": t["departement"],
                "mairie": t["mairie"],
                "dpo": t["dpo"],
            },
            "tenant": {
                "flavor": t["flavor"],
                "server_name": t["server_name"],
                "domain": t["domain"],
                "host": t["host"],
                "status_before": t["status_before"],
                "agents": t["agents"],
            },
            "operator": self.progress["operator"],
            "operators": [self.progress["operator"], *self.progress.get("operators", [])],
            "started_at": self.progress["started_at"],
            "finished_at": finished,
            "export": {k: v for k, v in export.items() if k != "path"},
            "erased": self.progress["erased"],
            "secrets_destroyed": self.progress["secrets_destroyed"],
            "files_removed": self.progress["files_removed"],
            "backups": t.get("backup") or t.get("shared_backup"),
            "inventory": {"file": t["source"], "status": "offboarded", "placement_removed": True},
            "converged": self.progress.get("converged", False),
            "verification": self.progress["verification"],
            "kept": kept_by_design(t),
            "kept_fr": kept_in_french(t),
        }
        stem = evidence_stem(offboarding_dir(self.options.inventory), t["tenant"], day)
        record["reference"] += stem.removeprefix(f"{t['tenant']}-{day}")  # "-2" on a second record
        json_path = offboarding_dir(self.options.inventory) / f"{stem}.json"
        md_path = json_path.with_suffix(".md")
        write_json(json_path, record)
        md_path.write_text(evidence_markdown(record), encoding="utf-8")
        self.progress["record"] = record
        self.progress["evidence"] = {"json": str(json_path), "md": str(md_path)}
        self.progress["completed"] = True
        self.log(f"evidence: {json_path}")
        self._finish("evidence")


def evidence_stem(directory: Path, tenant_id: str, day: str) -> str:
    """`<insee>-<date>`, or `<insee>-<date>-<n>` when that day already has a record (a commune
    that came back and left again): a record is never overwritten."""
    stem, number = f"{tenant_id}-{day}", 1
    while (directory / f"{stem}.json").exists():
        number += 1
        stem = f"{tenant_id}-{day}-{number}"
    return stem


def readme(targets: Mapping[str, Any], name: str) -> str:
    from relais.offboarding.documents import readme as render

    return render(targets, str(targets.get("syndicate", "")), name)
