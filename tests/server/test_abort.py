"""``POST /api/matches/{id}/abort`` (issue 10, 2): the owner of a seat, or an operator, stops a
pending or live match on a real server. It is stored ``aborted`` naming who stopped it, its
spectators get ``end``, its seats are gone (no live match left); anyone else gets 403, an
unknown id 404, a finished match 409. Another user's match started before finishes normally
and health stays ok. ``arena abort`` does the same from the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.security.processes import descendants, describe
from tests.server.conftest import (
    RPS_CYCLE,
    RPS_SLOW,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

pytestmark = pytest.mark.both_backends

JSON = Any
ROOT = Path(__file__).resolve().parents[2]
ENDLESS = {"episodeSteps": 10_000, "runTimeout": 3600.0}  # would play on for minutes


async def recv(ws: ClientConnection) -> JSON:
    with anyio.fail_after(20):
        return json.loads(await ws.recv())


async def wait_live(client: httpx.AsyncClient, match_id: int) -> None:
    with anyio.fail_after(20):
        while True:
            if (await client.get(f"/api/matches/{match_id}")).json()["status"] == "live":
                return
            await anyio.sleep(0.02)


async def abort(client: httpx.AsyncClient, user: User | None, match_id: int) -> httpx.Response:
    return await client.post(f"/api/matches/{match_id}/abort", headers=user.headers if user else None)


async def bystander_match(client: httpx.AsyncClient) -> tuple[User, JSON]:
    """Another user's match, started before the stop and expected to finish as usual."""
    bob = await create_user(client, "bob")
    slow = await submit_agent(client, bob, "bob_slow", "rps", RPS_SLOW)
    cycle = await submit_agent(client, bob, "bob_cycle", "rps", RPS_CYCLE)
    return bob, await start_match(client, bob, "rps", [slow["id"], cycle["id"]], {"episodeSteps": 200}, seed=2)


async def check_bystander(client: httpx.AsyncClient, match: JSON) -> None:
    finished = await wait_finished(client, match["id"])
    assert finished["status"] == "finished" and [s["status"] for s in finished["seats"]] == ["DONE", "DONE"]
    health = await client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert health.json()["live_matches"] == 0


async def test_the_owner_of_a_seat_stops_a_live_match(tmp_path: Path, db_url: str) -> None:
    # Fresh seats are this process's children, so that none can be left over unseen (beside what
    # the test process ran before: a fork server an earlier test started lives until it exits).
    earlier = set(descendants(os.getpid()))
    async with api_client(quiet_settings(tmp_path, db=db_url, seat_mode="fresh")) as client:
        _, before = await bystander_match(client)
        alice = await create_user(client, "alice")
        mallory = await create_user(client, "mallory")
        eve = await create_user(client, "eve")
        hers = await submit_agent(client, alice, "alice_bot", "rps", RPS_CYCLE)
        his = await submit_agent(client, mallory, "mallory_bot", "rps", RPS_SLOW)
        # Mallory challenges Alice's bot to a match that would hold both seats for minutes.
        match = await start_match(client, mallory, "rps", [hers["id"], his["id"]], ENDLESS)
        await wait_live(client, match["id"])
        async with connect(ws_url(client, f"/ws/matches/{match['id']}")) as spectator:
            assert (await recv(spectator))["type"] == "snapshot"

            assert (await abort(client, None, match["id"])).status_code == 401
            refused = await abort(client, eve, match["id"])
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
            assert (await client.get(f"/api/matches/{match['id']}")).json()["status"] == "live"

            stopped = await abort(client, alice, match["id"])
            assert stopped.status_code == 200, stopped.text
            doc = stopped.json()
            assert doc["status"] == "aborted" and doc["reason"] == "stopped by user alice (owner of seat 0)"
            assert doc["finished_at"] is not None and doc["steps"] < ENDLESS["episodeSteps"]
            frame = await recv(spectator)
            while frame["type"] != "end":
                frame = await recv(spectator)
            assert frame["result"]["status"] == "aborted" and frame["result"]["reason"] == doc["reason"]

        stored = (await client.get(f"/api/matches/{match['id']}")).json()
        assert stored["status"] == "aborted" and stored["reason"] == doc["reason"]
        again = await abort(client, alice, match["id"])
        assert again.status_code == 409 and again.json()["error"]["code"] == "match_over"
        assert "aborted already" in again.json()["error"]["message"]
        assert (await abort(client, alice, 999_999)).status_code == 404
        # The challenger owns the other seat: it may stop its own challenge too.
        second = await start_match(client, mallory, "rps", [hers["id"], his["id"]], ENDLESS)
        stopped = await abort(client, mallory, second["id"])
        assert stopped.status_code == 200 and stopped.json()["reason"] == "stopped by user mallory (owner of seat 1)"
        await check_bystander(client, before)
        left = [describe(pid) for pid in descendants(os.getpid()) if pid not in earlier]
        assert left == []  # the stopped matches' seats are gone


async def test_an_operator_stops_any_match_and_a_finished_one_is_409(tmp_path: Path, db_url: str) -> None:
    async with api_client(quiet_settings(tmp_path, db=db_url, operators=(1,))) as client:
        ops = await create_user(client, "ops")
        assert ops.id == 1
        _, before = await bystander_match(client)
        alice = await create_user(client, "alice")
        a = await submit_agent(client, alice, "a", "rps", RPS_SLOW)
        b = await submit_agent(client, alice, "b", "rps", RPS_CYCLE)
        # Stopped at once, pending or just live: either way it ends aborted.
        match = await start_match(client, alice, "rps", [a["id"], b["id"]], ENDLESS)
        stopped = await abort(client, ops, match["id"])
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "aborted" and stopped.json()["reason"] == "stopped by operator ops"

        short = await start_match(client, alice, "rps", [a["id"], b["id"]], {"episodeSteps": 5})
        await wait_finished(client, short["id"])
        late = await abort(client, ops, short["id"])
        assert late.status_code == 409 and late.json()["error"]["code"] == "match_over"
        assert late.json()["error"]["message"] == (
            f"match {short['id']} is finished already; only a pending or live match can be stopped")
        await check_bystander(client, before)


async def test_a_match_waiting_for_an_absent_remote_agent_is_stopped_by_its_owner(tmp_path: Path, db_url: str) -> None:
    async with api_client(quiet_settings(tmp_path, db=db_url)) as client:
        _, before = await bystander_match(client)
        carol = await create_user(client, "carol")
        remote = await client.post("/api/agents", json={"name": "far", "game": "rps", "remote": True},
                                   headers=carol.headers)
        assert remote.status_code == 201, remote.text
        local = await submit_agent(client, carol, "near", "rps", RPS_CYCLE)
        # Nobody plays the remote seat: the match would wait its agentTimeout (a minute) to start.
        match = await start_match(client, carol, "rps", [local["id"], remote.json()["id"]], {"agentTimeout": 60})
        stopped = await abort(client, carol, match["id"])
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["reason"] == "stopped by user carol (owner of seats 0, 1)"
        await check_bystander(client, before)


async def test_arena_abort(tmp_path: Path, db_url: str) -> None:
    async with api_client(quiet_settings(tmp_path, db=db_url)) as client:
        dave = await create_user(client, "dave")
        a = await submit_agent(client, dave, "a", "rps", RPS_SLOW)
        b = await submit_agent(client, dave, "b", "rps", RPS_CYCLE)
        match = await start_match(client, dave, "rps", [a["id"], b["id"]], ENDLESS)
        command = [sys.executable, "-m", "client", "abort", str(match["id"]), "--server", str(client.base_url),
                   "--token", dave.token]
        done = await anyio.run_process(command, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == f"match {match['id']} aborted: stopped by user dave (owner of seats 0, 1)\n"
        again = await anyio.run_process(command, cwd=ROOT, check=False)
        assert again.returncode == 1 and again.stdout == b""
        assert again.stderr.decode() == (f"arena: error: match {match['id']} is aborted already; only a pending or "
                                         "live match can be stopped\n")
