"""Small holes (issue 10, item 8), on a real server: ids beyond 64 bits anywhere, the order of the
submission limit, and the size of a ``hello`` frame.

An id that does not fit SQLite's 64-bit INTEGER used to overflow the driver (500, or a
spectator socket dropped without a close frame): in a path it is now 404, in a query 400,
in a body 404 (an unknown agent) or 400 (a seed), on a socket an ``error`` frame and a close
code. Each test also checks that another user's match, started before, finishes normally
and that ``GET /api/health`` stays ok.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.config import Settings
from server.http.agent_ws import MAX_HELLO_AGENTS
from tests.server.agent_client import hello, open_agent, recv, register_remote
from tests.server.bystander import check_bystander, start_bystander
from tests.server.conftest import RPS_ROCK, TICTACTOE_FIRST_FREE, api_client, create_user, submit_agent, ws_url

pytestmark = [pytest.mark.timeout(120), pytest.mark.both_backends]

JSON = Any
HUGE = ["9223372036854775808", "18446744073709551616", "99999999999999999999999", "9" * 5000]


def error_of(response: httpx.Response, status: int) -> JSON:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


async def closed_with(ws: ClientConnection) -> int | None:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def test_ids_beyond_64_bits_are_not_found_or_bad_requests(settings: Settings) -> None:
    async with api_client(settings) as client:
        carol = await start_bystander(client)
        alice = await create_user(client, "alice")
        agent = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        match = carol.match_id
        for huge in HUGE:
            # In a path: 404 with the JSON error, on every route that takes an id.
            for path in (f"/api/agents/{huge}", f"/api/agents/{huge}/logs?match={match}",
                         f"/api/matches/{huge}", f"/api/matches/{huge}/replay", f"/api/matches/{huge}/events",
                         f"/api/matches/{huge}/repro?seat=0"):
                error_of(await client.get(path, headers=alice.headers), 404)
            error_of(await client.patch(f"/api/agents/{huge}", json={"disabled": True}, headers=alice.headers), 404)
            error_of(await client.post(f"/api/matches/{huge}/abort", headers=alice.headers), 404)
            # In a query: 400, naming the parameter.
            for path, field in ((f"/api/matches?agent={huge}", "agent"), (f"/api/agents?user={huge}", "user"),
                                (f"/api/agents/{agent}/logs?match={huge}", "match"),
                                (f"/api/matches/{match}/repro?seat={huge}", "seat"),
                                (f"/api/matches?limit={huge}", "limit")):
                assert error_of(await client.get(path, headers=alice.headers), 400).get("field") == field, path
            for path in (f"/api/matches?cursor={huge}", f"/api/agents?cursor={huge}"):
                error_of(await client.get(path), 400)
        # Ids that fit but name nothing, or are negative, are still plain answers.
        assert (await client.get("/api/matches", params={"agent": -1})).json()["items"] == []
        error_of(await client.get("/api/agents/9223372036854775807"), 404)
        error_of(await client.get("/api/matches/0"), 404)
        # In a body: an unknown agent (404), a seed out of range (400).
        body: dict[str, JSON] = {"game": "rps", "agents": [agent, int(HUGE[0])]}
        error_of(await client.post("/api/matches", json=body, headers=alice.headers), 404)
        for seed in (2**63, 2**64 - 1, -(2**63) - 1):
            body = {"game": "rps", "agents": [agent, agent], "seed": seed}
            assert error_of(await client.post("/api/matches", json=body, headers=alice.headers), 400)["field"] == "seed"

        # A spectator socket of a huge id: an error frame, then close code 4404 (not a dropped socket).
        for huge in HUGE[:3]:
            for query in ("", "?seat=0"):
                async with connect(ws_url(client, f"/ws/matches/{huge}{query}"), proxy=None, open_timeout=10,
                                   additional_headers=alice.headers) as ws:
                    frame = json.loads(await ws.recv())
                    assert frame["type"] == "error" and frame["code"] == "not_found", frame
                    assert await closed_with(ws) == 4404
        # A remote agent's frames naming huge ids: error frames, and the connection goes on.
        remote = await register_remote(client, alice, "far", "rps")
        async with open_agent(client, alice) as ws:
            await recv(ws, "welcome")
            await ws.send(json.dumps({"type": "action", "match_id": int(HUGE[0]), "step": 1, "action": 0}))
            assert (await recv(ws, "error"))["code"] == "unknown_match"
            refused = await recv_after_hello(ws, [int(HUGE[0])])  # fits JSON's u64, not a row id
            assert refused["code"] == "forbidden"
            assert (await recv_after_hello(ws, [int(HUGE[2])]))["code"] == "bad_field"  # not an integer in JSON
            assert (await hello(ws, agents=[remote]))["agents"] == [remote]
        await check_bystander(client, carol)


async def recv_after_hello(ws: ClientConnection, agents: list[int]) -> JSON:
    await ws.send(json.dumps({"type": "hello", "protocol_version": 1, "agents": agents}))
    return await recv(ws, "error")


async def test_a_hello_frame_names_a_bounded_number_of_agents(settings: Settings) -> None:
    async with api_client(settings) as client:
        carol = await start_bystander(client)
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "far", "rps")
        many = list(range(1, 120_001))
        # As the first frame: refused at once, without a lookup: error frame, close code 4400.
        async with open_agent(client) as ws:
            await ws.send(json.dumps({"type": "hello", "protocol_version": 1, "token": alice.token, "agents": many}))
            error = await recv(ws, "error")
            assert error["code"] == "too_many_agents" and str(MAX_HELLO_AGENTS) in error["message"]
            assert await closed_with(ws) == 4400
        # Later on a connection: an error frame, and the connection plays on as before.
        async with open_agent(client, alice) as ws:
            assert (await recv(ws, "welcome"))["agents"] == [remote]
            error = await recv_after_hello(ws, [remote] * (MAX_HELLO_AGENTS + 1))
            assert error["code"] == "too_many_agents"
            # At the bound it is one lookup; someone else's or unknown ids are refused as before.
            other = await create_user(client, "bob")
            theirs = (await submit_agent(client, other, "tic", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
            assert (await recv_after_hello(ws, [remote, theirs]))["code"] == "forbidden"
            welcome = await hello(ws, agents=[remote] * MAX_HELLO_AGENTS)
            assert welcome["agents"] == [remote]
        await check_bystander(client, carol)


async def test_the_submission_limit_is_checked_before_the_validator(settings: Settings) -> None:
    limited = replace(settings, submissions_per_user_hour=2)
    async with api_client(limited) as client:
        carol = await start_bystander(client)  # her own two submissions count for her alone
        alice = await create_user(client, "alice")
        await submit_agent(client, alice, "one", "rps", RPS_ROCK)
        bad = {"name": "two", "game": "rps", "code": "import os\ndef agent(o, c):\n    return 0\n"}
        assert (await client.post("/api/agents", json=bad, headers=alice.headers)).status_code == 422
        # Over the limit, a submission is refused before its code is looked at: 429, not the
        # validator's 422, however bad (or large) the code.
        worse = {**bad, "code": "import os\n" * 20_000}
        error = error_of(await client.post("/api/agents", json=worse, headers=alice.headers), 429)
        assert error["code"] == "rate_limited" and "submissions" in error["message"]
        assert error_of(await client.post("/api/agents", json={**bad, "code": RPS_ROCK}, headers=alice.headers),
                        429)["code"] == "rate_limited"
        # Another user's limit is their own.
        bob = await create_user(client, "bob")
        await submit_agent(client, bob, "rock", "rps", RPS_ROCK)
        await check_bystander(client, carol)
