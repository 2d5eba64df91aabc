"""The issue's end-to-end proof on a real homeserver: agents exchange messages, `relais backup
run`, the tenant's database is dropped and its media deleted by hand, `relais backup restore`,
and the same messages are read again by a Matrix client (matrix-nio). Then the drill of every
job reports RPO and RTO.

Runs on the deployed region (the `deployed` fixture: every concern).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nio import RoomMessagesResponse, RoomMessageText

from relais.backup.jobs import find_job
from relais.cli.context import default_inventory
from relais.deploy.runner import DeployReport
from relais.lab import Lab
from relais.plan import Plan
from relais.probes.matrix import deliver, logged_in
from relais.probes.net import ProbeContext
from tests.lab.test_backup import cli, cli_json, sh


@pytest.fixture(scope="module")
def probe(plan: Plan, deployed: DeployReport) -> ProbeContext:
    return ProbeContext.for_inventory(plan, default_inventory(), timeout=180)


async def _bodies(probe: ProbeContext, agent: Any, room_id: str) -> list[str]:
    async with logged_in(probe, agent) as client:
        await client.sync(timeout=0)
        page = await client.room_messages(room_id, start="", limit=100)
        assert isinstance(page, RoomMessagesResponse), page
        return [e.body for e in page.chunk if isinstance(e, RoomMessageText)]


def test_messages_survive_database_and_media_loss(plan: Plan, lab: Lab, probe: ProbeContext) -> None:
    caen = next(t for t in plan.tenants if t.flavor == "matrix-dedicated" and t.status == "active"
                and len(t.agents) >= 2)
    job = find_job(plan, caen.id)
    sent = [deliver(probe, caen.agents[0], caen.agents[1])]
    sent.append(deliver(probe, caen.agents[0], caen.agents[1], room_id=sent[0].room_id))
    assert all(d.delivered for d in sent)
    code, runs = cli_json("run", job.id)
    assert code == 0 and runs[0]["ok"], runs

    sh(lab, job.host, f"runuser -u postgres -- psql -X -q -c \"SELECT pg_terminate_backend(pid) FROM "
                      f"pg_stat_activity WHERE datname = '{job.database}'\" && systemctl stop {job.service} && "
                      f"runuser -u postgres -- dropdb {job.database} && rm -rf {job.extra['data_dir']}/media")
    restored = cli("restore", job.id, "--yes")
    assert restored.exit_code == 0, restored.output
    bodies = asyncio.run(_bodies(probe, caen.agents[1], sent[0].room_id))
    assert {d.body for d in sent} <= set(bodies)
    assert cli("restore", job.id, "--confirm-swap", "--yes").exit_code == 0


def test_drill_all_reports_rpo_and_rto(plan: Plan, probe: ProbeContext) -> None:
    code, runs = cli_json("run", "--all")
    assert code == 0, runs
    code, drills = cli_json("drill", "--all")
    print(json.dumps([{k: d.get(k) for k in ("job", "ok", "rpo_seconds", "rto_seconds",
                                             "restored_message_count", "expected_message_count", "error")}
                      for d in drills], indent=1))
    assert code == 0, drills
    for drill in drills:
        assert drill["messages_match"] and drill["rpo_seconds"] >= 0 and drill["rto_seconds"] > 0
