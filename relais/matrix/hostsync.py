"""Converge a homeserver's accounts and commune spaces. Runs ON the host, as root, with the
homeserver's own Python (standard library only), against Synapse on loopback.

    python hostsync.py REQUEST.json

The request (written by the deploy, mode 0600) holds passwords: it is read then removed at
once. The admin account that drives the admin API is created the first time with Synapse's
registration shared secret, which is put in conf.d/ only for that moment: Synapse restarts
with it, the account is registered, the file is removed and Synapse restarts without it.
The state file (0600) keeps password digests, never passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

HEALTH_TIMEOUT = 900


class SyncError(Exception):
    pass


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None,
         ok: tuple[int, ...] = (200,)) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    for _ in range(30):
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        payload = json.loads(text or b"{}") if text[:1] in (b"{", b"[", b"") else {"raw": text.decode()}
        if status == 429:
            time.sleep(min(10.0, payload.get("retry_after_ms", 1000) / 1000))
            continue
        if status not in ok:
            raise SyncError(f"{method} {path.split('?')[0]}: HTTP {status} {payload.get('errcode', '')} "
                            f"{payload.get('error', '')}".strip())
        return status, payload
    raise SyncError(f"{method} {path}: rate limited")


def wait_healthy(base: str) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    raise SyncError(f"Synapse at {base} did not become healthy")


def login(base: str, user: str, password: str) -> str | None:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, "initial_device_display_name": "relais deploy"}
    status, payload = call(base, "POST", "/_matrix/client/v3/login", body, ok=(200, 403))
    return str(payload["access_token"]) if status == 200 else None


def restart(unit: str, base: str) -> None:
    subprocess.run(["systemctl", "restart", unit], check=True)
    wait_healthy(base)


def bootstrap_admin(req: dict[str, Any]) -> None:
    base, secret = req["base_url"], req["registration_secret"]
    path = os.path.join(req["config_dir"], "conf.d", "bootstrap.yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"registration_shared_secret: {secret}\n")
    subprocess.run(["chown", f"root:{req['unix_user']}", path], check=True)
    try:
        restart(req["unit"], base)
        _, payload = call(base, "GET", "/_synapse/admin/v1/register")
        nonce, user, password = payload["nonce"], req["admin"]["localpart"], req["admin"]["password"]
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, user, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin")
        status, answer = call(base, "POST", "/_synapse/admin/v1/register",
                              {"nonce": nonce, "username": user, "password": password, "admin": True,
                               "mac": mac.hexdigest()}, ok=(200, 400))
        if status != 200:
            raise SyncError(f"cannot create the admin account: {answer.get('error')} (if it exists with "
                            "another password, the registration secret was rotated: reset it by hand)")
    finally:
        os.unlink(path)
        restart(req["unit"], base)


def save(path: str, state: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, sort_keys=True, indent=1)
    os.replace(tmp, path)


def quote(user_id: str) -> str:
    return urllib.parse.quote(user_id, safe="")


def converge_users(req: dict[str, Any], token: str, state: dict[str, Any]) -> None:
    base = req["base_url"]
    for user_id, want in sorted(req["desired"]["users"].items()):
        have = state["users"].get(user_id)
        body: dict[str, Any] = {}
        if (have is None or have.get("password") != want["password"]) and user_id in req["passwords"]:
            body["password"] = req["passwords"][user_id]
            body["logout_devices"] = have is not None
        if have is None or have.get("displayname") != want["displayname"]:
            body["displayname"] = want["displayname"]
        if have is None or have.get("locked") != want["locked"]:
            body["locked"] = want["locked"]
        if body:
            call(base, "PUT", f"/_synapse/admin/v2/users/{quote(user_id)}", body, token, ok=(200, 201))
        state["users"][user_id] = want
        save(req["state_file"], state)


def create_room(base: str, token: str, body: dict[str, Any]) -> str:
    _, payload = call(base, "POST", "/_matrix/client/v3/createRoom", body, token)
    return str(payload["room_id"])


def invite(base: str, token: str, room: str, user_id: str) -> None:
    status, payload = call(base, "POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite",
                           {"user_id": user_id}, token, ok=(200, 403))
    if status == 403 and "already" not in payload.get("error", ""):
        raise SyncError(f"cannot invite {user_id}: {payload.get('error')}")


def converge_spaces(req: dict[str, Any], token: str, state: dict[str, Any]) -> None:
    base, server = req["base_url"], req["server_name"]
    for key, want in sorted(req["desired"]["spaces"].items()):
        have = dict(state["spaces"].get(key) or {})
        if not have.get("space"):
            have["space"] = create_room(base, token, {
                "name": want["name"], "preset": "private_chat", "visibility": "private",
                "creation_content": {"type": "m.space"}})
            have["members"] = []
        if not have.get("room"):
            have["room"] = create_room(base, token, {
                "name": want["room"], "preset": "private_chat", "visibility": "private",
                "initial_state": [{"type": "m.space.parent", "state_key": have["space"],
                                   "content": {"via": [server], "canonical": True}}]})
            call(base, "PUT", f"/_matrix/client/v3/rooms/{quote(have['space'])}/state/m.space.child/"
                 f"{quote(have['room'])}", {"via": [server], "suggested": True}, token)
        for user_id in want["members"]:
            if user_id not in have.get("members", []):
                invite(base, token, have["space"], user_id)
                invite(base, token, have["room"], user_id)
        have["members"] = sorted(want["members"])
        have["name"] = want["name"]
        state["spaces"][key] = have
        save(req["state_file"], state)


def main(path: str) -> int:
    with open(path) as handle:
        req = json.load(handle)
    os.unlink(path)
    try:
        with open(req["state_file"]) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        state = {}
    state.setdefault("users", {})
    state.setdefault("spaces", {})
    base = req["base_url"]
    wait_healthy(base)
    admin = f"@{req['admin']['localpart']}:{req['server_name']}"
    token = login(base, admin, req["admin"]["password"])
    if token is None:
        bootstrap_admin(req)
        token = login(base, admin, req["admin"]["password"])
        if token is None:
            raise SyncError("the admin account was created but cannot log in")
    try:
        converge_users(req, token, state)
        converge_spaces(req, token, state)
        state["digest"] = req["digest"]
        save(req["state_file"], state)
    finally:
        call(base, "POST", "/_matrix/client/v3/logout", {}, token)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except SyncError as error:
        print(f"relais hostsync: {error}", file=sys.stderr)
        sys.exit(1)
