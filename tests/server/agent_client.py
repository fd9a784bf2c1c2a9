"""A raw ``/ws/agent`` client for server tests: real ``websockets`` frames, no SDK in between."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.server.conftest import User, ws_url

JSON = Any


async def register_remote(client: httpx.AsyncClient, user: User, name: str, game: str) -> int:
    """POST /api/agents {"remote": true}; the new agent's id."""
    response = await client.post("/api/agents", json={"name": name, "game": game, "remote": True},
                                 headers=user.headers)
    assert response.status_code == 201, response.text
    agent_id: int = response.json()["id"]
    return agent_id


def open_agent(client: httpx.AsyncClient, user: User | None = None, *, token: str | None = None) -> connect:
    """Open ``/ws/agent``, with the user's token in the ``Authorization`` header if given."""
    headers = user.headers if user is not None else {"Authorization": f"Bearer {token}"} if token else None
    return connect(ws_url(client, "/ws/agent"), additional_headers=headers, proxy=None, open_timeout=10,
                   max_size=None, close_timeout=2)


async def recv(ws: ClientConnection, *types: str, timeout_s: float = 20, skipped: list[JSON] | None = None,
               pong: bool = True) -> JSON:
    """The next frame of one of ``types`` (any, if none given), answering pings on the way."""
    with anyio.fail_after(timeout_s):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ping" and pong:
                await ws.send(json.dumps({"type": "pong", "nonce": frame["nonce"]}))
                continue
            if not types or frame["type"] in types:
                return frame
            if skipped is not None:
                skipped.append(frame)


async def hello(ws: ClientConnection, token: str | None = None, agents: list[int] | None = None) -> JSON:
    """Send a ``hello`` (with a token unless the header carried it) and return the ``welcome``."""
    body: dict[str, JSON] = {"type": "hello", "protocol_version": 1}
    if token is not None:
        body["token"] = token
    if agents is not None:
        body["agents"] = agents
    await ws.send(json.dumps(body))
    return await recv(ws, "welcome")


def action(turn: JSON, value: JSON) -> str:
    return json.dumps({"type": "action", "match_id": turn["match_id"], "step": turn["step"], "action": value,
                       "seat": turn["seat"]})


def first_free(observation: JSON) -> JSON:
    return observation["board"].index(0)


def rps_cycle(observation: JSON) -> JSON:
    return observation["step"] % 3


async def play(ws: ClientConnection, choose: Callable[[JSON], JSON], *, matches: int = 1,
               timeout_s: float = 60, delay_s: float = 0.0) -> list[JSON]:
    """Answer every turn with ``choose(observation)`` (after ``delay_s``) until ``matches``
    matches ended; their ``match_end`` frames."""
    ends: list[JSON] = []
    with anyio.fail_after(timeout_s):
        while len(ends) < matches:
            frame = await recv(ws, "turn", "match_end")
            if frame["type"] == "turn":
                await anyio.sleep(delay_s)
                await ws.send(action(frame, choose(frame["observation"])))
            else:
                ends.append(frame)
    return ends
