"""Fair time under load (``server/matches/cores.py``), on a real server with real sandboxes: bots
that burn half a second of CPU a move, with one second a move and no bank, never time out
because other matches' bots think too; the time their turns waited for a core is recorded and
charged to nothing; a bot that spins past its own deadline still times out.

On this machine's two cores, eight such matches at once (sixteen seats thinking at once in
rock-paper-scissors) would give each bot an eighth of a core, four seconds a move on the wall.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import pytest

from server.config import Settings
from server.matches.replay import verify_replay
from tests.server.conftest import api_client, create_user, start_match, submit_agent, wait_finished

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

JSON = Any
MATCHES = 8
STEPS = 3
# One second a move and no bank: a move that takes more than a second of wall time is a TIMEOUT.
CONFIG = {"episodeSteps": STEPS, "actTimeout": 1, "remainingOverageTime": 0}


def burner(cpu_s: float) -> str:
    """A bot that computes for ``cpu_s`` of its own CPU time every move."""
    return f"""
import time

def agent(observation, configuration):
    end = time.process_time() + {cpu_s}
    while time.process_time() < end:
        pass
    return observation.step % 3
"""


async def play(settings: Settings, matches: int, code: str) -> list[JSON]:
    """``matches`` RPS matches at once between two copies of ``code``; their replays."""
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        a = (await submit_agent(client, alice, "a", "rps", code))["id"]
        b = (await submit_agent(client, alice, "b", "rps", code))["id"]
        created: list[JSON] = []
        async with anyio.create_task_group() as tg:  # all of them at once
            async def create() -> None:
                created.append(await start_match(client, alice, "rps", [a, b], CONFIG))

            for _ in range(matches):
                tg.start_soon(create)
        replays = []
        for match in created:
            doc = await wait_finished(client, match["id"], timeout_s=240)
            replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
            assert verify_replay(replay).ok
            replays.append({"doc": doc, "replay": replay})
        return replays


def timings(replay: JSON) -> list[JSON]:
    return [t for step in replay["steps"] for t in step["timing"] if t is not None]


async def test_eight_matches_of_busy_bots_at_once_never_time_out(settings: Settings) -> None:
    results = await play(settings, MATCHES, burner(0.5))
    for result in results:
        assert [s["status"] for s in result["doc"]["seats"]] == ["DONE", "DONE"], result["doc"]
    moves = [t for result in results for t in timings(result["replay"])]
    assert len(moves) == MATCHES * 2 * (STEPS - 1)  # step 0 is the initial state
    assert all(t["wait_s"] is not None and t["wait_s"] >= 0 for t in moves)
    # More seats thought than there are cores: turns waited, and none of it was charged.
    assert sum(t["wait_s"] > 0.1 for t in moves) >= MATCHES
    assert all(t["wall_s"] < 1.0 for t in moves)


async def test_one_such_match_alone_finishes_without_waiting(settings: Settings) -> None:
    [result] = await play(settings, 1, burner(0.5))
    assert [s["status"] for s in result["doc"]["seats"]] == ["DONE", "DONE"], result["doc"]
    assert all(t["wait_s"] == 0 for t in timings(result["replay"]))


async def test_a_bot_that_spins_past_its_deadline_still_times_out(settings: Settings) -> None:
    [result] = await play(settings, 1, burner(3.0))
    seats = result["doc"]["seats"]
    assert [s["status"] for s in seats] == ["TIMEOUT", "TIMEOUT"], seats
    assert "no move within" in (seats[0]["reason"] or ""), seats


async def test_a_user_with_many_slow_matches_does_not_hold_back_another_users_match(settings: Settings) -> None:
    """One thinking seat at a time: alice's six matches are all under way when bob starts his.
    Turns are shared round robin between users, so bob's match moves at every other turn and
    ends first; first come, first served would have it wait a round of all fourteen seats at
    each move and end last."""
    config = {"episodeSteps": 12, "actTimeout": 1, "remainingOverageTime": 0}
    code = burner(0.02)
    async with api_client(replace(settings, thinking_seats=1)) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = [(await submit_agent(client, alice, f"a{i}", "rps", code))["id"] for i in range(2)]
        b = [(await submit_agent(client, bob, f"b{i}", "rps", code))["id"] for i in range(2)]
        floods = [await start_match(client, alice, "rps", a, config) for _ in range(6)]

        async def flood_under_way() -> bool:
            docs = [(await client.get(f"/api/matches/{m['id']}")).json() for m in floods]
            return all(doc["steps"] >= 1 for doc in docs)

        with anyio.fail_after(60):
            while True:  # polled over HTTP: nothing to wait on
                if await flood_under_way():
                    break
                await anyio.sleep(0.05)
        mine = await start_match(client, bob, "rps", b, config)
        bobs = await wait_finished(client, mine["id"], timeout_s=120)
        alices = [await wait_finished(client, m["id"], timeout_s=120) for m in floods]
    assert [s["status"] for s in bobs["seats"]] == ["DONE", "DONE"], bobs
    assert all(doc["status"] == "finished" for doc in alices), alices
    assert bobs["finished_at"] < min(doc["finished_at"] for doc in alices), (bobs, alices)
