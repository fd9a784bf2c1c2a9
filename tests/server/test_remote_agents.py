"""Remote agents on ``/ws/agent`` against the real server: play, multiplex, resume, time out,
the network allowance, and bad input that must never hurt a match on another connection."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.config import Settings
from server.matches.replay import verify_replay
from tests.server.agent_client import (
    action,
    first_free,
    hello,
    open_agent,
    play,
    recv,
    register_remote,
    rps_cycle,
)
from tests.server.conftest import (
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    start_match,
    submit_agent,
    wait_finished,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.both_backends]

JSON = Any


async def replay(client: httpx.AsyncClient, match_id: int) -> JSON:
    response = await client.get(f"/api/matches/{match_id}/replay")
    assert response.status_code == 200, response.text
    return response.json()


async def seat_log(client: httpx.AsyncClient, user: User, agent_id: int, match_id: int) -> str:
    response = await client.get(f"/api/agents/{agent_id}/logs?match={match_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    log: str = response.json()["log"]
    return log


# -- playing ----------------------------------------------------------------------------------------


async def test_two_remote_agents_play_each_other(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = await register_remote(client, alice, "alice-remote", "tictactoe")
        b = await register_remote(client, bob, "bob-remote", "tictactoe")
        # Alice authenticates with the header, Bob with a first hello frame.
        async with open_agent(client, alice) as ws_a, open_agent(client) as ws_b:
            welcome_a = await recv(ws_a, "welcome")
            assert welcome_a == {"type": "welcome", "user_id": alice.id, "agents": [a], "protocol_version": 1}
            welcome_b = await hello(ws_b, token=bob.token)
            assert welcome_b["user_id"] == bob.id and welcome_b["agents"] == [b]
            match = await start_match(client, bob, "tictactoe", [a, b], seed=3)
            async with anyio.create_task_group() as tg:
                results: dict[str, list[JSON]] = {}

                async def run(name: str, ws: Any) -> None:
                    results[name] = await play(ws, first_free)

                tg.start_soon(run, "a", ws_a)
                tg.start_soon(run, "b", ws_b)
            doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert [s["reward"] for s in doc["seats"]] == [1.0, -1.0]  # first-free: the first mover wins
        for name, seat in (("a", 0), ("b", 1)):
            (end,) = results[name]
            assert end["match_id"] == match["id"] and end["seat"] == seat
            assert end["result"]["winner"] == 0
        rep = await replay(client, match["id"])
        assert verify_replay(rep).ok
        timings = [t for step in rep["steps"] for t in step["timing"] if t is not None]
        assert timings and all(t["allowance_s"] is not None and t["cpu_s"] is None for t in timings)
        assert all(0 <= t["allowance_s"] <= settings.remote_allowance_cap_s for t in timings)


async def test_remote_agent_plays_a_sandboxed_one(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "tictactoe")
        local = (await submit_agent(client, alice, "local", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            match = await start_match(client, alice, "tictactoe", [local, remote], seed=1)
            start = await recv(ws, "match_start")
            assert start == {
                "type": "match_start", "match_id": match["id"], "agent_id": remote, "game": "tictactoe", "seat": 1,
                "configuration": match["config"], "seed": 1,
            }
            (end,) = await play(ws, lambda obs: len(obs["board"]) - 1 - obs["board"][::-1].index(0))
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert end["result"]["seats"] == [
            {"status": s["status"], "reward": s["reward"], "reason": s["reason"]} for s in doc["seats"]
        ]
        rep = await replay(client, match["id"])
        sandboxed = [step["timing"][0] for step in rep["steps"] if step["timing"] and step["timing"][0]]
        remote_t = [step["timing"][1] for step in rep["steps"] if step["timing"] and step["timing"][1]]
        assert all(t["allowance_s"] is None and t["cpu_s"] is not None for t in sandboxed)
        assert all(t["allowance_s"] is not None for t in remote_t)


async def test_one_connection_plays_ten_matches_at_once(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            matches = [await start_match(client, alice, "rps", [remote, rock], {"episodeSteps": 30}) for _ in range(10)]
            # Every match starts before any ends: they run side by side on this one connection.
            started: set[int] = set()
            pending: list[JSON] = []
            with anyio.fail_after(30):
                while len(started) < 10:
                    frame = await recv(ws, "match_start", "turn", "match_end")
                    assert frame["type"] != "match_end"
                    if frame["type"] == "match_start":
                        started.add(frame["match_id"])
                    else:
                        pending.append(frame)
            for turn in pending:
                await ws.send(action(turn, rps_cycle(turn["observation"])))
            ends = await play(ws, rps_cycle, matches=10)
        assert {e["match_id"] for e in ends} == {m["id"] for m in matches} == started
        for m in matches:
            doc = await wait_finished(client, m["id"])
            assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
            assert doc["steps"] == 30  # Kaggle counts the initial state among the episodeSteps


async def test_dropped_connection_reconnects_and_finishes_the_match(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            match = await start_match(client, alice, "rps", [remote, rock], {"episodeSteps": 20})
            for _ in range(5):
                turn = await recv(ws, "turn")
                await ws.send(action(turn, rps_cycle(turn["observation"])))
            pending = await recv(ws, "turn")  # asked, never answered on this connection
            ws.transport.abort()  # the network fails: no close frame
        dropped_at = time.monotonic()
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            start = await recv(ws, "match_start")  # the match again, then the pending turn
            assert start["match_id"] == match["id"] and start["seat"] == 0
            turn = await recv(ws, "turn")
            assert turn["step"] == pending["step"] and turn["observation"] == pending["observation"]
            assert turn["deadline"] < pending["deadline"]  # its clock ran on meanwhile
            assert time.monotonic() - dropped_at < 5
            await ws.send(action(turn, rps_cycle(turn["observation"])))
            (end,) = await play(ws, rps_cycle)
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"] and doc["steps"] == 20
        assert end["result"]["status"] == "finished"
        log = await seat_log(client, alice, remote, match["id"])
        assert "connection lost at step 6" in log and "resumed on a new connection at step 6" in log


async def test_remote_agent_that_stops_answering_times_out(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        config = {"episodeSteps": 50, "actTimeout": 0.2, "remainingOverageTime": 0.3}
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            match = await start_match(client, alice, "rps", [remote, rock], config)
            for _ in range(3):
                turn = await recv(ws, "turn")
                await ws.send(action(turn, 1))
            silent = await recv(ws, "turn")  # no answer from now on
            asked = time.monotonic()
            end = await recv(ws, "match_end", timeout_s=10)
            waited = time.monotonic() - asked
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["TIMEOUT", "DONE"]
        assert [s["reward"] for s in doc["seats"]] == [-1.0, 1.0]
        reason = doc["seats"][0]["reason"]
        assert "no move within" in reason and f"at step {silent['step']}" in reason
        assert end["result"]["seats"][0]["status"] == "TIMEOUT"
        # actTimeout + the whole bank (+ at most the network allowance), like a sandboxed seat.
        assert 0.45 < waited < 0.5 + settings.remote_allowance_cap_s + 0.5
        rep = await replay(client, match["id"])
        last = rep["steps"][-1]
        assert last["step"] == silent["step"] and last["timing"][0]["bank_s"] == 0.0
        assert "[arena] no move within" in await seat_log(client, alice, remote, match["id"])


async def test_remote_agent_never_connected_times_out_at_start(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        match = await start_match(client, alice, "rps", [remote, rock], {"agentTimeout": 0.5})
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["TIMEOUT", "DONE"]
        assert "agentTimeout" in doc["seats"][0]["reason"]
        assert "waiting for a connection" in await seat_log(client, alice, remote, match["id"])


# -- the network allowance --------------------------------------------------------------------------


async def test_allowance_is_measured_by_the_server_capped_and_not_charged(tmp_path: Any) -> None:
    settings = replace(_fast_pings(tmp_path), remote_allowance_cap_s=0.25)
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")

            # A client claiming lag: it holds every pong back by a second.
            async def late_pongs() -> None:
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "ping":
                        async def pong_later(nonce: str) -> None:
                            await anyio.sleep(1.0)
                            await ws.send(json.dumps({"type": "pong", "nonce": nonce}))

                        tg.start_soon(pong_later, frame["nonce"])
                    elif frame["type"] == "turn":
                        turns.append(frame)
                        turn_seen.set()
                    elif frame["type"] == "match_end":
                        ends.append(frame)
                        turn_seen.set()

            turns: list[JSON] = []
            ends: list[JSON] = []
            turn_seen = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(late_pongs)
                await anyio.sleep(1.5)  # the server has measured ~1 s round trips by now
                config = {"episodeSteps": 4, "actTimeout": 0.2, "remainingOverageTime": 0.05}
                match = await start_match(client, alice, "rps", [remote, rock], config)
                answered = 0
                with anyio.fail_after(20):
                    while not ends:
                        await turn_seen.wait()
                        turn_seen = anyio.Event()
                        while answered < len(turns):
                            turn = turns[answered]
                            answered += 1
                            # 0.35 s: over actTimeout + bank (0.25 s), within it + the 0.25 s allowance.
                            # The last move takes 0.6 s: the allowance is capped, so that is late.
                            await anyio.sleep(0.6 if turn["step"] == 3 else 0.35)
                            await ws.send(action(turn, 0))
                tg.cancel_scope.cancel()
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["TIMEOUT", "DONE"]
        steps = (await replay(client, match["id"]))["steps"]
        moves = [s["timing"][0] for s in steps[1:]]
        assert [t["allowance_s"] for t in moves] == [0.25, 0.25, 0.25]  # the cap, not the claimed second
        assert moves[0]["wall_s"] > 0.35 and moves[0]["bank_s"] == 0.05  # late, yet the bank is untouched
        assert moves[1]["bank_s"] == 0.05
        assert moves[2]["bank_s"] == 0.0 and steps[-1]["statuses"][0] == "TIMEOUT"


def _fast_pings(tmp_path: Any) -> Settings:
    from tests.server.conftest import quiet_settings

    return quiet_settings(tmp_path, remote_ping_interval_s=0.2)


# -- bad input --------------------------------------------------------------------------------------


async def test_bad_frames_get_error_frames_and_never_hurt_another_match(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, mallory = await create_user(client, "alice"), await create_user(client, "mallory")
        victim = await register_remote(client, alice, "victim", "rps")
        own = await register_remote(client, mallory, "own", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        async with open_agent(client, alice) as ws_a, open_agent(client, mallory) as ws_m:
            await recv(ws_a, "welcome")
            await recv(ws_m, "welcome")
            victim_match = await start_match(client, alice, "rps", [victim, rock], {"episodeSteps": 300})
            victim_done = anyio.Event()
            victim_result: list[JSON] = []

            async def victim_plays() -> None:  # ~20 ms a move: the match runs through all of the abuse below
                victim_result.extend(await play(ws_a, rps_cycle, delay_s=0.02))
                victim_done.set()

            async def expect_error(payload: str | bytes, code: str) -> JSON:
                await ws_m.send(payload)
                error = await recv(ws_m, "error")
                assert error["code"] == code, error
                assert error["message"]
                return error

            async with anyio.create_task_group() as tg:
                tg.start_soon(victim_plays)
                await expect_error("{not json", "bad_json")
                await expect_error(b"\xff\xfe", "bad_json")
                await expect_error("[1, 2]", "bad_message")
                await expect_error(json.dumps({"type": "resign"}), "unknown_type")
                await expect_error(json.dumps({"type": "action", "step": 1, "action": 0}), "missing_field")
                await expect_error(json.dumps({"type": "action", "match_id": "x", "step": 1, "action": 0}), "bad_field")
                for size in (1 << 20, (1 << 20) + 1, 4 << 20):
                    await expect_error("x" * size, "too_large")
                big_action = json.dumps({"type": "action", "match_id": victim_match["id"], "step": 1,
                                         "action": "y" * (1 << 20)})
                await expect_error(big_action, "too_large")
                # Someone else's live match: not theirs to act in, whatever the seat or step.
                error = await expect_error(
                    json.dumps({"type": "action", "match_id": victim_match["id"], "step": 1, "action": 0}),
                    "not_your_seat")
                assert error["match_id"] == victim_match["id"]
                await expect_error(json.dumps({"type": "action", "match_id": victim_match["id"], "step": 1,
                                               "action": 0, "seat": 0}), "not_your_seat")
                await expect_error(json.dumps({"type": "action", "match_id": 999999, "step": 1, "action": 0}),
                                   "unknown_match")
                await expect_error(json.dumps({"type": "pong", "nonce": "made-up"}), "unknown_nonce")

                # Its own match: wrong steps, then the right one, then the match is over.
                own_match = await start_match(client, mallory, "rps", [own, rock], {"episodeSteps": 2})
                turn = await recv(ws_m, "turn")
                for wrong in (turn["step"] + 1, turn["step"] - 1, 0):
                    await expect_error(json.dumps({"type": "action", "match_id": own_match["id"], "step": wrong,
                                                   "action": 0}), "wrong_step")
                await ws_m.send(action(turn, 0))
                await recv(ws_m, "match_end")
                await expect_error(action(turn, 0), "match_over")
                await wait_finished(client, own_match["id"])
                await expect_error(action({**turn, "step": 2}, 0), "match_over")

                # A flood: 1,000 frames within a second, beyond the 200-frame burst.
                flood_started = time.monotonic()
                for _ in range(1000):
                    await ws_m.send(json.dumps({"type": "pong", "nonce": "flood"}))
                assert time.monotonic() - flood_started < 1.0
                codes: dict[str, int] = {}
                with anyio.fail_after(20):
                    while sum(codes.values()) < 1000:
                        frame = await recv(ws_m, "error")
                        codes[frame["code"]] = codes.get(frame["code"], 0) + 1
                assert codes.get("rate_limited", 0) >= 500 and codes.get("unknown_nonce", 0) >= 150, codes
                await anyio.sleep(0.5)  # the bucket refills: the connection serves again
                await expect_error("{", "bad_json")

                assert not victim_done.is_set()  # the other match was live all along
                await victim_done.wait()
        doc = await wait_finished(client, victim_match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"] and doc["steps"] == 300
        moves = [step["timing"][0] for step in (await replay(client, victim_match["id"]))["steps"][1:]]
        assert max(t["wall_s"] for t in moves) < 0.5  # no move of the victim was held up
        assert victim_result[0]["result"]["status"] == "finished"


async def test_bad_hello_and_missing_token_close_the_socket(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        cases: list[tuple[str | None, str, str, int]] = [
            (None, json.dumps({"type": "hello", "protocol_version": 1, "token": "wrong"}), "unauthorized", 4401),
            (None, json.dumps({"type": "hello", "protocol_version": 1}), "unauthorized", 4401),
            (None, json.dumps({"type": "action", "match_id": 1, "step": 1, "action": 0}), "unauthorized", 4401),
            (None, "{nope", "bad_json", 4400),
            (None, json.dumps({"type": "hello", "protocol_version": 99, "token": alice.token}),
             "unsupported_version", 4400),
            ("wrong-token", "", "unauthorized", 4401),
        ]
        for header_token, first, code, close_code in cases:
            async with open_agent(client, token=header_token) as ws:
                if first:
                    await ws.send(first)
                error = await recv(ws, "error")
                assert error["code"] == code, (first, error)
                with anyio.fail_after(5):
                    try:
                        async for _ in ws:
                            pass
                    except ConnectionClosed:
                        pass
                assert ws.close_code == close_code, (first, ws.close_code)
