"""The ladder rates at full speed and shows at watching speed, on a real server.

Rated matches run unpaced in ``ladder_slots`` (default: the CPUs here); a few featured ones are
paced. New agents play their first rated match within seconds; no game holds every slot; the
lobby's data (``GET /api/ladder``) says what the ladder does.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx

from server.bots import example_bots
from server.config import Settings
from server.ladder.scheduler import ladder_slots
from tests.server.conftest import api_client, create_user, quiet_settings, submit_agent, wait_finished
from tests.server.ladder_client import all_matches

JSON = Any
EXAMPLES = {name: code for bots in example_bots().values() for name, code in bots}
# Three authors' ConnectX bots, each its own code.
NEW_BOTS = {
    "leftmost": "def agent(obs, config):\n    return [c for c in range(config.columns) if obs.board[c] == 0][0]\n",
    "rightmost": "def agent(obs, config):\n    return [c for c in range(config.columns) if obs.board[c] == 0][-1]\n",
    "middling": EXAMPLES["connectx_random"] + "\n# a third author's copy\n",
}


async def rated_matches_of(client: httpx.AsyncClient, agent_id: int) -> list[JSON]:
    return [m for m in await all_matches(client, agent=agent_id) if m["rated"] and m["status"] != "aborted"]


async def test_new_agents_play_rated_matches_within_seconds_on_default_settings(tmp_path: Path) -> None:
    """On the defaults (examples seeded, the ladder on): three new ConnectX agents, submitted one
    after another, each start a rated match within 10 s and have 10 within 150 s, while
    tic-tac-toe and rock-paper-scissors go on."""
    settings = Settings(db=tmp_path / "arena.db", port=0)
    async with api_client(settings) as client:
        author = await create_user(client, "author")
        submitted: dict[int, float] = {}
        for name, code in NEW_BOTS.items():
            agent = await submit_agent(client, author, name, "connectx", code)
            submitted[agent["id"]] = time.time()
            await anyio.sleep(1.0)  # one after another, as authors do
        with anyio.fail_after(150):
            while True:
                counts = {a: await rated_matches_of(client, a) for a in submitted}
                if all(len([m for m in matches if m["status"] == "finished"]) >= 10 for matches in counts.values()):
                    break
                await anyio.sleep(0.5)
        for agent_id, matches in counts.items():
            first = min(m["started_at"] for m in matches if m["started_at"] is not None)
            assert first - submitted[agent_id] <= 10.0, (agent_id, first - submitted[agent_id])
        since = min(submitted.values())
        for game in ("tictactoe", "rps"):  # started meanwhile: a long rps match may still be live
            played = [m for m in await all_matches(client) if m["game"] == game and m["rated"]
                      and m["status"] != "aborted" and m["started_at"] is not None and m["started_at"] >= since]
            assert played, f"no {game} ladder match started meanwhile"
        ladder = (await client.get("/api/ladder")).json()
        assert ladder["running"] and ladder["slots"]["rated"] == ladder_slots(settings) >= 1
        assert ladder["slots"]["featured"] == settings.ladder_featured
        assert ladder["matches_last_hour"] >= 20
        health = (await client.get("/api/health")).json()
        assert health["status"] == "ok", health


def step_gaps(replay: JSON) -> list[float]:
    times = [step["time"] for step in replay["steps"]]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_featured_matches_are_paced_and_rated_ones_are_not(tmp_path: Path) -> None:
    pace_s = 0.15
    settings = replace(quiet_settings(tmp_path), ladder=True, seed_examples=True, ladder_slots=1,
                       ladder_featured=1, ladder_pace_s=pace_s)
    async with api_client(settings) as client:
        with anyio.fail_after(60):
            while True:
                finished = [m for m in await all_matches(client, status="finished") if m["rated"]
                            and m["game"] in ("connectx", "tictactoe") and m["steps"] >= 5]
                featured = [m for m in finished if m["tags"].get("featured")]
                rated = [m for m in finished if not m["tags"].get("featured")]
                if featured and rated:
                    break
                await anyio.sleep(0.2)
        paced = step_gaps((await client.get(f"/api/matches/{featured[0]['id']}/replay")).json())
        unpaced = step_gaps((await client.get(f"/api/matches/{rated[0]['id']}/replay")).json())
    # A featured match keeps its pace on a fixed schedule: a step its bots were slow to answer is
    # followed by a shorter gap (the schedule does not drift), so the gaps hold the pace on the
    # whole, and most of them one by one.
    assert statistics.fmean(paced[1:]) >= pace_s * 0.9, paced
    assert statistics.median(paced[1:]) >= pace_s * 0.9, paced
    # A rated one runs as fast as its bots: most of its gaps are a fraction of the pace.
    assert statistics.median(unpaced) < pace_s / 3, unpaced


SLOW_RPS = """
import time

def agent(observation, configuration):
    time.sleep(0.05)
    return observation.step % configuration.signs
"""


async def test_no_game_holds_every_slot(tmp_path: Path) -> None:
    """Rock-paper-scissors bots that take 50 ms a move make matches of about 100 s. Alone on the
    ladder they take both rated slots; once tic-tac-toe and ConnectX agents arrive, those games
    play at once anyway (each game with agents to pair has a match running, beyond the slots if
    need be), and a slot freed goes to the game with the fewest live matches."""
    settings = replace(quiet_settings(tmp_path), ladder=True, ladder_slots=2, ladder_featured=0)
    async with api_client(settings) as client:
        owner = await create_user(client, "owner")
        for i in range(4):
            await submit_agent(client, owner, f"slow_{i}", "rps", SLOW_RPS)
        with anyio.fail_after(20):
            while True:
                ladder = (await client.get("/api/ladder")).json()
                if ladder["live"]["rated"] == 2:
                    break
                await anyio.sleep(0.05)
        assert {g["game"]: g["live_rated"] for g in ladder["games"]}["rps"] == 2  # alone, it uses every slot
        for name in ("connectx_greedy", "connectx_random"):
            await submit_agent(client, owner, name, "connectx", EXAMPLES[name])
        for name in ("tictactoe_minimax", "tictactoe_random"):
            await submit_agent(client, owner, name, "tictactoe", EXAMPLES[name])
        with anyio.fail_after(60):
            while True:
                ladder = (await client.get("/api/ladder")).json()
                games = {g["game"]: g for g in ladder["games"]}
                assert games["rps"]["live_rated"] <= 2 and ladder["live"]["rated"] <= 2 + 2, ladder
                if games["connectx"]["matches_last_hour"] >= 5 and games["tictactoe"]["matches_last_hour"] >= 5:
                    break
                await anyio.sleep(0.05)
        assert games["rps"]["matches_last_hour"] == 0  # its long matches still run: they blocked nothing
        queue = games["rps"]["queue"]
        assert {e["name"] for e in queue} == {f"slow_{i}" for i in range(4)}
        assert sum(e["playing"] for e in queue) >= 2 and games["rps"]["live_rated"] == 2


async def test_the_ladder_says_where_an_agent_stands(tmp_path: Path) -> None:
    settings = replace(quiet_settings(tmp_path), ladder=True, seed_examples=True, ladder_slots=1, ladder_featured=0)
    async with api_client(settings) as client:
        owner = await create_user(client, "owner")
        agent = await submit_agent(client, owner, "mine", "tictactoe", EXAMPLES["tictactoe_random"] + "\n# mine\n")
        with anyio.fail_after(30):
            while True:
                place = (await client.get("/api/ladder", params={"agent": agent["id"]})).json()["agent"]
                if place is not None and place["version_matches"] >= 1:
                    break
                await anyio.sleep(0.1)
        assert place["agent_id"] == agent["id"] and place["game"] == "tictactoe" and place["version"] == 1
        assert 1 <= place["position"] <= place["queued"]
        # A disabled agent leaves the queue at once.
        await client.patch(f"/api/agents/{agent['id']}", json={"disabled": True}, headers=owner.headers)
        with anyio.fail_after(10):
            while True:  # the ladder reads its agents again when one changes
                if (await client.get("/api/ladder", params={"agent": agent["id"]})).json()["agent"] is None:
                    break
                await anyio.sleep(0.1)
        # Its last match ends; with the ladder off there is nothing to say.
        for match in await all_matches(client, agent=agent["id"]):
            await wait_finished(client, match["id"])
    off = replace(settings, ladder=False)
    async with api_client(off) as client:
        assert (await client.get("/api/ladder")).json() == {
            "running": False, "slots": None, "live": None, "matches_last_hour": 0, "games": [], "agent": None}
