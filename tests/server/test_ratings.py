"""The rated ladder end to end: real uvicorn, real bots, ``rating_changed`` on ``/ws/lobby``; only the
ladder's own matches are rated (challenges are covered in ``test_ratings_rule.py``)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, cast

import anyio
import pytest

from protocol.codec import decode_lobby
from protocol.errors import StorageError
from protocol.messages import LobbyMsg, RatingChanged
from server.config import Settings
from server.ladder.ratings import Rater
from server.matches.hub import Hub
from server.storage import MatchStatus, NewSeat, RatedMatch, SeatResult, Storage, open_storage
from tests.server.agent_client import register_remote
from tests.server.conftest import (
    TICTACTOE_FIRST_FREE,
    api_client,
    create_user,
    start_match,
    submit_agent,
    wait_finished,
)
from tests.server.ladder_client import (
    index_of,
    leaderboard,
    open_lobby,
    ratings_of,
    read_until,
    set_disabled,
    settle_ladder,
)
from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(120), pytest.mark.both_backends]

JSON = Any


async def test_ladder_matches_move_ratings_announced_on_the_lobby(settings: Settings) -> None:
    ladder = replace(settings, ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(ladder) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        # A remote agent: the ladder never schedules it, so it never plays.
        idle = await register_remote(client, alice, "idle", "tictactoe")
        frames: list[JSON] = []
        async with open_lobby(client) as lobby:
            # The first free cell: seat 0 always wins, on the diagonal, in 7 steps.
            a = (await submit_agent(client, alice, "ann", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
            b = (await submit_agent(client, bob, "ben", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
            await read_until(lobby, frames, lambda fs: sum(f["type"] == "rating_changed" for f in fs) >= 6)
            # A challenge meanwhile, of an agent against itself: shown unrated, never rated.
            mirror = await start_match(client, alice, "tictactoe", [a, a])
            assert mirror["rated"] is False
            assert (await wait_finished(client, mirror["id"]))["status"] == "finished"
            rated = await settle_ladder(client, {alice: [a], bob: [b]}, "tictactoe")
            await read_until(lobby, frames, lambda fs: sum(f["type"] == "rating_changed" for f in fs) == 2 * len(rated)
                             and any(f["type"] == "match_ended" and f["match"]["id"] == mirror["id"] for f in fs))

        names = {a: "ann", b: "ben"}
        owners = {a: "alice", b: "bob"}
        last = {a: 1000.0, b: 1000.0}
        counts = {a: 0, b: 0}
        started = {f["match"]["id"]: f["match"] for f in frames if f["type"] == "match_started"}
        ended = {f["match"]["id"]: f["match"] for f in frames if f["type"] == "match_ended"}
        # One ladder match at a time (one rated slot, none featured): rated in id order, each from the
        # ratings before it.
        for match in rated:
            assert started[match["id"]]["rated"] is True and started[match["id"]]["tags"] == {"scheduled": True}
            frames_of = ratings_of(frames, match["id"])
            # After the match's end, one frame per seat, in seat order.
            assert index_of(frames, "match_ended", match["id"]) < frames.index(frames_of[0])
            assert [f["agent_id"] for f in frames_of] == [s["agent_id"] for s in match["seats"]]
            for frame in frames_of:
                assert isinstance(decode_lobby(json.dumps(frame)), RatingChanged)
                agent = frame["agent_id"]
                counts[agent] += 1
                assert frame["game"] == "tictactoe" and frame["name"] == names[agent]
                assert frame["owner"] == owners[agent] and frame["rated_matches"] == counts[agent]
                assert frame["previous"] == last[agent]
                assert frame["rating"] == round(1000 + 40 * (frame["mu"] - 3 * frame["sigma"]), 1)
                last[agent] = frame["rating"]
            win, loss = frames_of  # the first mover wins
            assert win["rating"] > win["previous"] and loss["rating"] < loss["previous"]  # winner up, loser down
        # The challenge is listed unrated on the lobby too, and no rating moved with it.
        assert started[mirror["id"]]["rated"] is False and ended[mirror["id"]]["rated"] is False
        assert ratings_of(frames, mirror["id"]) == []
        assert {f["match_id"] for f in frames if f["type"] == "rating_changed"} == {m["id"] for m in rated}

        # The leaderboard ranks by the announced ratings; the agent that never played holds 1000.
        board = await leaderboard(client, "tictactoe")
        assert [row["rank"] for row in board] == [1, 2, 3]
        assert [row["rating"] for row in board] == sorted((row["rating"] for row in board), reverse=True)
        rows = {row["agent_id"]: row for row in board}
        assert rows[a]["rating"] == last[a] and rows[b]["rating"] == last[b]
        assert rows[a]["rated_matches"] == counts[a] and rows[b]["rated_matches"] == counts[b] == len(rated)
        # Standings count every finished match once per agent: the ladder's and the mirror challenge.
        assert rows[a]["matches"] == counts[a] + 1 and rows[b]["matches"] == counts[b]
        assert rows[a]["rated_wins"] + rows[a]["rated_draws"] + rows[a]["rated_losses"] == counts[a]
        assert (rows[idle]["rating"], rows[idle]["rated_matches"], rows[idle]["matches"]) == (1000.0, 0, 0)
        for row in board:
            assert {"wins", "draws", "losses", "faults", "points", "mu", "sigma", "name", "owner"} <= set(row)

        # Agent documents carry the same rating.
        for agent_id in (a, b, idle):
            doc = (await client.get(f"/api/agents/{agent_id}")).json()
            assert doc["rating"] == rows[agent_id]["rating"]
            assert doc["rated_matches"] == rows[agent_id]["rated_matches"]
        listed = (await client.get("/api/agents", params={"game": "tictactoe"})).json()["items"]
        assert {d["id"]: d["rating"] for d in listed} == {k: v["rating"] for k, v in rows.items()}

        # Bad input still gets a clear error.
        unknown = await client.get("/api/leaderboard", params={"game": "chess"})
        assert unknown.status_code == 400 and "chess" in unknown.json()["error"]["message"]
        missing = await client.get("/api/leaderboard")
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_field"


async def test_ratings_survive_a_restart_and_no_match_is_rated_twice(settings: Settings) -> None:
    ladder = replace(settings, ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(ladder) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = (await submit_agent(client, alice, "ann", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        b = (await submit_agent(client, bob, "ben", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        async with open_lobby(client) as lobby:
            await read_until(lobby, [], lambda fs: any(f["type"] == "rating_changed" for f in fs))
        await settle_ladder(client, {alice: [a], bob: [b]}, "tictactoe")  # disabled: the ladder rests
        before = await leaderboard(client, "tictactoe")
        assert all(row["rated_matches"] > 0 for row in before)

    async with api_client(ladder) as client:  # the same database file
        await anyio.sleep(0.3)  # the rater's start-up pass has nothing to rate: the board stays as it was
        assert await leaderboard(client, "tictactoe") == before
        async with open_lobby(client) as lobby:
            await set_disabled(client, alice, [a], False)
            await set_disabled(client, bob, [b], False)
            frames: list[JSON] = []
            await read_until(lobby, frames, lambda fs: sum(f["type"] == "rating_changed" for f in fs) >= 2)
        first = frames[next(i for i, f in enumerate(frames) if f["type"] == "rating_changed")]["match_id"]
        rated = ratings_of(frames, first)
        was = {row["agent_id"]: row for row in before}
        assert [f["rated_matches"] for f in rated] == [was[f["agent_id"]]["rated_matches"] + 1 for f in rated]
        assert [f["previous"] for f in rated] == [was[f["agent_id"]]["rating"] for f in rated]


async def test_the_scheduler_plays_a_rated_ladder_between_the_example_bots(settings: Settings) -> None:
    ladder = replace(settings, ladder=True, seed_examples=True, ladder_slots=3, ladder_featured=0)
    async with api_client(ladder) as client, open_lobby(client) as lobby:
        frames: list[JSON] = []
        await read_until(lobby, frames, lambda fs: sum(f["type"] == "rating_changed" for f in fs) >= 8, 90)
        started = {f["match"]["id"]: f["match"] for f in frames if f["type"] == "match_started"}
        rated_ids = {f["match_id"] for f in frames if f["type"] == "rating_changed"}
        assert rated_ids & set(started)
        for match_id in rated_ids & set(started):
            match = started[match_id]
            assert match["tags"] == {"scheduled": True} and match["rated"] is True
            seats = [s["agent_id"] for s in match["seats"]]
            assert len(set(seats)) == len(seats)  # the pairing rule never pairs an agent with itself
            assert index_of(frames, "match_ended", match_id) < index_of(frames, "rating_changed", match_id)
        games = {f["game"] for f in frames if f["type"] == "rating_changed"}
        for game in games:
            board = await leaderboard(client, game)
            ratings = [row["rating"] for row in board]
            assert ratings == sorted(ratings, reverse=True)
            assert any(row["rated_matches"] > 0 for row in board)


class FailingOnce:
    """A storage whose first ``rate_finished`` fails, as a locked or full disk would."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls = 0

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        self.calls += 1
        if self.calls == 1:
            raise StorageError("cannot rate finished matches: disk I/O error")
        return await self.storage.rate_finished(limit)


class LobbyRecorder:
    """Stands in for the hub: keeps what is published on the lobby."""

    def __init__(self) -> None:
        self.frames: list[LobbyMsg] = []
        self.changed = anyio.Event()

    def publish_lobby(self, msg: LobbyMsg) -> None:
        self.frames.append(msg)
        self.changed.set()


async def test_a_failure_to_rate_is_logged_and_retried(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a, b = [await storage.save_agent(user.id, name, "tictactoe", "x") for name in ("a", "b")]
        match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1), NewSeat(b.id, 1)])
        seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
                 for s, r in zip(match.seats, [1.0, -1.0], strict=True)]
        await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())
        # A ladder match as a program from before ratings were stored with results left it: unrated.
        query(db_url, "UPDATE matches SET rated = ?, rating_done = ? WHERE id = ?", True, False, match.id)
        final = await storage.get_match(match.id)
        assert final.rated and final.rating_changes == ()
        lobby = LobbyRecorder()
        flaky = FailingOnce(storage)
        rater = Rater(cast(Storage, flaky), cast(Hub, lobby))
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(rater.run)
                rater.match_finished(final)
                await lobby.changed.wait()
                await anyio.sleep(0.1)
                tg.cancel_scope.cancel()
    assert flaky.calls >= 2
    assert "could not rate finished matches" in caplog.text and "disk I/O error" in caplog.text
    assert [(f.agent_id, f.match_id) for f in lobby.frames if isinstance(f, RatingChanged)] == [
        (a.id, match.id), (b.id, match.id),
    ]
    assert len(lobby.frames) == 2
