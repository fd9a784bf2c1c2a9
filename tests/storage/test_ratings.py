"""The ladder in the storage, on both backends: each finished ladder match rated exactly once,
across reopening too."""

from __future__ import annotations

import sqlite3
import time

import pytest

from server.ladder.rules import DEFAULT_SKILL, Skill, rate_match
from server.storage import AgentRecord, MatchStatus, NewSeat, RatedMatch, SeatResult, Storage, open_storage
from server.storage._pg_schema import _MIGRATIONS as PG_MIGRATIONS
from server.storage._pg_schema import _VERSION_TABLE
from server.storage._schema import _MIGRATIONS, SCHEMA_VERSION, _statements
from tests.postgres import PostgresServer

pytestmark = pytest.mark.both_backends


async def finish(storage: Storage, agents: list[AgentRecord], rewards: list[float],
                 status: MatchStatus = MatchStatus.FINISHED, *, rated: bool = True) -> int:
    """Store a tictactoe match between ``agents`` that ended with ``rewards`` (a ladder match
    unless ``rated`` is false, as a challenge is); returns its id."""
    match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, a.version) for a in agents],
                                       rated=rated)
    seats = [
        SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", reward, None)
        for s, reward in zip(match.seats, rewards, strict=True)
    ]
    await storage.finish_match(match.id, status, None, seats, time.time())
    return match.id


async def three_agents(storage: Storage) -> list[AgentRecord]:
    user = await storage.create_user("alice", "h")
    return [await storage.save_agent(user.id, name, "tictactoe", "x") for name in ("a", "b", "c")]


def changes(rated: list[RatedMatch]) -> list[tuple[int, list[tuple[int, float, float]]]]:
    return [(m.match_id, [(c.agent_id, c.before.rating, c.after.rating) for c in m.changes]) for m in rated]


async def test_a_match_is_rated_exactly_once_also_after_reopening(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        assert await storage.rate_finished() == []
        first = await finish(storage, [a, b], [1.0, -1.0])
        rated = await storage.rate_finished()
        assert [m.match_id for m in rated] == [first]
        (change_a, change_b) = rated[0].changes
        assert (change_a.agent_id, change_a.name, change_a.owner) == (a.id, "a", "alice")
        assert change_a.before.rating == change_b.before.rating == 1000.0 and change_a.before.matches == 0
        assert change_a.after.rating > 1000.0 > change_b.after.rating
        assert change_a.after.matches == 1 and change_a.after.last_match_id == first
        assert change_a.after.updated_at is not None
        assert await storage.rate_finished() == []  # never twice

        # The stored ratings are the ones announced, and carry over to the next match.
        ratings = await storage.get_ratings([a.id, b.id, c.id, 999])
        assert set(ratings) == {a.id, b.id, c.id}  # an unknown id is left out
        assert ratings[a.id] == change_a.after and ratings[b.id] == change_b.after
        assert ratings[c.id].rating == 1000.0 and ratings[c.id].matches == 0 and ratings[c.id].updated_at is None
        second = await finish(storage, [b, a], [1.0, -1.0])
        (rated_second,) = await storage.rate_finished()
        expected = rate_match([Skill(change_b.after.mu, change_b.after.sigma),
                               Skill(change_a.after.mu, change_a.after.sigma)], [1.0, -1.0])
        assert [(ch.after.mu, ch.after.sigma) for ch in rated_second.changes] == [(s.mu, s.sigma) for s in expected]
        assert rated_second.changes[1].before == change_a.after and rated_second.changes[1].after.matches == 2
        # A match finished but not yet rated when the storage closes.
        third = await finish(storage, [a, c], [0.0, 0.0])
        before_close = await storage.get_ratings([a.id, b.id, c.id])

    async with open_storage(db_url) as storage:
        assert await storage.get_ratings([a.id, b.id]) == {k: before_close[k] for k in (a.id, b.id)}
        (rated_third,) = await storage.rate_finished()  # only the one left over, not the others again
        assert rated_third.match_id == third and rated_third.game == "tictactoe"
        assert [ch.after.matches for ch in rated_third.changes] == [3, 1]
        assert await storage.rate_finished() == []
        assert second != third

    async with open_storage(db_url) as storage:
        assert await storage.rate_finished() == []
        assert (await storage.get_ratings([a.id]))[a.id].matches == 3


async def test_only_finished_ladder_matches_between_distinct_agents_are_rated(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, _ = await three_agents(storage)
        aborted = await finish(storage, [a, b], [1.0, -1.0], MatchStatus.ABORTED)
        live = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1), NewSeat(b.id, 1)], rated=True)
        await storage.set_match_live(live.id, time.time())
        mirror = await finish(storage, [a, a], [1.0, -1.0])  # asked rated, stored unrated: one agent in every seat
        challenge = await finish(storage, [a, b], [1.0, -1.0], rated=False)
        assert not (await storage.get_match(mirror)).rated and not (await storage.get_match(challenge)).rated
        assert (await storage.get_match(live.id)).rated
        assert await storage.rate_finished() == []  # neither ever reaches the rater
        ratings = await storage.get_ratings([a.id, b.id])
        assert ratings[a.id].matches == 0 and ratings[b.id].matches == 0
        assert aborted != live.id

        # The live match ends later: it is rated then, once.
        seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
                 for s, r in zip(live.seats, [-1.0, 1.0], strict=True)]
        await storage.finish_match(live.id, MatchStatus.FINISHED, None, seats, time.time())
        (rated_live,) = await storage.rate_finished()
        assert rated_live.match_id == live.id
        assert rated_live.changes[1].after.rating > 1000.0 > rated_live.changes[0].after.rating


async def test_matches_are_rated_in_the_order_they_ended_a_batch_at_a_time(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        ids = [await finish(storage, pair, [1.0, -1.0]) for pair in ([a, b], [b, c], [c, a], [a, b])]
        first_two = await storage.rate_finished(limit=2)
        rest = await storage.rate_finished(limit=10)
        assert [m.match_id for m in first_two + rest] == ids
        assert await storage.rate_finished(limit=10) == []
        ratings = await storage.get_ratings([a.id, b.id, c.id])
        assert [ratings[x.id].matches for x in (a, b, c)] == [3, 3, 2]


async def test_leaderboard_ranks_by_rating_with_standings(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        user = await storage.create_user("bob", "h2")
        idle = await storage.save_agent(user.id, "idle", "tictactoe", "x")
        await storage.save_agent(user.id, "elsewhere", "connectx", "x")
        for pair in ([a, b], [a, c], [b, c], [a, b]):
            await finish(storage, pair, [1.0, -1.0])
        await storage.rate_finished()
        board = await storage.leaderboard("tictactoe")
        # b (1 win, 2 losses: 1008.8) is surer than idle (the default 1000); c lost both (865.3).
        assert [(row["name"], row["rating"]) for row in board] == [
            ("a", 1362.9), ("b", 1008.8), ("idle", 1000.0), ("c", 865.3),
        ]
        assert [row["rank"] for row in board] == [1, 2, 3, 4]
        ratings = [row["rating"] for row in board]
        assert ratings == sorted(ratings, reverse=True)
        top = board[0]
        assert set(top) == {
            "rank", "agent_id", "name", "owner", "version", "rating", "mu", "sigma", "rated_matches",
            "matches", "wins", "draws", "losses", "faults", "points", "rated_wins", "rated_draws", "rated_losses",
        }
        summary = (top["agent_id"], top["owner"], top["rated_matches"], top["matches"], top["wins"])
        assert summary == (a.id, "alice", 3, 3, 3)
        assert top["points"] == 3.0 and top["losses"] == 0
        assert (top["rated_wins"], top["rated_draws"], top["rated_losses"]) == (3, 0, 0)
        unrated = board[2]
        assert unrated["agent_id"] == idle.id and unrated["rated_matches"] == 0 and unrated["matches"] == 0
        assert (unrated["mu"], unrated["sigma"], unrated["rating"]) == (DEFAULT_SKILL.mu, DEFAULT_SKILL.sigma, 1000.0)
        assert await storage.leaderboard("chess") == []


# The rows of a database from before ratings (version 2), in SQL both backends take. Match 1 is the
# scheduler's, match 2 a challenge (b wins it too): only the first is rated.
VERSION_2_ROWS = """
    INSERT INTO users (id, name, token_hash, created_at) VALUES (1, 'alice', 'h', 0);
    INSERT INTO agents (id, user_id, name, game, remote, version, created_at, updated_at)
        VALUES (1, 1, 'a', 'tictactoe', false, 1, 0, 0), (2, 1, 'b', 'tictactoe', false, 1, 0, 0);
    INSERT INTO agent_versions (agent_id, version, code, created_at) VALUES (1, 1, 'x', 0), (2, 1, 'x', 0);
    INSERT INTO matches (id, game, rules_version, status, config, seed, tags, created_at, finished_at)
        VALUES (1, 'tictactoe', 1, 'finished', '{}', 1, '{"scheduled":true}', 0, 1),
               (2, 'tictactoe', 1, 'finished', '{}', 1, '{"started_by":"alice","user_id":1}', 0, 2);
    INSERT INTO match_seats (match_id, seat, agent_id, version, status, reward)
        VALUES (1, 0, 1, 1, 'DONE', -1.0), (1, 1, 2, 1, 'DONE', 1.0),
               (2, 0, 1, 1, 'DONE', -1.0), (2, 1, 2, 1, 'DONE', 1.0);
"""


def build_version_2(backend: str, url: str) -> None:
    """The schema as it was before ratings (version 2), with ``VERSION_2_ROWS``."""
    if backend == "sqlite":
        db = sqlite3.connect(url)
        for script in (*_MIGRATIONS[:2], VERSION_2_ROWS):
            for statement in _statements(script):
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.commit()
        db.close()
    else:
        PostgresServer.execute(url, "\n".join([_VERSION_TABLE, *PG_MIGRATIONS[:2], VERSION_2_ROWS,
                                               "UPDATE schema_version SET version = 2;"]))


def schema_version(backend: str, url: str) -> int:
    if backend == "sqlite":
        with sqlite3.connect(url) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.close()
        return version
    [(version,)] = PostgresServer.fetch(url, "SELECT version FROM schema_version")
    return int(str(version))


async def test_a_database_from_before_ratings_opens_and_rates_its_ladder_history(
    backend: str, bare_db_url: str
) -> None:
    build_version_2(backend, bare_db_url)
    async with open_storage(bare_db_url) as storage:
        (rated,) = await storage.rate_finished()
        assert rated.match_id == 1
        assert [ch.after.rating > 1000.0 for ch in rated.changes] == [False, True]  # b won
        assert await storage.rate_finished() == []  # the challenge never is
        board = await storage.leaderboard("tictactoe")
        assert [(row["name"], row["rated_matches"], row["matches"]) for row in board] == [("b", 1, 2), ("a", 1, 2)]
        assert [(await storage.get_match(m)).rated for m in (1, 2)] == [True, False]
    assert schema_version(backend, bare_db_url) == SCHEMA_VERSION
