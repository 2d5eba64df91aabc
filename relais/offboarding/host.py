"""Offboarding on a host: export a tenant's data, erase it, and say what remains.

Runs ON the host as root with the system's Python (standard library only). The controller
sends this file and a JSON request on standard input (the request may hold the shared
homeserver's admin password: never a command line, never a file left behind) and reads one
JSON line on standard output. Every erasure step is idempotent: what is already gone is
reported `absent`, so an interrupted offboarding converges when run again.

Paths and names come from the controller's Plan; they are checked here again against the
roots Relais owns, so that a bad request can never remove anything else.
"""

from __future__ import annotations

import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

ALLOWED_ROOTS = (
    "/etc/relais/synapse/",
    "/var/lib/relais/synapse/",
    "/var/lib/prosody/",
    "/srv/borg/",
    "/etc/relais/tls/",
    "/etc/relais/xmpp/web/",
    "/etc/prosody/relais.d/",
    "/etc/relais/backup/",
    "/var/lib/relais/backup/",
    "/var/lib/relais/restore/",
    "/var/lib/relais/xmpp/accounts/",
    "/etc/nginx/sites-available/",
    "/etc/nginx/sites-enabled/",
    "/etc/systemd/system/",
    "/var/lib/relais/offboarding/",
)
PROTECTED = (
    "/srv/borg/.ssh",
    "/srv/borg/shared",
    "/etc/relais/synapse/shared",
    "/var/lib/relais/synapse/shared",
)
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
JOB_RE = re.compile(r"^[0-9AB]{5}$")  # a tenant's job is named by its INSEE code
UNIT_RE = re.compile(r"^[a-zA-Z0-9@._-]+\.(service|timer)$")
# Synapse's `python -m synapse.app.admin_cmd`, with one fix: its export-data writer (1.163)
# expects the stripped state of a pending invite or knock as a mapping, but gets the list the
# event carries, and the whole export fails ("'list' object has no attribute 'values'") for
# any account with a pending invite (every agent of a shared commune until they join its space).
EXPORT_DATA = (
    "from synapse.app import admin_cmd as a\n"
    "W = a.FileExfiltrationWriter\n"
    "def fix(write):\n"
    "    def wrapped(self, room_id, event, state):\n"
    "        if isinstance(state, list):\n"
    "            state = dict(enumerate(state))\n"
    "        return write(self, room_id, event, state)\n"
    "    return wrapped\n"
    "W.write_invite, W.write_knock = fix(W.write_invite), fix(W.write_knock)\n"
    "a.main()\n"
)
BORG_KEYS = "/srv/borg/.ssh/authorized_keys"
BACKUP_AGENT = "/usr/local/sbin/relais-backup"


class HostError(Exception):
    pass


# --------------------------------------------------------------------------- helpers

_STEPS: list[dict[str, Any]] = []


def new_steps() -> list[dict[str, Any]]:
    """The steps of this run: reported even when a later step fails, so that the evidence
    record says what was erased before the failure."""
    _STEPS.clear()
    return _STEPS



def checked_path(path: str) -> str:
    norm = os.path.normpath(path)
    if (
        ".." in path.split("/")
        or not any(norm.startswith(root) and len(norm) > len(root) for root in ALLOWED_ROOTS)
        or any(norm == p or norm.startswith(p + "/") for p in PROTECTED)
    ):
        raise HostError(f"refusing to touch {path}: outside what Relais owns for a tenant")
    return norm


def checked_name(name: str, what: str) -> str:
    if not NAME_RE.match(name) or name in (
        "root",
        "postgres",
        "prosody",
        "borg",
        "synapse_shared",
        "synapse-shared",
        "relais",
    ):
        raise HostError(f"refusing the {what} name {name!r}")
    return name


def run(
    argv: list[str],
    *,
    input_text: str | None = None,
    timeout: int = 600,
    check: bool = True,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, input=input_text, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )
    if check and done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines()
        errors = [line for line in lines if "Error" in line or "error" in line]
        detail = (errors or lines)[-3:]
        raise HostError(f"{argv[0]} failed ({done.returncode}): {' | '.join(detail)}")
    return done


def exists(path: str) -> bool:
    return os.path.lexists(path)


def remove(path: str, steps: list[dict[str, Any]], what: str) -> None:
    path = checked_path(path)
    if not exists(path):
        steps.append({"what": what, "subject": path, "result": "absent"})
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    steps.append({"what": what, "subject": path, "result": "erased"})


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def psql(sql: str, database: str = "postgres") -> str:
    return run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
        ],
        input_text=sql,
    ).stdout


def postgres_installed() -> bool:
    return shutil.which("psql") is not None


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def unit_known(unit: str) -> bool:
    done = run(["systemctl", "list-unit-files", "--no-legend", unit], check=False)
    return unit in done.stdout or exists(f"/etc/systemd/system/{unit}")


def remove_unit(unit: str, steps: list[dict[str, Any]]) -> bool:
    if not UNIT_RE.match(unit):
        raise HostError(f"refusing the unit name {unit!r}")
    path = f"/etc/systemd/system/{unit}"
    if not unit_known(unit):
        steps.append({"what": "systemd unit", "subject": unit, "result": "absent"})
        return False
    run(["systemctl", "disable", "--now", unit], check=False, timeout=300)
    if exists(path):
        os.unlink(path)
    run(["systemctl", "reset-failed", unit], check=False)
    steps.append({"what": "systemd unit", "subject": unit, "result": "erased"})
    return True


def reload_nginx() -> None:
    if shutil.which("nginx") and run(["nginx", "-t", "-q"], check=False).returncode == 0:
        run(["systemctl", "reload", "nginx"], check=False)


# --------------------------------------------------------------------------- export


def _safe(user_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]", "_", user_id.lstrip("@"))


def local_users(database: str, server_name: str) -> list[str]:
    out = psql("SELECT name FROM users ORDER BY name;", database)
    suffix = f":{server_name}"
    return [line for line in out.splitlines() if line.endswith(suffix)]


def matrix_users(req: dict[str, Any]) -> list[str]:
    """The tenant's accounts: its agents, and every account the database holds for it
    (agents removed from the inventory keep their data until the offboarding)."""
    found = set(req.get("agents") or [])
    prefix = req.get("user_prefix")
    admin = req["admin_user"]
    if req.get("shared") and not prefix:
        return sorted(found)  # never every account of the shared homeserver
    for user in local_users(req["database"], req["server_name"]):
        if user == admin:
            continue
        if prefix is None or user.startswith(prefix):
            found.add(user)
    return sorted(found)


def export_matrix(req: dict[str, Any]) -> dict[str, Any]:
    workdir = checked_path(req["workdir"])
    unix_user = req["unix_user"]
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir, mode=0o750)
    os.chown(workdir, 0, grp.getgrnam(unix_user).gr_gid)
    users_dir = os.path.join(workdir, "utilisateurs")
    os.makedirs(users_dir, mode=0o750)
    os.chown(users_dir, 0, grp.getgrnam(unix_user).gr_gid)
    exported: list[dict[str, Any]] = []
    media_root = os.path.join(req["data_dir"], "media", "local_content")
    pw = pwd.getpwnam(unix_user)
    for user in matrix_users(req):
        out = os.path.join(users_dir, _safe(user))
        os.makedirs(out, mode=0o700)
        os.chown(out, pw.pw_uid, pw.pw_gid)
        run(
            [
                "runuser",
                "-u",
                unix_user,
                "--",
                req["python"],
                "-c",
                EXPORT_DATA,
                "-c",
                f"{req['config_dir']}/homeserver.yaml",
                "-c",
                f"{req['config_dir']}/conf.d/",
                "export-data",
                user,
                "--output-directory",
                out,
            ],
            timeout=1800,
            cwd=out,
        )
        media = 0
        for path in sorted(glob.glob(os.path.join(out, "media_ids", "*"))):
            media_id = os.path.basename(path)
            source = os.path.join(media_root, media_id[:2], media_id[2:4], media_id[4:])
            if os.path.isfile(source):
                os.makedirs(os.path.join(out, "media"), exist_ok=True)
                shutil.copy2(source, os.path.join(out, "media", media_id))
                media += 1
        rooms = glob.glob(os.path.join(out, "rooms", "*", "events"))
        events = 0
        for path in rooms:
            with open(path, encoding="utf-8") as handle:
                events += sum(1 for line in handle if line.strip())
        exported.append(
            {
                "user": user,
                "directory": f"utilisateurs/{_safe(user)}",
                "rooms": len(rooms),
                "events": events,
                "media": media,
            }
        )
    return _pack(workdir, ["utilisateurs"], {"users": exported})


def export_xmpp(req: dict[str, Any]) -> dict[str, Any]:
    workdir = checked_path(req["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir, mode=0o700)
    stores = []
    target = os.path.join(workdir, "xmpp")
    os.makedirs(target)
    for name, store in req["stores"].items():
        store = checked_path(store)
        if os.path.isdir(store):
            shutil.copytree(store, os.path.join(target, name), symlinks=True)
            files = sum(len(f) for _, _, f in os.walk(store))
            stores.append({"domain": name, "directory": f"xmpp/{name}", "files": files})
        else:
            stores.append({"domain": name, "directory": None, "files": 0})
    return _pack(workdir, ["xmpp"], {"stores": stores})


def _pack(workdir: str, members: list[str], detail: dict[str, Any]) -> dict[str, Any]:
    tar_path = workdir + ".tar"
    with tarfile.open(tar_path, "w") as tar:
        for member in members:
            tar.add(os.path.join(workdir, member), arcname=member)
    os.chmod(tar_path, 0o600)
    shutil.rmtree(workdir)
    return {
        "ok": True,
        "tar": tar_path,
        "size": os.path.getsize(tar_path),
        "sha256": sha256_of(tar_path),
        **detail,
    }


def cleanup_export(req: dict[str, Any]) -> dict[str, Any]:
    steps = new_steps()
    workdir = checked_path(req["workdir"])
    remove(workdir, steps, "export working directory")
    remove(workdir + ".tar", steps, "export archive on the host")
    parent = os.path.dirname(workdir)
    if os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)
    return {"ok": True, "steps": steps}


# --------------------------------------------------------------------------- erasure


def erase_backup_client(job: str, steps: list[dict[str, Any]]) -> None:
    """The tenant's backup job on its data host: timers, configuration, passphrase, SSH key,
    borg's cache and security directories, status and restore leftovers."""
    if not JOB_RE.match(job) or job == "shared":
        raise HostError(f"refusing the backup job name {job!r}")
    changed = False
    for unit in (f"relais-backup-{job}.timer", f"relais-backup-check-{job}.timer"):
        changed |= remove_unit(unit, steps)
    if changed:
        run(["systemctl", "daemon-reload"], check=False)
    for suffix, what in (
        (".json", "backup job configuration"),
        (".passphrase", "backup passphrase file"),
        (".key", "backup SSH key"),
    ):
        remove(f"/etc/relais/backup/{job}{suffix}", steps, what)
    for path, what in (
        (f"/var/lib/relais/backup/{job}.status.json", "backup status"),
        (f"/var/lib/relais/backup/{job}.restore.json", "restore status"),
        (f"/var/lib/relais/backup/borg/{job}", "borg cache and key directory"),
        (f"/var/lib/relais/backup/staging/{job}", "backup staging directory"),
        (f"/var/lib/relais/restore/{job}", "restore leftovers"),
    ):
        remove(path, steps, what)
    if os.access(BACKUP_AGENT, os.X_OK):
        run([BACKUP_AGENT, "textfile"], check=False)  # drop the tenant's series from the metrics


def erase_common(req: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    nginx = False
    for site in req.get("nginx_sites") or []:
        for directory in ("/etc/nginx/sites-enabled", "/etc/nginx/sites-available"):
            path = f"{directory}/{site}"
            if exists(path):
                nginx = True
            remove(path, steps, "nginx site")
    if nginx:
        reload_nginx()
    for path in req.get("tls_dirs") or []:
        remove(path, steps, "TLS certificate and key")
    if req.get("backup_job"):
        erase_backup_client(req["backup_job"], steps)


def erase_dedicated(req: dict[str, Any]) -> dict[str, Any]:
    steps = new_steps()
    unix_user = checked_name(req["unix_user"], "Unix user")
    database = checked_name(req["database"], "database")
    if remove_unit(req["unit"], steps):
        run(["systemctl", "daemon-reload"], check=False)
    if user_exists(unix_user):
        run(["pkill", "-KILL", "-u", unix_user], check=False)
    if postgres_installed():
        present = psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';").strip()
        if present:
            psql(f"DROP DATABASE {database} WITH (FORCE);")
        steps.append(
            {"what": "PostgreSQL database", "subject": database, "result": "erased" if present else "absent"}
        )
        role = psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{database}';").strip()
        if role:
            psql(f"DROP ROLE {database};")
        steps.append(
            {"what": "PostgreSQL role", "subject": database, "result": "erased" if role else "absent"}
        )
        hba_files = glob.glob("/etc/postgresql/*/main/pg_hba.conf")
        for hba in hba_files:
            with open(hba, encoding="utf-8") as handle:
                lines = handle.readlines()
            # "host <database>,<database>_drill <role> ..." (deploys/database.render_hba)
            kept = [line for line in lines
                    if database not in (line.split()[1].split(",") if len(line.split()) > 1 else [])]
            if kept != lines:
                with open(hba, "w", encoding="utf-8") as handle:
                    handle.writelines(kept)
                run(["systemctl", "reload", "postgresql"], check=False)
            steps.append(
                {
                    "what": "PostgreSQL client authentication line",
                    "subject": hba,
                    "result": "erased" if kept != lines else "absent",
                }
            )
    remove(req["config_dir"], steps, "homeserver configuration and signing key")
    remove(req["data_dir"], steps, "homeserver data and media store")
    erase_common(req, steps)
    if user_exists(unix_user):
        run(["userdel", unix_user])
        steps.append({"what": "Unix user", "subject": unix_user, "result": "erased"})
    else:
        steps.append({"what": "Unix user", "subject": unix_user, "result": "absent"})
    if group_exists(unix_user):
        run(["groupdel", unix_user], check=False)
    return {"ok": True, "steps": steps}


def _call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    ok: tuple[int, ...] = (200,),
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    for _ in range(30):
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        payload = json.loads(text or b"{}") if text[:1] in (b"{", b"[", b"") else {}
        if status == 429:
            time.sleep(min(10.0, payload.get("retry_after_ms", 1000) / 1000))
            continue
        if status not in ok:
            raise HostError(
                f"{method} {path.split('?')[0]}: HTTP {status} {payload.get('errcode', '')} "
                f"{payload.get('error', '')}".strip()
            )
        return status, payload
    raise HostError(f"{method} {path}: rate limited")


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _purge_room(base: str, token: str, room: str) -> str:
    status, answer = _call(
        base,
        "DELETE",
        f"/_synapse/admin/v2/rooms/{_q(room)}",
        {"purge": True, "block": False},
        token,
        ok=(200, 404),
    )
    if status == 404 or "delete_id" not in answer:
        return "absent"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        _, state = _call(
            base, "GET", f"/_synapse/admin/v2/rooms/delete_status/{_q(answer['delete_id'])}", None, token
        )
        if state.get("status") == "complete":
            return "erased"
        if state.get("status") == "failed":
            raise HostError(f"purging room {room} failed: {state.get('error', '')}")
        time.sleep(1)
    raise HostError(f"purging room {room} did not finish")


def erase_shared(req: dict[str, Any]) -> dict[str, Any]:
    """A commune of the shared homeserver: its accounts deactivated and erased (GDPR erasure:
    their messages are no longer shown to anyone who joins later), their media deleted, the
    commune's space and rooms purged, and the accounts' state forgotten by the deploy."""
    steps = new_steps()
    base = req["base_url"]
    _, login = _call(
        base,
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": req["admin_user"]},
            "password": req["admin_password"],
            "initial_device_display_name": "relais offboarding",
        },
    )
    token = str(login["access_token"])
    try:
        users = matrix_users(req)
        rooms: set[str] = set()
        for user in users:
            status, joined = _call(
                base, "GET", f"/_synapse/admin/v1/users/{_q(user)}/joined_rooms", None, token, ok=(200, 404)
            )
            rooms.update(joined.get("joined_rooms", []) if status == 200 else [])
            _, media = _call(
                base, "DELETE", f"/_synapse/admin/v1/users/{_q(user)}/media", None, token, ok=(200, 404)
            )
            steps.append(
                {
                    "what": "media uploaded by the account",
                    "subject": user,
                    "result": f"erased ({media.get('total', 0)} file(s))",
                }
            )
            _, info = _call(base, "GET", f"/_synapse/admin/v2/users/{_q(user)}", None, token, ok=(200, 404))
            if info.get("deactivated") and info.get("erased"):
                steps.append(
                    {"what": "Matrix account (deactivated, erased)", "subject": user, "result": "absent"}
                )
                continue
            _call(base, "POST", f"/_synapse/admin/v1/deactivate/{_q(user)}", {"erase": True}, token)
            steps.append(
                {"what": "Matrix account (deactivated, erased)", "subject": user, "result": "erased"}
            )
        state_file = req["state_file"]
        state: dict[str, Any] = {}
        if os.path.isfile(state_file):
            with open(state_file, encoding="utf-8") as handle:
                state = json.load(handle)
        space = (state.get("spaces") or {}).get(req["tenant"]) or {}
        rooms.update(r for r in (space.get("space"), space.get("room")) if r)
        for room in sorted(rooms):
            _, members = _call(
                base, "GET", f"/_synapse/admin/v1/rooms/{_q(room)}/members", None, token, ok=(200, 404)
            )
            others = [m for m in members.get("members", []) if m != req["admin_user"]]
            if room in (space.get("space"), space.get("room")) or not others:
                steps.append(
                    {"what": "room (purged)", "subject": room, "result": _purge_room(base, token, room)}
                )
            else:
                steps.append(
                    {
                        "what": "room shared with other accounts (kept; the commune's messages "
                        "are erased for later readers)",
                        "subject": room,
                        "result": "kept",
                    }
                )
        if state:
            gone = set(users)
            before = json.dumps(state, sort_keys=True)
            state["users"] = {u: v for u, v in (state.get("users") or {}).items() if u not in gone}
            (state.get("spaces") or {}).pop(req["tenant"], None)
            state.pop("digest", None)  # the next deploy converges the remaining communes again
            if json.dumps(state, sort_keys=True) != before:
                tmp = state_file + ".tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump(state, handle, sort_keys=True, indent=1)
                os.replace(tmp, state_file)
            steps.append(
                {
                    "what": "accounts and space in the deploy's state file",
                    "subject": state_file,
                    "result": "erased" if json.dumps(state, sort_keys=True) != before else "absent",
                }
            )
    finally:
        _call(base, "POST", "/_matrix/client/v3/logout", {}, token, ok=(200, 401))
    return {"ok": True, "steps": steps}


def erase_xmpp(req: dict[str, Any]) -> dict[str, Any]:
    steps = new_steps()
    config = req["tenant_file"]
    had_config = exists(checked_path(config))
    remove(config, steps, "Prosody virtual host configuration")
    if (
        had_config
        and os.access(req["shell_helper"], os.X_OK)
        and run(["systemctl", "is-active", "--quiet", "prosody"], check=False).returncode == 0
    ):
        run([req["shell_helper"]], input_text=req["sync_input"], timeout=300)
        steps.append(
            {
                "what": "Prosody virtual hosts deactivated",
                "subject": ", ".join(req["stores"]),
                "result": "erased",
            }
        )
    for _name, store in sorted(req["stores"].items()):
        remove(store, steps, "Prosody data (accounts, rosters, archives, group chats, files)")
    domain = req["domain"]
    markers = sorted(
        glob.glob("/var/lib/relais/xmpp/accounts/*@" + glob.escape(domain))
        + glob.glob("/var/lib/relais/xmpp/accounts/*@" + glob.escape(domain) + ".disabled")
    )
    for path in markers:
        remove(path, steps, "account marker")
    if not markers:
        steps.append(
            {
                "what": "account markers",
                "subject": f"/var/lib/relais/xmpp/accounts/*@{domain}",
                "result": "absent",
            }
        )
    remove(req["web_dir"], steps, "web client page")
    erase_common(req, steps)
    return {"ok": True, "steps": steps}


def erase_repository(req: dict[str, Any]) -> dict[str, Any]:
    steps = new_steps()
    repository = checked_path(req["repository"])
    if not repository.startswith("/srv/borg/"):
        raise HostError(f"refusing {repository}: not a borg repository of Relais")
    if not JOB_RE.match(req["job"]):
        raise HostError(f"refusing the backup job name {req['job']!r}")
    remove(repository, steps, "borg repository (with its repokey)")
    marker = f" relais-backup-{req['job']}"
    if exists(BORG_KEYS):
        with open(BORG_KEYS, encoding="utf-8") as handle:
            lines = handle.readlines()
        kept = [line for line in lines if not line.rstrip("\n").endswith(marker)]
        if kept != lines:
            with open(BORG_KEYS, "w", encoding="utf-8") as handle:
                handle.writelines(kept)
        steps.append(
            {
                "what": "backup SSH key allowed on the backup host",
                "subject": BORG_KEYS + ":" + marker.strip(),
                "result": "erased" if kept != lines else "absent",
            }
        )
    return {"ok": True, "steps": steps}


# --------------------------------------------------------------------------- verification


def inspect(req: dict[str, Any]) -> dict[str, Any]:
    """What of the tenant is still on this host (empty: nothing)."""
    remains: list[str] = []
    for path in req.get("paths") or []:
        if exists(path):
            remains.append(f"file {path}")
    for pattern in req.get("globs") or []:
        remains += [f"file {p}" for p in glob.glob(pattern)]
    for unit in req.get("units") or []:
        if unit_known(unit):
            remains.append(f"unit {unit}")
    for name in req.get("users") or []:
        if user_exists(name):
            remains.append(f"Unix user {name}")
        if group_exists(name):
            remains.append(f"group {name}")
    if (req.get("databases") or req.get("roles")) and postgres_installed():
        for name in req.get("databases") or []:
            if psql(f"SELECT 1 FROM pg_database WHERE datname = '{checked_name(name, 'database')}';").strip():
                remains.append(f"database {name}")
        for name in req.get("roles") or []:
            if psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{checked_name(name, 'role')}';").strip():
                remains.append(f"role {name}")
    if req.get("matrix_users"):
        database = req["matrix_users"]["database"]
        wanted = set(req["matrix_users"]["users"])
        rows = psql("SELECT name, deactivated FROM users ORDER BY name;", database)
        for line in rows.splitlines():
            name, _, deactivated = line.partition("|")
            if name in wanted and deactivated.strip() != "1":
                remains.append(f"active Matrix account {name}")
    for needle in req.get("grep") or []:
        path, text = needle
        if exists(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                if text in handle.read():
                    remains.append(f"{text!r} in {path}")
    return {"ok": True, "remains": remains}


ACTIONS = {
    "export_matrix": export_matrix,
    "export_xmpp": export_xmpp,
    "cleanup_export": cleanup_export,
    "erase_dedicated": erase_dedicated,
    "erase_shared": erase_shared,
    "erase_xmpp": erase_xmpp,
    "erase_repository": erase_repository,
    "inspect": inspect,
}


def main(req: dict[str, Any]) -> int:
    try:
        action = ACTIONS[req["action"]]
        answer = action(req)
    except (HostError, OSError, KeyError, ValueError, subprocess.TimeoutExpired) as error:
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}", "steps": list(_STEPS)}))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.load(sys.stdin)))
