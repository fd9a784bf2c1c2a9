"""Fuzzing ``POST /api/matches`` configs on a real server (issue 10): any JSON value for any key,
known or not, for every game, never gets a 5xx, never stops the server and never stores a
config the runner cannot run.

Hypothesis drives a blocking HTTP client while the server runs in a portal thread (its
``@given`` functions are synchronous). Every match the server accepts is checked as stored
(every number finite and within its range) and then played: each must end ``finished``, by the
rules or by its seats' own faults (a 1 ms ``agentTimeout`` is a TIMEOUT, not a crash). At the end
another user's match, started before, has finished normally and health is ``ok`` with no
match aborted by the server's own fault.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.matches.games import GAMES
from tests.server.conftest import RPS_CYCLE, TICTACTOE_FIRST_FREE, quiet_settings, running_server

JSON = Any
CONNECTX_FIRST_FREE = """
def agent(observation, configuration):
    return [c for c in range(configuration.columns) if observation.board[c] == 0][0]
"""
BOTS = {"tictactoe": TICTACTOE_FIRST_FREE, "connectx": CONNECTX_FIRST_FREE, "rps": RPS_CYCLE}
IN_FLIGHT = 12  # accepted matches left running before the fuzz waits for the oldest

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
           | st.text(max_size=12) | st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e400", "-0", " 3 ", "1_000",
                                                      "0x10", "2.5", "1e-400", "9" * 30]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=8)


def near_range(low: float, high: float, is_int: bool) -> st.SearchStrategy[JSON]:
    """Values in and around a range, so that many requests are accepted and played."""
    if is_int:
        return st.integers(int(low) - 3, int(high) + 3)
    return st.floats(low - 1, high + 1) | st.floats(low, min(high, low + 0.5))


def config_for(game: str) -> st.SearchStrategy[JSON]:
    cls = GAMES[game]
    defaults, ranges = cls.config_defaults(), cls.ranges()
    known = st.sampled_from(sorted(defaults))
    near = known.flatmap(lambda key: st.tuples(st.just(key), near_range(
        ranges[key].low, ranges[key].high, isinstance(defaults[key], int))))
    entries = st.one_of(
        near, near, near, near,  # mostly values in and around the ranges: many matches are played
        known.flatmap(lambda key: st.tuples(st.just(key), json_values)),
        st.tuples(st.text(max_size=12), json_values),  # unknown keys (or known ones by chance)
    )
    as_dict = st.lists(entries, max_size=3).map(dict)
    return st.one_of(as_dict, as_dict, as_dict, json_values)  # now and then not an object at all


def check_stored(match: JSON) -> None:
    """Every number of an accepted match's config is finite and within its range."""
    cls = GAMES[match["game"]]
    defaults, ranges = cls.config_defaults(), cls.ranges()
    assert set(match["config"]) == set(defaults)
    for key, value in match["config"].items():
        assert type(value) is type(defaults[key]), (key, value)
        assert math.isfinite(value) and value in ranges[key], (key, value)


def test_fuzz_match_configs(tmp_path: Path) -> None:
    # Room for every request: the fuzz is about configs, not the per-user limits.
    server_settings = quiet_settings(tmp_path, matches_per_user_hour=1_000_000, concurrent_matches_per_user=10_000,
                                     live_seats_per_address=100_000)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_server(server_settings)) as url,
        httpx.Client(base_url=url, timeout=30, trust_env=False) as client,
    ):
        tokens = {}
        for name in ("bob", "mallory"):
            created = client.post("/api/users", json={"name": name})
            assert created.status_code == 201, created.text
            tokens[name] = {"Authorization": f"Bearer {created.json()['token']}"}
        pairs = {}
        for game, code in BOTS.items():
            ids = []
            for suffix in ("a", "b"):
                agent = client.post("/api/agents", json={"name": f"{game}_{suffix}", "game": game, "code": code},
                                    headers=tokens["mallory"])
                assert agent.status_code == 201, agent.text
                ids.append(agent.json()["id"])
            pairs[game] = ids
        assert set(pairs) == set(GAMES), "a bot for every game"
        before = client.post("/api/matches", json={"game": "rps", "agents": pairs["rps"], "config": {
            "episodeSteps": 500}}, headers=tokens["bob"])
        assert before.status_code == 201, before.text

        accepted: list[int] = []
        finished: list[JSON] = []

        def wait_finished(match_id: int) -> JSON:
            for _ in range(6000):
                doc = client.get(f"/api/matches/{match_id}").json()
                if doc["status"] in ("finished", "aborted"):
                    return doc
                portal.call(anyio.sleep, 0.01)
            raise AssertionError(f"match {match_id} did not end")

        @settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(game=st.sampled_from(sorted(pairs)), data=st.data())
        def post_config(game: str, data: st.DataObject) -> None:
            config = data.draw(config_for(game), label="config")
            # Python's encoder, which writes NaN and Infinity as such: not JSON, and the server must say so.
            body = json.dumps({"game": game, "agents": pairs[game], "config": config}, allow_nan=True)
            response = client.post("/api/matches", content=body.encode(),
                                   headers={**tokens["mallory"], "Content-Type": "application/json"})
            assert response.status_code < 500, (config, response.text)
            if response.status_code != 201:
                assert response.status_code in (400, 422), (config, response.text)
                error = response.json()["error"]
                assert error["code"] and error["message"]
                return
            match = response.json()
            check_stored(match)
            accepted.append(match["id"])
            if len(accepted) - len(finished) >= IN_FLIGHT:
                finished.append(wait_finished(accepted[len(finished)]))

        post_config()
        finished += [wait_finished(match_id) for match_id in accepted[len(finished):]]
        assert len(finished) >= 20, "the fuzz should also produce matches that are played"
        for doc in finished:
            assert doc["status"] == "finished", doc  # by the rules or the seats' own faults, never a crash
            assert all(seat["status"] in ("DONE", "TIMEOUT", "ERROR", "INVALID") for seat in doc["seats"]), doc
        assert wait_finished(before.json()["id"])["status"] == "finished"
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert health.json()["components"]["matches"]["internal_errors"] == 0
