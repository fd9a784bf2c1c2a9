"""Helpers for ladder tests on a real server: the lobby stream, and bringing the ladder to rest.

The scheduler never stops on its own, so a test that wants exact ratings disables the agents
it plays (the scheduler skips disabled agents), waits until no match is live, and waits until
every finished rated match has been rated: from then on the leaderboard holds still.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.server.conftest import User, ws_url

JSON = Any


def open_lobby(client: httpx.AsyncClient) -> connect:
    return connect(ws_url(client, "/ws/lobby"), proxy=None, open_timeout=20, max_size=None)


async def read_until(lobby: ClientConnection, frames: list[JSON], done: Callable[[list[JSON]], bool],
                     timeout_s: float = 60) -> None:
    """Append lobby frames to ``frames`` until ``done(frames)`` holds."""
    with anyio.fail_after(timeout_s):
        while not done(frames):
            frames.append(json.loads(await lobby.recv()))


def ratings_of(frames: list[JSON], match_id: int) -> list[JSON]:
    return [f for f in frames if f["type"] == "rating_changed" and f["match_id"] == match_id]


def index_of(frames: list[JSON], kind: str, match_id: int) -> int:
    for i, frame in enumerate(frames):
        if frame["type"] == kind and (frame.get("match") or {}).get("id", frame.get("match_id")) == match_id:
            return i
    raise AssertionError(f"no {kind} frame of match {match_id} in {[f['type'] for f in frames]}")


async def leaderboard(client: httpx.AsyncClient, game: str) -> list[JSON]:
    response = await client.get("/api/leaderboard", params={"game": game})
    assert response.status_code == 200, response.text
    items: list[JSON] = response.json()["items"]
    return items


async def all_matches(client: httpx.AsyncClient, **params: Any) -> list[JSON]:
    """Every match the listing gives for ``params``, all pages, newest first."""
    items: list[JSON] = []
    cursor = None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/api/matches", params=query)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next"]
        if cursor is None:
            return items


async def set_disabled(client: httpx.AsyncClient, owner: User, agent_ids: Sequence[int], disabled: bool) -> None:
    for agent_id in agent_ids:
        response = await client.patch(f"/api/agents/{agent_id}", json={"disabled": disabled}, headers=owner.headers)
        assert response.status_code == 200, response.text


async def settle_ladder(client: httpx.AsyncClient, owners: dict[User, list[int]], game: str,
                        timeout_s: float = 60) -> list[JSON]:
    """Disable these agents, wait until none of them is in a pending or live match and every
    finished rated match of ``game`` is rated; returns the finished rated matches, oldest first.
    (Other agents' ladder matches go on: the ladder starts the next one as soon as one ends.)"""
    for owner, agent_ids in owners.items():
        await set_disabled(client, owner, agent_ids, True)
    settled = [agent_id for agent_ids in owners.values() for agent_id in agent_ids]
    with anyio.fail_after(timeout_s):
        while True:
            playing = [m for agent_id in settled for m in await all_matches(client, agent=agent_id)
                       if m["status"] in ("pending", "live")]
            if not playing:
                break
            await anyio.sleep(0.05)
        finished = reversed(await all_matches(client, status="finished"))
        rated = [m for m in finished if m["rated"] and m["game"] == game]
        expected: dict[int, int] = {}
        for match in rated:
            for seat in match["seats"]:
                expected[seat["agent_id"]] = expected.get(seat["agent_id"], 0) + 1
        while True:
            board = {row["agent_id"]: row["rated_matches"] for row in await leaderboard(client, game)}
            if all(board.get(agent_id) == count for agent_id, count in expected.items()):
                return rated
            await anyio.sleep(0.05)
