"""Rating changes across the cluster, on the private PostgreSQL: a ladder match run by one process
is rated with its result, and the lobby of every front hears ``match_ended`` and then one
``rating_changed`` per seat, once, read from the rating history; a match rated late by the
backfill is announced from its ``rated`` notice, its end first when that had not gone out.

The relay's own tests run it in this process (a hub, a relay, a storage standing for the
worker); the last test runs a front and a worker as real ``arena serve`` processes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from server.cluster import Relay
from server.ladder.ratings import Rater
from server.matches.hub import Hub
from server.storage import AgentRecord, MatchRecord, MatchStatus, NewSeat, SeatResult, Storage, open_postgres
from tests.cluster.nodes import create_matches, node, wait_until_ended
from tests.cluster.test_relay import Spectator, wait_for, watch
from tests.postgres import PostgresServer
from tests.server.ladder_client import index_of, open_lobby, ratings_of, read_until
from tests.storage.raw import query

pytestmark = pytest.mark.timeout(120)

JSON = Any
WAIT_S = 20.0


async def two_agents(storage: Storage) -> list[AgentRecord]:
    user = await storage.create_user("alice", "h")
    return [await storage.save_agent(user.id, name, "tictactoe", "x") for name in ("ann", "ben")]


async def live_match(storage: Storage, agents: list[AgentRecord], lobby: Spectator, *,
                     rated: bool = True) -> MatchRecord:
    """A match gone live, once the front's lobby has heard of it."""
    match = await storage.create_match("tictactoe", 1, {}, 7, [NewSeat(a.id, 1) for a in agents], rated=rated)
    await storage.set_match_live(match.id, time.time())
    await wait_for(lambda: kinds(lobby, match.id) == ["match_started"], f"the start of match {match.id}")
    return match


async def finish(storage: Storage, match: MatchRecord) -> MatchRecord:
    seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
             for s, r in zip(match.seats, [1.0, -1.0], strict=True)]
    return await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())


def leave_unrated(url: str, match_id: int) -> None:
    """Make a finished match what a program from before ratings were stored with results left:
    a ladder match, its rating left to the backfill."""
    query(url, "UPDATE matches SET rated = true, rating_done = false WHERE id = ?", match_id)


def as_frames(record: MatchRecord) -> list[dict[str, JSON]]:
    """The ``rating_changed`` frames of the changes a match's end returned, in seat order."""
    return [{"type": "rating_changed", "agent_id": c.agent_id, "game": c.after.game, "rating": c.after.rating,
             "previous": c.before.rating, "name": c.name, "owner": c.owner, "match_id": record.id,
             "mu": c.after.mu, "sigma": c.after.sigma, "rated_matches": c.after.matches}
            for c in record.rating_changes]


def kinds(lobby: Spectator, match_id: int) -> list[str]:
    """The types of the lobby frames about one match, in order."""
    return [f["type"] for f in lobby.frames if (f.get("match") or {}).get("id", f.get("match_id")) == match_id]


@dataclass
class Front:
    """A front in this process: its hub's lobby, heard by ``lobby``, fed by ``relay``."""

    relay: Relay
    lobby: Spectator
    tg: TaskGroup


@asynccontextmanager
async def front_of(url: str) -> AsyncIterator[Front]:
    """A hub and its relay on the database at ``url``, the lobby heard from the start. No poll:
    the notifications alone carry the test. Every wait inside is bounded by ``WAIT_S``."""
    hub = Hub()
    relay = Relay(hub, url, poll_interval_s=60.0, ping_interval_s=60.0)
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            yield Front(relay, watch(tg, hub.subscribe_lobby()), tg)
            tg.cancel_scope.cancel()


async def test_a_front_announces_the_end_then_the_ratings_once(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as worker, front_of(postgres_url) as front:
        relay, lobby = front.relay, front.lobby
        agents = await two_agents(worker)
        # Rated with its result by the process that ran it: the front reads the changes with the end.
        first = await finish(worker, await live_match(worker, agents, lobby))
        await wait_for(lambda: len(kinds(lobby, first.id)) == 4, "the first match's frames")
        assert kinds(lobby, first.id) == ["match_started", "match_ended", "rating_changed", "rating_changed"]
        assert ratings_of(lobby.frames, first.id) == as_frames(first)

        # A rated notice of a match whose ratings went out with its end: nothing more. (A later
        # match's frames, and a pass after them, mark where a second announcement would be.)
        PostgresServer.execute(postgres_url, f"SELECT pg_notify('arena_events', 'rated {first.id}')")
        second = await finish(worker, await live_match(worker, agents, lobby))
        await wait_for(lambda: len(kinds(lobby, second.id)) == 4, "the second match's frames")
        assert await relay.follow(second.id) is None  # ended: returns once a pass after those is done
        assert kinds(lobby, first.id) == ["match_started", "match_ended", "rating_changed", "rating_changed"]
        assert ratings_of(lobby.frames, second.id) == as_frames(second)
        assert [f["previous"] for f in ratings_of(lobby.frames, second.id)] == [
            f["rating"] for f in ratings_of(lobby.frames, first.id)]


async def test_a_match_rated_late_by_the_backfill_is_announced_from_its_notice(postgres_url: str) -> None:
    worker_hub = Hub()
    async with open_postgres(postgres_url) as worker, front_of(postgres_url) as front:
        relay, lobby = front.relay, front.lobby
        worker_lobby = watch(front.tg, worker_hub.subscribe_lobby())
        rater = Rater(worker, worker_hub)  # the cluster's rater, on a process of its own
        agents = await two_agents(worker)

        # Its end went out unrated (an older program ran it); the backfill rates it later.
        ended = await finish(worker, await live_match(worker, agents, lobby, rated=False))
        await wait_for(lambda: len(kinds(lobby, ended.id)) == 2, "its end")
        leave_unrated(postgres_url, ended.id)
        assert await rater.rate_pending() == 1
        await wait_for(lambda: len(kinds(lobby, ended.id)) == 4, "its late ratings")
        assert kinds(lobby, ended.id) == ["match_started", "match_ended", "rating_changed", "rating_changed"]

        # Its end not announced yet (stored behind the relay's back, no notice) when it is rated:
        # the end goes out first, then the ratings, once.
        unseen = await live_match(worker, agents, lobby, rated=False)
        query(postgres_url, "UPDATE match_seats SET status = 'DONE', reward = 1 - 2 * seat WHERE match_id = ?",
              unseen.id)
        query(postgres_url, "UPDATE matches SET status = 'finished', finished_at = ?, rated = true,"
                            " rating_done = false WHERE id = ?", time.time(), unseen.id)
        assert await rater.rate_pending() == 1
        await wait_for(lambda: len(kinds(lobby, unseen.id)) == 4, "its end and its ratings")
        assert kinds(lobby, unseen.id) == ["match_started", "match_ended", "rating_changed", "rating_changed"]

        # Started and ended before the front read it (one transaction here, a very short match
        # there): its end still goes out, and its late ratings after it.
        flash = await worker.create_match("tictactoe", 1, {}, 7, [NewSeat(a.id, 1) for a in agents])
        PostgresServer.execute(postgres_url, f"""
            BEGIN;
            UPDATE match_seats SET status = 'DONE', reward = 1 - 2 * seat WHERE match_id = {flash.id};
            UPDATE matches SET status = 'finished', started_at = {time.time()}, finished_at = {time.time()},
                rated = true, rating_done = false WHERE id = {flash.id};
            SELECT pg_notify('arena_events', 'started {flash.id}');
            SELECT pg_notify('arena_events', 'ended {flash.id}');
            COMMIT;""")
        await wait_for(lambda: kinds(lobby, flash.id) == ["match_ended"], "its end")
        assert await rater.rate_pending() == 1
        await wait_for(lambda: len(kinds(lobby, flash.id)) == 3, "its late ratings")
        assert await relay.follow(flash.id) is None  # a pass after those: nothing more came
        assert kinds(lobby, flash.id) == ["match_ended", "rating_changed", "rating_changed"]
        assert kinds(lobby, unseen.id) == ["match_started", "match_ended", "rating_changed", "rating_changed"]
    late = [f for m in (ended, unseen, flash) for f in ratings_of(lobby.frames, m.id)]
    assert [f["rated_matches"] for f in late] == [1, 1, 2, 2, 3, 3]
    assert [f["agent_id"] for f in late] == [a.id for a in agents] * 3
    assert [f["rating"] > f["previous"] for f in late] == [True, False] * 3  # seat 0 won each
    stored = stored_ratings(postgres_url)
    assert {f["agent_id"]: f["rating"] for f in late} == stored
    # The rater itself publishes nothing in a cluster: every front's relay does, from the notice.
    assert worker_lobby.frames == []


def stored_ratings(url: str) -> dict[int, float]:
    return {int(str(agent)): float(str(rating)) for agent, rating in query(url, "SELECT agent_id, rating FROM ratings")}


async def test_a_front_hears_the_ratings_of_a_ladder_match_a_worker_ran(postgres_url: str, tmp_path: Path) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        lobby = await stack.enter_async_context(open_lobby(front.client))
        worker = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "worker.log"))
        ids = [m.id for m in await create_matches(storage, 2, rated=True)]
        frames: list[JSON] = []
        await read_until(lobby, frames, lambda fs: all(len(ratings_of(fs, m)) == 2 for m in ids), 60)
        records = await wait_until_ended(storage, ids, 10)
        # The end stored by the worker carried the rating: nothing was left for the backfill.
        assert query(postgres_url, "SELECT count(*) FROM matches WHERE NOT rating_done") == [(0,)]
        worker_name = (await worker.health())["worker"]
        for record in records:
            assert record.status is MatchStatus.FINISHED and record.worker == worker_name
            assert index_of(frames, "match_ended", record.id) < index_of(frames, "rating_changed", record.id)
            ended = frames[index_of(frames, "match_ended", record.id)]["match"]
            assert ended["rated"] is True and ended["worker"] == worker_name
            announced = ratings_of(frames, record.id)
            assert [f["agent_id"] for f in announced] == [s.agent_id for s in record.seats]  # in seat order
            rows = query(postgres_url, "SELECT agent_id, rating_before, rating, matches FROM rating_history"
                                       " WHERE match_id = ? ORDER BY agent_id", record.id)
            assert sorted((f["agent_id"], f["previous"], f["rating"], f["rated_matches"]) for f in announced) == rows
        # Each agent's frames chain: the match rated second starts from the rating the first left.
        for agent in {s.agent_id for s in records[0].seats}:
            mine = sorted((f for f in frames if f["type"] == "rating_changed" and f["agent_id"] == agent),
                          key=lambda f: f["rated_matches"])
            assert [f["rated_matches"] for f in mine] == [1, 2] and mine[1]["previous"] == mine[0]["rating"]
        board = (await front.client.get("/api/leaderboard", params={"game": "rps"})).json()["items"]
        assert {row["agent_id"]: row["rating"] for row in board} == {
            f["agent_id"]: f["rating"] for f in frames if f["type"] == "rating_changed" and f["rated_matches"] == 2}
