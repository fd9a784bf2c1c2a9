"""Remote agents across the cluster, as real processes on the tests' private PostgreSQL: an agent
connected to one front plays matches that workers run (``server/cluster/agents.py``).

Each worker runs one match at a time, so two matches created together run on both workers at
once; the sandboxed opponent sleeps a little per move so that they overlap.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.matches.replay import verify_replay
from tests.cluster.nodes import Node, node
from tests.server.agent_client import action, open_agent, play, recv, register_remote, rps_cycle
from tests.server.conftest import User, create_user, start_match, submit_agent, wait_finished
from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

JSON = Any
STEPS = 40

SLOW_ROCK = """
from time import sleep

def agent(observation, configuration):
    sleep(0.02)
    return 0
"""


async def seat_log(front: Node, user: User, agent_id: int, match_id: int) -> str:
    response = await front.client.get(f"/api/agents/{agent_id}/logs?match={match_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    log: str = response.json()["log"]
    return log


async def finished_and_verified(front: Node, match_ids: list[int]) -> list[JSON]:
    docs = [await wait_finished(front.client, match_id, timeout_s=60) for match_id in match_ids]
    for doc in docs:
        assert doc["status"] == "finished", doc
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"], doc
        replay = (await front.client.get(f"/api/matches/{doc['id']}/replay")).json()
        assert len(replay["steps"]) == STEPS
        assert verify_replay(replay).ok
    return docs


async def test_an_agent_on_one_front_plays_matches_of_both_workers_at_once(postgres_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        front_a = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "a.log"))
        front_b = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "b.log"))
        workers = [await stack.enter_async_context(node(postgres_url, "worker", tmp_path / f"w{i}.log", max_matches=1))
                   for i in (1, 2)]
        names = {(await w.health())["worker"] for w in workers}
        alice = await create_user(front_b.client, "alice")
        remote = await register_remote(front_b.client, alice, "far-away", "rps")
        rock = (await submit_agent(front_b.client, alice, "rock", "rps", SLOW_ROCK))["id"]
        async with open_agent(front_a.client, alice) as ws:
            await recv(ws, "welcome")
            # Created through front B, run by the workers, played through front A's connection.
            matches = [await start_match(front_b.client, alice, "rps", [remote, rock], {"episodeSteps": STEPS})
                       for _ in range(2)]
            ends = await play(ws, rps_cycle, matches=2, timeout_s=120)
        assert sorted(end["match_id"] for end in ends) == sorted(m["id"] for m in matches)
        assert all(end["result"]["status"] == "finished" for end in ends), ends
        docs = await finished_and_verified(front_a, [m["id"] for m in matches])
        assert {doc["worker"] for doc in docs} == names  # one on each worker, at once
        for doc in docs:
            log = await seat_log(front_a, alice, remote, doc["id"])
            assert "relay round trip: median" in log, log
            replay = (await front_a.client.get(f"/api/matches/{doc['id']}/replay")).json()
            allowances = [step["timing"][0]["allowance_s"] for step in replay["steps"] if step["timing"]]
            assert allowances and all(a is not None and a > 0 for a in allowances)  # the relay is credited


async def test_an_agent_that_moves_to_another_front_mid_match_finishes_it_there(
    postgres_url: str, tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        front_a = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "a.log"))
        front_b = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "b.log"))
        await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "w.log"))
        alice = await create_user(front_a.client, "alice")
        remote = await register_remote(front_a.client, alice, "wanderer", "rps")
        rock = (await submit_agent(front_a.client, alice, "rock", "rps", SLOW_ROCK))["id"]
        # The bank covers the move left unanswered while the agent moves (release, claim elsewhere).
        match = await start_match(front_a.client, alice, "rps", [remote, rock],
                                  {"episodeSteps": STEPS, "actTimeout": 1, "remainingOverageTime": 10})
        async with open_agent(front_a.client, alice) as ws:
            await recv(ws, "welcome")
            with anyio.fail_after(60):
                while True:
                    turn = await recv(ws, "turn")
                    if turn["step"] >= 10:
                        break  # left unanswered: the agent goes to front B with this turn pending
                    await ws.send(action(turn, rps_cycle(turn["observation"])))
        async with open_agent(front_b.client, alice) as ws:
            await recv(ws, "welcome")
            start = await recv(ws, "match_start")
            assert (start["match_id"], start["seat"]) == (match["id"], 0)
            resumed = await recv(ws, "turn")
            assert resumed["step"] == turn["step"] and 0 < resumed["deadline"] < 11, resumed
            await ws.send(json.dumps({"type": "action", "match_id": match["id"], "step": resumed["step"],
                                      "action": rps_cycle(resumed["observation"]), "seat": 0}))
            (end,) = await play(ws, rps_cycle, timeout_s=120)
        assert end["match_id"] == match["id"] and end["result"]["status"] == "finished"
        await finished_and_verified(front_b, [match["id"]])


async def test_listening_connections_killed_mid_match_lose_no_move(postgres_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "w.log"))
        alice = await create_user(front.client, "alice")
        remote = await register_remote(front.client, alice, "steady", "rps")
        rock = (await submit_agent(front.client, alice, "rock", "rps", SLOW_ROCK))["id"]
        match = await start_match(front.client, alice, "rps", [remote, rock], {"episodeSteps": STEPS})
        killed: list[tuple[object, ...]] = []
        async with open_agent(front.client, alice) as ws:
            await recv(ws, "welcome")
            with anyio.fail_after(120):
                while True:
                    frame = await recv(ws, "turn", "match_end")
                    if frame["type"] == "match_end":
                        break
                    if frame["step"] in (10, 25):  # the front's desk and the worker's exchange, from the database
                        killed += query(postgres_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                        " WHERE application_name LIKE 'agent-arena-desk %'"
                                        " OR application_name = 'agent-arena-exchange'")
                    await ws.send(action(frame, rps_cycle(frame["observation"])))
        assert frame["result"]["status"] == "finished"
        assert killed == [(True,)] * 4, killed
        await finished_and_verified(front, [match["id"]])


async def test_a_match_stopped_on_a_front_ends_for_its_agent(postgres_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "w.log"))
        alice = await create_user(front.client, "alice")
        remote = await register_remote(front.client, alice, "stopped", "rps")
        rock = (await submit_agent(front.client, alice, "rock", "rps", SLOW_ROCK))["id"]
        match = await start_match(front.client, alice, "rps", [remote, rock], {"episodeSteps": 500})
        async with open_agent(front.client, alice) as ws:
            await recv(ws, "welcome")
            with anyio.fail_after(60):
                while (turn := await recv(ws, "turn"))["step"] < 5:
                    await ws.send(action(turn, rps_cycle(turn["observation"])))
            stopped = await front.client.post(f"/api/matches/{match['id']}/abort", headers=alice.headers)
            assert stopped.status_code == 200, stopped.text
            end = await recv(ws, "match_end", timeout_s=30)
        assert end["match_id"] == match["id"] and end["result"]["status"] == "aborted", end
        doc = await wait_finished(front.client, match["id"])
        assert doc["status"] == "aborted" and doc["reason"], doc
