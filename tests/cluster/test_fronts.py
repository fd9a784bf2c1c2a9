"""Two fronts and two workers as real processes (``arena serve --role``) on the tests' private
PostgreSQL: what one front starts, every front shows.

A match created through front B's HTTP API, as a user would (an account, two agents, a
challenge), is claimed and run by one of the workers; spectators on front A and on front B
watch it over their WebSockets from ``snapshot`` through every ``seq`` to ``end``, and front A's
lobby hears it start and end. The processes are ``nodes.py``'s.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from protocol import codec
from server.storage import open_postgres
from tests.cluster.nodes import SLOW_RPS, STEPS, Node, check_replays, node, wait_until_ended
from tests.cluster.test_relay import assert_contiguous
from tests.server.conftest import create_user, start_match, submit_agent, ws_url
from tests.server.ladder_client import index_of, open_lobby, read_until

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

JSON = Any


async def watch(front: Node, match_id: int, frames: list[JSON]) -> None:
    """The match's frames on this front, from its ``snapshot`` until the front closes the socket after ``end``."""
    async with connect(ws_url(front.client, f"/ws/matches/{match_id}"), proxy=None, open_timeout=20) as ws:
        async for text in ws:
            frames.append(codec.decode_json(text))


async def test_a_match_created_through_one_front_is_watched_live_on_the_other(
    postgres_url: str, tmp_path: Path,
) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        front_a = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front_a.log"))
        front_b = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front_b.log"))
        workers = {(await w.health())["worker"] for w in [
            await stack.enter_async_context(node(postgres_url, "worker", tmp_path / f"worker_{i}.log"))
            for i in (1, 2)]}
        assert len(workers) == 2
        lobby = await stack.enter_async_context(open_lobby(front_a.client))

        user = await create_user(front_b.client, "carol")
        agents = [(await submit_agent(front_b.client, user, name, "rps", SLOW_RPS))["id"] for name in ("p", "q")]
        match = await start_match(front_b.client, user, "rps", agents, {"episodeSteps": STEPS})
        assert (match["status"], match["worker"], match["rated"]) == ("pending", None, False)

        on_a: list[JSON] = []
        on_b: list[JSON] = []
        lobby_frames: list[JSON] = []
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, front_a, match["id"], on_a)
                tg.start_soon(watch, front_b, match["id"], on_b)
                await read_until(lobby, lobby_frames, lambda frames: any(
                    f["type"] == "match_ended" and f["match"]["id"] == match["id"] for f in frames))

        document = (await front_a.client.get(f"/api/matches/{match['id']}")).json()
        assert document["status"] == "finished" and document["steps"] == STEPS, document
        assert document["worker"] in workers, document
        for frames in (on_a, on_b):
            assert_contiguous(frames, STEPS)
            assert frames[0]["seq"] < STEPS  # joined while the match was pending or live, not after it
            assert frames[-1]["result"]["status"] == "finished"
        # After their snapshots both fronts sent the same frames, byte for byte as decoded.
        common = min(len(on_a), len(on_b)) - 1
        assert on_a[-common:] == on_b[-common:]

        started = index_of(lobby_frames, "match_started", match["id"])
        ended = index_of(lobby_frames, "match_ended", match["id"])
        assert started < ended
        assert lobby_frames[started]["match"]["rated"] is False
        assert lobby_frames[ended]["match"]["status"] == "finished"
        assert lobby_frames[ended]["match"]["worker"] == document["worker"]

        await check_replays(front_a, await wait_until_ended(storage, [match["id"]], 10))

