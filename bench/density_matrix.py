"""Memory per Matrix tenant on the lab hosts (PSS; the lab's cgroup v1 memory controller is not
delegated, so memory.current is not available there).

- every deployed homeserver: PSS of its Synapse process after start-up (unit restarted, then
  `--settle` seconds), then after a short message load (`--messages` messages per tenant, sent
  with matrix-nio over HTTPS between two of its agents);
- the shared homeserver: `--extra-communes` synthetic communes (two accounts, a space, a room,
  `--messages` messages each, their rate limit lifted) are added over the admin API on
  loopback, and the PSS growth
  divided by their number gives the cost of one more commune;
- PostgreSQL's PSS per host, shared by the databases there.

Run on a deployed lab (it adds synthetic communes to the shared homeserver).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from typing import Any

from relais.cli.context import State, default_inventory, load_plan
from relais.deploy.targets import resolve
from relais.matrix.homeservers import Homeserver, admin_password, homeservers
from relais.model import Role
from relais.plan import Plan
from relais.probes.matrix import logged_in
from relais.probes.net import ProbeContext
from relais.sizing import host_reserved

HOST_RAM_MIB = 8 * 1024


def _run(plan: Plan, host: str, command: str, stdin: str | None = None, timeout: int = 600) -> str:
    import subprocess

    target = resolve(plan, plan.host(host))
    wrapped = command if target.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"
    done = subprocess.run(["ssh", *target.ssh_options(), target.address, wrapped], input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{host}: {command[:60]}…: {done.stderr.strip()[-300:]}")
    return done.stdout


def pss_mib(plan: Plan, hs: Homeserver) -> float:
    pid = _run(plan, hs.host, f"systemctl show -p MainPID --value {hs.unit}").strip()
    kib = _run(plan, hs.host, f"awk '/^Pss:/ {{print $2}}' /proc/{pid}/smaps_rollup").strip()
    return int(kib) / 1024


def postgres_pss_mib(plan: Plan, host: str) -> float:
    out = _run(plan, host, "for p in $(pgrep -u postgres); do awk '/^Pss:/ {print $2}' "
                           "/proc/$p/smaps_rollup 2>/dev/null; done")
    return sum(int(x) for x in out.split()) / 1024


def restart(plan: Plan, hs: Homeserver) -> None:
    _run(plan, hs.host, f"systemctl restart {hs.unit} && for i in $(seq 300); do "
                        f"curl -sf http://127.0.0.1:{hs.port}/health >/dev/null && exit 0; sleep 1; "
                        "done; exit 1")


async def _load(ctx: ProbeContext, hs: Homeserver, messages: int) -> None:
    for tenant in hs.communes:
        if tenant.status != "active" or len(tenant.agents) < 2:
            continue
        sender, recipient = tenant.agents[0], tenant.agents[1]
        async with logged_in(ctx, sender) as alice, logged_in(ctx, recipient) as bob:
            room = await alice.room_create(name="bench", invite=[recipient.address])
            await bob.join(room.room_id)
            for i in range(messages):
                await alice.room_send(room.room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": f"bench {i} " + "x" * 80})
            await bob.sync(timeout=0)


# Runs on the host with Python's standard library; reads its parameters (admin password) on stdin.
EXTRA_COMMUNES = r'''
import json, sys, urllib.request, urllib.parse, time
p = json.loads(sys.stdin.read())
base = p["base"]
def call(method, path, body=None, token=None):
    for _ in range(60):
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     method=method, headers={"Content-Type": "application/json"})
        if token: req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=120) as r: return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            if e.code == 429: time.sleep(1); continue
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:200]}")
q = urllib.parse.quote
admin = call("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier":
             {"type": "m.id.user", "user": p["admin"]}, "password": p["password"]})["access_token"]
for i in range(p["count"]):
    users = [f"@bench-{p['tag']}-{i}-{s}:{p['server']}" for s in "ab"]
    tokens = []
    for u in users:
        call("PUT", f"/_synapse/admin/v2/users/{q(u, safe='')}",
             {"password": "Bench-" + p["tag"] + "-pw-123", "displayname": u}, admin)
        call("POST", f"/_synapse/admin/v1/users/{q(u, safe='')}/override_ratelimit",
             {"messages_per_second": 0, "burst_count": 0}, admin)  # synthetic load, not a user
        login = call("POST", f"/_synapse/admin/v1/users/{q(u, safe='')}/login", {}, admin)
        tokens.append(login["access_token"])
    space = call("POST", "/_matrix/client/v3/createRoom",
                 {"name": f"Bench {i}", "preset": "private_chat",
                  "creation_content": {"type": "m.space"}, "invite": users}, admin)["room_id"]
    room = call("POST", "/_matrix/client/v3/createRoom", {"name": f"Bench {i} général",
                "preset": "private_chat", "invite": users}, admin)["room_id"]
    for t in tokens:
        call("POST", f"/_matrix/client/v3/join/{q(space, safe='')}", {}, t)
        call("POST", f"/_matrix/client/v3/join/{q(room, safe='')}", {}, t)
    for m in range(p["messages"]):
        call("PUT", f"/_matrix/client/v3/rooms/{q(room, safe='')}/send/m.room.message/b{m}",
             {"msgtype": "m.text", "body": f"bench {m} " + "x" * 80}, tokens[m % 2])
    for t in tokens:
        call("GET", "/_matrix/client/v3/sync?timeout=0", None, t)
print("ok")
'''


def add_extra_communes(plan: Plan, hs: Homeserver, count: int, messages: int, secret: Any) -> None:
    params = {"base": f"http://127.0.0.1:{hs.port}", "server": hs.server_name, "admin": hs.admin_user,
              "password": admin_password(secret(hs.secret_ref("registration_secret"))),
              "count": count, "messages": messages, "tag": str(int(time.time()))}
    _run(plan, hs.host, f"python3 -c {shlex.quote(EXTRA_COMMUNES)}", stdin=json.dumps(params), timeout=3600)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    plan = load_plan(State(default_inventory()))
    ctx = ProbeContext.for_inventory(plan, default_inventory(), timeout=300)
    servers = [hs for hs in homeservers(plan) if hs.running]
    rows = []
    for hs in servers:
        restart(plan, hs)
    time.sleep(args.settle)
    started = {hs.id: pss_mib(plan, hs) for hs in servers}
    print("after start-up (MiB):", json.dumps({k: round(v, 1) for k, v in started.items()}), file=sys.stderr)
    for hs in servers:
        asyncio.run(_load(ctx, hs, args.messages))
    time.sleep(args.settle)
    for hs in servers:
        rows.append({"homeserver": hs.id, "server_name": hs.server_name, "host": hs.host,
                     "communes": len(hs.communes), "pss_started_mib": round(started[hs.id], 1),
                     "pss_after_load_mib": round(pss_mib(plan, hs), 1)})
    hosts = sorted({hs.host for hs in servers})
    postgres = {h: round(postgres_pss_mib(plan, h), 1) for h in hosts}
    databases = {h: sum(1 for hs in homeservers(plan) if hs.host == h) for h in hosts}
    result: dict[str, Any] = {"homeservers": rows, "postgres_pss_mib": postgres}
    print(f"after load: {json.dumps(result)}", file=sys.stderr)
    reserved = host_reserved([Role.MESSAGING, Role.PROXY, Role.DATABASE]).ram_mib
    dedicated = [r for r in rows if r["homeserver"] != "shared"]
    if dedicated:
        per = max(r["pss_after_load_mib"] for r in dedicated)
        pg_share = max(postgres[h] / databases[h] for h in hosts)
        result["dedicated"] = {"pss_per_homeserver_mib": per, "postgres_share_mib": round(pg_share, 1),
                               "host_reserved_mib": reserved,
                               "fit_in_8_gib": int((HOST_RAM_MIB - reserved) // (per + pg_share))}
    shared = next((hs for hs in servers if hs.shared), None)
    if shared is not None and args.extra_communes:
        before = pss_mib(plan, shared)
        print(f"shared before {args.extra_communes} extra communes: {before:.1f} MiB", file=sys.stderr)
        add_extra_communes(plan, shared, args.extra_communes, args.extra_messages, ctx.secret)
        time.sleep(args.settle)
        after = pss_mib(plan, shared)
        marginal = max(0.0, (after - before) / args.extra_communes)
        base = next(r["pss_after_load_mib"] for r in rows if r["homeserver"] == "shared")
        result["shared"] = {"pss_before_mib": round(before, 1), "pss_after_mib": round(after, 1),
                            "extra_communes": args.extra_communes,
                            "pss_per_extra_commune_mib": round(marginal, 2), "host_reserved_mib": reserved,
                            "fit_in_8_gib": int((HOST_RAM_MIB - reserved - base) // max(marginal, 0.1))}
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=10,
                        help="messages per tenant in the load (Synapse's rate limits apply to agents)")
    parser.add_argument("--extra-messages", type=int, default=5, help="messages per synthetic commune")
    parser.add_argument("--extra-communes", type=int, default=10,
                        help="synthetic communes added to the shared homeserver (0: skip)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait before measuring")


def render(result: dict[str, Any]) -> str:
    lines = ["homeserver            host         communes  PSS started  PSS after load"]
    for r in result["homeservers"]:
        lines.append(f"{r['server_name'][:21]:<21} {r['host']:<12} {r['communes']:>8}  "
                     f"{r['pss_started_mib']:>8.1f} MiB  {r['pss_after_load_mib']:>8.1f} MiB")
    lines.append(f"PostgreSQL PSS per host: {result['postgres_pss_mib']}")
    if "dedicated" in result:
        d = result["dedicated"]
        lines.append(f"dedicated: {d['pss_per_homeserver_mib']} MiB Synapse + {d['postgres_share_mib']} MiB "
                     f"PostgreSQL share -> {d['fit_in_8_gib']} per 8 GiB host")
    if "shared" in result:
        s = result["shared"]
        lines.append(f"shared: +{s['pss_per_extra_commune_mib']} MiB per extra commune "
                     f"({s['pss_before_mib']} -> {s['pss_after_mib']} MiB for {s['extra_communes']}) "
                     f"-> {s['fit_in_8_gib']} communes per 8 GiB host")
    return "\n".join(lines)
