"""Every config value has an operator-set range (issue 10, 2): on a real server, a value outside
it, not finite, a boolean or not a number where one is expected gets 422 naming the key and
the range, for every key of every game; nothing of it is stored or run; another user's match
started before finishes normally and health stays ok. ``GET /api/games`` states the ranges in
force and the seat limits they imply; the ladder plays the defaults; ``arena play`` refuses
the same values with one line and exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from server.matches.games import ConfigRanges
from server.sandbox.limits import seat_cpu_s
from tests.server.conftest import (
    RPS_CYCLE,
    RPS_SLOW,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

JSON = Any
ROOT = Path(__file__).resolve().parents[2]
CONNECTX_FIRST_FREE = """
def agent(observation, configuration):
    return [c for c in range(configuration.columns) if observation.board[c] == 0][0]
"""
BOTS = {"tictactoe": TICTACTOE_FIRST_FREE, "connectx": CONNECTX_FIRST_FREE, "rps": RPS_CYCLE}
# The operator's ranges for this server: narrower than the defaults, for one game and for all.
OPERATOR_RANGES = ConfigRanges.from_table({"runTimeout": [1, 1200], "connectx": {"rows": [4, 10]}})


def refused_values(low: float, high: float, default: JSON) -> list[JSON]:
    """Values a key with this range and default must refuse: just outside, not finite, not numbers."""
    step = 1 if isinstance(default, int) else max(abs(high) * 1e-3, 1e-3)
    values: list[JSON] = [high + step, low - step, 2**63, -(2**63), 1e300, -1e300, "NaN", "nan", "inf",
                          "-Infinity", "1e400", True, False, None, "", "seven", [low], {"value": low}]
    if isinstance(default, int):
        values += [float(low), str(float(high))]  # an integer key takes no fractions
    return values


async def pairs_by_game(client: httpx.AsyncClient, user: User) -> dict[str, list[int]]:
    pairs = {}
    for game, code in BOTS.items():
        first = await submit_agent(client, user, f"{game}_a", game, code)
        second = await submit_agent(client, user, f"{game}_b", game, code)
        pairs[game] = [first["id"], second["id"]]
    return pairs


async def test_every_key_of_every_game_refuses_what_is_outside_its_range(tmp_path: Path) -> None:
    # Each refused request counts against the user's matches per hour: room for all of them.
    settings = quiet_settings(tmp_path, config_ranges=OPERATOR_RANGES, matches_per_user_hour=10_000)
    async with api_client(settings) as client:
        bob = await create_user(client, "bob")
        rock = await submit_agent(client, bob, "slow", "rps", RPS_SLOW)
        cycle = await submit_agent(client, bob, "cycle", "rps", RPS_CYCLE)
        before = await start_match(client, bob, "rps", [rock["id"], cycle["id"]], {"episodeSteps": 200}, seed=1)

        mallory = await create_user(client, "mallory")
        pairs = await pairs_by_game(client, mallory)
        games = (await client.get("/api/games")).json()["items"]
        assert {g["name"] for g in games} >= set(BOTS)
        cases = []
        for game in games:
            if game["name"] not in pairs:
                continue
            assert set(game["config_ranges"]) == set(game["config"]), game["name"]  # every key has a range
            for key, (low, high) in game["config_ranges"].items():
                cases += [(game["name"], key, low, high, value)
                          for value in refused_values(low, high, game["config"][key])]
        assert len(cases) > 200

        async def refused(name: str, key: str, low: float, high: float, value: JSON) -> None:
            body = {"game": name, "agents": pairs[name], "config": {key: value}}
            response = await client.post("/api/matches", json=body, headers=mallory.headers)
            assert response.status_code == 422, (name, key, value, response.text)
            error = response.json()["error"]
            assert error["code"] == "config_out_of_range"
            assert error["field"] == f"config.{key}" and error["range"] == [low, high]
            assert f"config {key} must be" in error["message"], error
            assert f"{low:g}..{high:g}" in error["message"]

        for start in range(0, len(cases), 16):  # 16 requests at a time
            async with anyio.create_task_group() as tg:
                for case in cases[start:start + 16]:
                    tg.start_soon(refused, *case)
        # The values refused were never stored: the only match is the one started before.
        assert [m["id"] for m in (await client.get("/api/matches")).json()["items"]] == [before["id"]]

        # Not JSON at all (NaN is no JSON number) and unknown keys: 400, naming the known keys.
        raw = b'{"game": "rps", "agents": [%d, %d], "config": {"actTimeout": NaN}}' % tuple(pairs["rps"])
        response = await client.post("/api/matches", content=raw, headers=mallory.headers)
        assert response.status_code == 400, response.text
        response = await client.post("/api/matches", json={"game": "rps", "agents": pairs["rps"],
                                                           "config": {"actTimeOut": 1}}, headers=mallory.headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_config"
        assert "known keys: actTimeout, agentTimeout, episodeSteps" in response.json()["error"]["message"]

        # The operator's ranges are the ones in force, and values inside them play.
        connectx = next(g for g in games if g["name"] == "connectx")
        assert connectx["config_ranges"]["rows"] == [4, 10] and connectx["config_ranges"]["runTimeout"] == [1, 1200]
        inside = await start_match(client, mallory, "connectx", pairs["connectx"],
                                   {"rows": 10, "columns": 3, "inarow": 3, "runTimeout": 1200, "actTimeout": "0.5"})
        assert inside["config"]["rows"] == 10 and inside["config"]["actTimeout"] == 0.5
        assert (await wait_finished(client, inside["id"]))["status"] == "finished"

        finished = await wait_finished(client, before["id"])
        assert finished["status"] == "finished" and [s["status"] for s in finished["seats"]] == ["DONE", "DONE"]
        health = await client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_games_state_the_ranges_and_the_seat_limits_they_imply(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, config_ranges=OPERATOR_RANGES)
    async with api_client(settings) as client:
        games = (await client.get("/api/games")).json()["items"]
    for game in games:
        ranges, limits = game["config_ranges"], game["limits"]
        assert ranges["runTimeout"] == [1, 1200] and ranges["agentTimeout"] == [0.001, 60]
        assert ranges["episodeSteps"] == [2, 10_000]
        assert limits["cpu_s"] == settings.limits.cpu_s == seat_cpu_s(60, 1200, settings.limits.grace_s)
        # No seat that keeps its time controls reaches the CPU limit: it thinks at most for its
        # start-up plus the whole match.
        assert limits["cpu_s"] > ranges["agentTimeout"][1] + ranges["runTimeout"][1]
        assert limits["memory_mb"] == settings.limits.memory_mb and "runTimeout" in limits["cpu_rule"]


async def test_the_ladder_plays_the_defaults(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, ladder=True, seed_examples=True, ladder_slots=2,
                              config_ranges=OPERATOR_RANGES)
    async with api_client(settings) as client:
        games = {g["name"]: g["config"] for g in (await client.get("/api/games")).json()["items"]}
        with anyio.fail_after(30):
            while True:
                items = (await client.get("/api/matches")).json()["items"]
                scheduled = [m for m in items if m["tags"].get("scheduled")]
                if scheduled:
                    break
                await anyio.sleep(0.05)
        for match in scheduled:
            assert match["config"] == games[match["game"]]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("actTimeout=NaN", "config actTimeout must be a finite number in 0.001..60, got 'NaN'"),
        ("runTimeout=inf", "config runTimeout must be a finite number in 0.001..3600, got 'inf'"),
        ("episodeSteps=9223372036854775808", "config episodeSteps must be in 2..10000, got '9223372036854775808'"),
        ("remainingOverageTime=1e9", "config remainingOverageTime must be in 0..600, got '1e9'"),
        ("signs=true", "config signs must be an integer in 3..5, got 'true'"),
    ],
)
def test_arena_play_refuses_the_same_values(config: str, message: str) -> None:
    bot = ROOT / "server" / "bots" / "rps_random.py"
    done = subprocess.run([sys.executable, "-m", "client", "play", str(bot), str(bot), "--game", "rps",
                           "--config", config], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done
    assert done.stdout == "" and done.stderr == f"arena: error: {message}\n"
