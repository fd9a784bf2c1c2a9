"""Accounts and ownership against the real server: tokens, who may read code and logs, who may
act, submit, rename or disable, owner-only debug views and repro bundles, and token rotation
that closes open sockets at once."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.config import Settings
from server.http.auth import TOKEN_PREFIX, new_token
from tests.server.agent_client import action, first_free, open_agent, play, recv, register_remote, rps_cycle
from tests.server.conftest import (
    FAULTY,
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    api_client,
    create_user,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

pytestmark = pytest.mark.timeout(90)

JSON = Any

# Prints every move, slowly enough for a debug view to join mid-match.
RPS_CHATTY = """
from time import sleep

def agent(observation, configuration):
    sleep(0.01)
    print("chose rock at step", observation.step)
    return 0
"""


def error_of(response: httpx.Response, status: int, code: str | None = None) -> JSON:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def closed_with(ws: ClientConnection, timeout_s: float = 5) -> int | None:
    """Read a socket to its end; its close code."""
    with anyio.fail_after(timeout_s):
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
    return ws.close_code


def open_view(client: httpx.AsyncClient, match_id: int, seat: int, token: str | None) -> connect:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(ws_url(client, f"/ws/matches/{match_id}?seat={seat}"), additional_headers=headers, proxy=None,
                   open_timeout=10, max_size=None)


async def test_tokens_are_long_random_and_stored_hashed(settings: Settings) -> None:
    async with api_client(settings) as client:
        tokens = [(await create_user(client, f"user{i}")).token for i in range(3)]
        assert len(set(tokens)) == 3
        assert all(len(t) >= 43 for t in tokens)  # 32 random bytes, base64url: 256 bits
        assert all(t.startswith(TOKEN_PREFIX) and len(t) - len(TOKEN_PREFIX) >= 43 for t in tokens)
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {tokens[0]}"})
        assert me.status_code == 200 and me.json()["name"] == "user0"
        error_of(await client.get("/api/users/me"), 401, "unauthorized")
        error_of(await client.get("/api/users/me", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        error_of(await client.get("/api/users/me", headers={"Authorization": f"Basic {tokens[0]}"}), 401)
    with sqlite3.connect(settings.db) as db:
        stored = [row[0] for row in db.execute("SELECT token_hash FROM users")]
    assert len(stored) == 3 and not set(stored) & set(tokens)
    assert all(len(h) == 64 for h in stored)  # SHA-256, hex


def test_a_token_never_looks_like_a_command_line_option() -> None:
    """``arena login --token TOKEN`` must not read a token starting with '-' as an option."""
    assert not any(new_token().startswith("-") for _ in range(2000))


async def test_code_and_logs_are_the_owners_only(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        agent = await submit_agent(client, alice, "chatty", "rps", RPS_CHATTY)
        rock = await submit_agent(client, bob, "rock", "rps", RPS_ROCK)
        match = await start_match(client, bob, "rps", [agent["id"], rock["id"]], {"episodeSteps": 5})
        await wait_finished(client, match["id"])

        mine = (await client.get(f"/api/agents/{agent['id']}", headers=alice.headers)).json()
        assert mine["code"] == RPS_CHATTY
        for headers in (bob.headers, {}):
            doc = (await client.get(f"/api/agents/{agent['id']}", headers=headers)).json()
            assert "code" not in doc and doc["owner"] == "alice"
        listed = (await client.get("/api/agents", headers=alice.headers)).json()["items"]
        assert all("code" not in a for a in listed)

        url = f"/api/agents/{agent['id']}/logs?match={match['id']}"
        logs = await client.get(url, headers=alice.headers)
        assert logs.status_code == 200 and "chose rock at step" in logs.json()["log"]
        error_of(await client.get(url, headers=bob.headers), 403, "forbidden")
        error_of(await client.get(url), 401, "unauthorized")


async def test_nobody_submits_renames_or_disables_anothers_agent(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = await submit_agent(client, alice, "bot", "tictactoe", TICTACTOE_FIRST_FREE)
        # Names are per owner: Bob's "bot" is Bob's own agent; Alice's is untouched.
        b = await submit_agent(client, bob, "bot", "tictactoe", "def agent(obs, config):\n    return 8\n")
        assert b["id"] != a["id"] and b["owner"] == "bob" and b["version"] == 1
        again = (await client.get(f"/api/agents/{a['id']}", headers=alice.headers)).json()
        assert again["version"] == 1 and again["code"] == TICTACTOE_FIRST_FREE and again["owner"] == "alice"
        # Alice's resubmission is a new version of her own agent.
        a2 = await submit_agent(client, alice, "bot", "tictactoe", TICTACTOE_FIRST_FREE + "\n# v2\n")
        assert a2["id"] == a["id"] and a2["version"] == 2

        patch = f"/api/agents/{a['id']}"
        error_of(await client.patch(patch, json={"name": "mine-now"}, headers=bob.headers), 403, "forbidden")
        error_of(await client.patch(patch, json={"disabled": True}, headers=bob.headers), 403, "forbidden")
        error_of(await client.patch(patch, json={"disabled": True}), 401)
        renamed = await client.patch(patch, json={"name": "bot-renamed"}, headers=alice.headers)
        assert renamed.status_code == 200 and renamed.json()["name"] == "bot-renamed"
        await submit_agent(client, alice, "other", "tictactoe", TICTACTOE_FIRST_FREE)
        error_of(await client.patch(patch, json={"name": "other"}, headers=alice.headers), 409, "name_taken")
        error_of(await client.patch(patch, json={"name": "bad name!"}, headers=alice.headers), 400)

        disabled = await client.patch(patch, json={"disabled": True}, headers=alice.headers)
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        refused = await client.post("/api/matches", json={"game": "tictactoe", "agents": [a["id"], b["id"]]},
                                    headers=bob.headers)
        assert "disabled" in error_of(refused, 400)["message"]
        await client.patch(patch, json={"disabled": False}, headers=alice.headers)
        match = await start_match(client, bob, "tictactoe", [a["id"], b["id"]])
        assert (await wait_finished(client, match["id"]))["status"] == "finished"


async def test_b_cannot_act_for_as_seat(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = await register_remote(client, alice, "a-remote", "tictactoe")
        b = await register_remote(client, bob, "b-remote", "tictactoe")
        local = (await submit_agent(client, bob, "local", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        async with open_agent(client, alice) as ws_a, open_agent(client, bob) as ws_b:
            await recv(ws_a, "welcome")
            await recv(ws_b, "welcome")
            match = await start_match(client, bob, "tictactoe", [a, local])
            turn = await recv(ws_a, "turn")  # Alice's seat is asked; Bob tries to answer for it
            for frame in (
                action(turn, 4),
                json.dumps({"type": "action", "match_id": match["id"], "step": turn["step"], "action": 4}),
                json.dumps({"type": "agent_error", "match_id": match["id"], "step": turn["step"], "message": "x"}),
            ):
                await ws_b.send(frame)
                error = await recv(ws_b, "error")
                assert error["code"] == "not_your_seat" and error["match_id"] == match["id"]
            # Nor can Bob's connection claim Alice's agent.
            await ws_b.send(json.dumps({"type": "hello", "protocol_version": 1, "agents": [a]}))
            assert (await recv(ws_b, "error"))["code"] == "forbidden"
            await ws_a.send(action(turn, first_free(turn["observation"])))
            (end,) = await play(ws_a, first_free)
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert end["result"]["winner"] == 0
        assert b not in (s["agent_id"] for s in doc["seats"])
        # A connection that names someone else's agent up front is refused outright.
        async with open_agent(client) as ws:
            await ws.send(json.dumps({"type": "hello", "protocol_version": 1, "token": bob.token, "agents": [a]}))
            assert (await recv(ws, "error"))["code"] == "forbidden"
            assert await closed_with(ws) == 4403


async def test_spectator_sockets_cannot_send_actions(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        async with open_agent(client, alice) as ws_a:
            await recv(ws_a, "welcome")
            match = await start_match(client, alice, "rps", [remote, rock], {"episodeSteps": 3})
            turn = await recv(ws_a, "turn")
            async with connect(ws_url(client, f"/ws/matches/{match['id']}"), proxy=None) as spectator:
                assert json.loads(await spectator.recv())["type"] == "snapshot"
                await spectator.send(action(turn, 2))
                while (frame := json.loads(await spectator.recv()))["type"] != "error":
                    pass
                assert frame["code"] == "read_only"
            await ws_a.send(action(turn, 1))
            await play(ws_a, rps_cycle)
        steps = (await client.get(f"/api/matches/{match['id']}/replay")).json()["steps"]
        assert steps[1]["actions"][0] == 1  # the owner's move, not the spectator's


async def test_rotated_token_stops_http_and_sockets_at_once(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        chatty = (await submit_agent(client, alice, "chatty", "rps", RPS_CHATTY))["id"]
        async with open_agent(client, alice) as ws_agent:
            await recv(ws_agent, "welcome")
            match = await start_match(client, alice, "rps", [remote, chatty], {"episodeSteps": 500})
            await recv(ws_agent, "turn")  # a live match, its turn unanswered
            async with open_view(client, match["id"], 1, alice.token) as view:
                assert json.loads(await view.recv())["type"] == "snapshot"
                rotated = await client.post("/api/users/me/tokens/rotate", headers=alice.headers)
                assert rotated.status_code == 201, rotated.text
                new_token = rotated.json()["token"]
                assert new_token != alice.token and len(new_token) >= 43
                assert rotated.json()["closed_sockets"] == 2
                # Both open sockets get an error frame and close code 4401 right away.
                for ws in (ws_agent, view):
                    error = await recv(ws, "error", timeout_s=5)
                    assert error["code"] == "unauthorized"
                    assert await closed_with(ws) == 4401
        error_of(await client.get("/api/users/me", headers=alice.headers), 401, "unauthorized")
        error_of(await client.post("/api/agents", json={"name": "x", "game": "rps", "code": RPS_ROCK},
                                   headers=alice.headers), 401)
        async with open_agent(client, alice) as ws:
            assert (await recv(ws, "error"))["code"] == "unauthorized"
            assert await closed_with(ws) == 4401
        # The new token works, and resumes the match the old one was playing.
        async with open_agent(client, token=new_token) as ws:
            assert (await recv(ws, "welcome"))["user_id"] == alice.id
            assert (await recv(ws, "match_start"))["match_id"] == match["id"]
            await play(ws, rps_cycle)
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]


async def test_owner_debug_view_shows_logs_and_timing_to_the_owner_only(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        chatty = (await submit_agent(client, alice, "chatty", "rps", RPS_CHATTY))["id"]
        rock = (await submit_agent(client, bob, "rock", "rps", RPS_ROCK))["id"]
        match = await start_match(client, bob, "rps", [rock, chatty], {"episodeSteps": 40})
        frames: list[JSON] = []
        async with open_view(client, match["id"], 1, alice.token) as view:
            with anyio.fail_after(30):
                async for message in view:
                    frames.append(json.loads(message))
            assert view.close_code == 1000
        types = [f["type"] for f in frames]
        assert types[0] == "snapshot" and types[-1] == "end" and "seat_debug" in types
        debug = [f for f in frames if f["type"] == "seat_debug"]
        assert all(f["seat"] == 1 for f in debug)
        log = "".join(f["log"] for f in debug)
        assert log.count("chose rock at step") == 39  # every line, live (through the snapshot's history)
        timed = [f for f in debug if f["timing"] is not None]
        assert len(timed) == 39 and all(f["timing"]["cpu_s"] is not None and f["timing"]["bank_s"] > 0 for f in timed)
        # Public frames keep their gapless seq; a debug frame carries the seq of the event before it.
        public = [f for f in frames[1:] if f["type"] != "seat_debug"]
        first = frames[0]["seq"]
        assert [f["seq"] for f in public] == list(range(first + 1, first + 1 + len(public)))

        # Anyone else: an error frame and 4403 (4401 without a valid token), no log.
        for token, code in ((bob.token, 4403), (None, 4401), ("wrong", 4401)):
            async with open_view(client, match["id"], 1, token) as view:
                error = json.loads(await view.recv())
                assert error["type"] == "error" and "chose rock" not in error["message"]
                assert await closed_with(view) == code
        async with open_view(client, match["id"], 7, alice.token) as view:
            assert json.loads(await view.recv())["type"] == "error"
            assert await closed_with(view) == 4400
        # The finished match: the whole stored log, once.
        async with open_view(client, match["id"], 1, alice.token) as view:
            stored = [json.loads(m) async for m in view]
        assert [f["type"] for f in stored] == ["snapshot", "seat_debug", "end"]
        assert stored[1]["log"].count("chose rock at step") == 39


async def test_repro_bundle_is_the_owners_only(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        faulty = (await submit_agent(client, alice, "faulty", "tictactoe", FAULTY))["id"]
        first = (await submit_agent(client, bob, "first", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        match = await start_match(client, bob, "tictactoe", [first, faulty], seed=5)
        await wait_finished(client, match["id"])
        url = f"/api/matches/{match['id']}/repro?seat=1"
        bundle = (await client.get(url, headers=alice.headers)).json()
        assert bundle["status"] == "ERROR" and "boom at step 1" in bundle["reason"]
        assert bundle["failing_step"] == 2 and bundle["phase"] == "move" and bundle["seed"] == 5
        assert bundle["observation"]["board"] == [1, 0, 0, 0, 0, 0, 0, 0, 0]
        assert bundle["observation"]["mark"] == 2
        assert bundle["moves"][0] == {"step": 1, "actions": [0, None]}
        assert bundle["limit"]["name"] == "exception"
        error_of(await client.get(url, headers=bob.headers), 403, "forbidden")
        error_of(await client.get(url), 401)
        error_of(await client.get(f"/api/matches/{match['id']}/repro?seat=0", headers=bob.headers), 400, "not_failed")
        error_of(await client.get(f"/api/matches/{match['id']}/repro?seat=5", headers=alice.headers), 400)
        error_of(await client.get("/api/matches/9999/repro?seat=0", headers=alice.headers), 404)
