"""The ladder in the storage, on both backends: a finished ladder match rated in the transaction
that stores its result, its changes in the rating history, the result and the rating together
or neither; the backfill of matches left unrated, exactly once, across reopening too."""

from __future__ import annotations

import sqlite3
import time

import pytest

from protocol.errors import StorageError
from server.ladder.rules import DEFAULT_SKILL, Skill, rate_match
from server.storage import (
    AgentRecord,
    MatchRecord,
    MatchStatus,
    NewSeat,
    RatingChange,
    SeatResult,
    Storage,
    is_postgres_url,
    open_storage,
)
from server.storage._pg_schema import _MIGRATIONS as PG_MIGRATIONS
from server.storage._pg_schema import _VERSION_TABLE
from server.storage._schema import _MIGRATIONS, SCHEMA_VERSION, _statements
from tests.postgres import PostgresServer
from tests.storage.raw import query

pytestmark = pytest.mark.both_backends


def results(match: MatchRecord, rewards: list[float]) -> list[SeatResult]:
    return [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", reward, None)
            for s, reward in zip(match.seats, rewards, strict=True)]


async def finish(storage: Storage, agents: list[AgentRecord], rewards: list[float],
                 status: MatchStatus = MatchStatus.FINISHED, *, rated: bool = True) -> MatchRecord:
    """Store a tictactoe match between ``agents`` that ended with ``rewards`` (a ladder match
    unless ``rated`` is false, as a challenge is); returns the record its end returned."""
    match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, a.version) for a in agents],
                                       rated=rated)
    return await storage.finish_match(match.id, status, None, results(match, rewards), time.time())


async def finish_unrated(storage: Storage, url: str, agents: list[AgentRecord], rewards: list[float]) -> int:
    """A ladder match finished as a program from before ratings were stored with results left
    it: finished, rated, its rating left to the rater; returns its id."""
    record = await finish(storage, agents, rewards, rated=False)
    query(url, "UPDATE matches SET rated = ?, rating_done = ? WHERE id = ?", True, False, record.id)
    return record.id


async def three_agents(storage: Storage) -> list[AgentRecord]:
    user = await storage.create_user("alice", "h")
    return [await storage.save_agent(user.id, name, "tictactoe", "x") for name in ("a", "b", "c")]


def history(url: str, match_id: int | None = None) -> list[tuple[object, ...]]:
    """The rating history's rows (of one match), in the order the ratings were made per agent."""
    where = "" if match_id is None else f" WHERE match_id = {int(match_id)}"
    return query(url, "SELECT match_id, agent_id, game, mu_before, sigma_before, rating_before, mu, sigma, rating,"
                      f" matches, rated_at FROM rating_history{where} ORDER BY agent_id, matches")


def history_of(change: RatingChange, match_id: int) -> tuple[object, ...]:
    """The history row that ``change`` of ``match_id`` is stored as."""
    before, after = change.before, change.after
    return (match_id, change.agent_id, after.game, before.mu, before.sigma, before.rating, after.mu, after.sigma,
            after.rating, after.matches, after.updated_at)


def is_rating_done(url: str, match_id: int) -> bool:
    [(done,)] = query(url, "SELECT rating_done FROM matches WHERE id = ?", match_id)
    return bool(done)


async def test_a_ladder_match_is_rated_with_its_result_once_and_kept_in_the_history(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        first = await finish(storage, [a, b], [1.0, -1.0])
        (change_a, change_b) = first.rating_changes
        assert (change_a.agent_id, change_a.name, change_a.owner) == (a.id, "a", "alice")
        assert change_b.agent_id == b.id
        assert change_a.before.rating == change_b.before.rating == 1000.0 and change_a.before.matches == 0
        assert change_a.after.rating > 1000.0 > change_b.after.rating
        assert change_a.after.matches == 1 and change_a.after.last_match_id == first.id
        assert change_a.after.updated_at is not None
        # Stored with the result: the ratings, the history and the mark, so the backfill has nothing.
        assert await storage.rate_finished() == []
        assert is_rating_done(db_url, first.id)
        assert sorted(history(db_url)) == sorted(history_of(ch, first.id) for ch in first.rating_changes)
        # The record it returned is the stored match; the changes ride along only on it.
        stored = await storage.get_match(first.id)
        assert stored == first and stored.rating_changes == () and stored.rated

        # The stored ratings are the ones announced, and carry over to the next match.
        ratings = await storage.get_ratings([a.id, b.id, c.id, 999])
        assert set(ratings) == {a.id, b.id, c.id}  # an unknown id is left out
        assert ratings[a.id] == change_a.after and ratings[b.id] == change_b.after
        assert ratings[c.id].rating == 1000.0 and ratings[c.id].matches == 0 and ratings[c.id].updated_at is None
        second = await finish(storage, [b, a], [1.0, -1.0])
        expected = rate_match([Skill(change_b.after.mu, change_b.after.sigma),
                               Skill(change_a.after.mu, change_a.after.sigma)], [1.0, -1.0])
        assert [(ch.after.mu, ch.after.sigma) for ch in second.rating_changes] == [(s.mu, s.sigma) for s in expected]
        assert second.rating_changes[1].before == change_a.after and second.rating_changes[1].after.matches == 2
        last = await storage.get_ratings([a.id, b.id])

    async with open_storage(db_url) as storage:  # nothing was left for a restart to rate
        assert await storage.rate_finished() == []
        assert await storage.get_ratings([a.id, b.id]) == last
        assert len(history(db_url)) == 4


async def test_only_finished_ladder_matches_between_distinct_agents_are_rated(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, _ = await three_agents(storage)
        aborted = await finish(storage, [a, b], [1.0, -1.0], MatchStatus.ABORTED)
        live = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1), NewSeat(b.id, 1)], rated=True)
        await storage.set_match_live(live.id, time.time())
        mirror = await finish(storage, [a, a], [1.0, -1.0])  # asked rated, stored unrated: one agent in every seat
        challenge = await finish(storage, [a, b], [1.0, -1.0], rated=False)
        assert aborted.rated and not mirror.rated and not challenge.rated
        assert aborted.rating_changes == mirror.rating_changes == challenge.rating_changes == ()
        assert (await storage.get_match(live.id)).rated
        assert await storage.rate_finished() == []  # none of them ever reaches the backfill either
        ratings = await storage.get_ratings([a.id, b.id])
        assert ratings[a.id].matches == 0 and ratings[b.id].matches == 0
        assert history(db_url) == []

        # The live match ends later: it is rated then, once.
        ended = await storage.finish_match(live.id, MatchStatus.FINISHED, None, results(live, [-1.0, 1.0]),
                                           time.time())
        assert [ch.agent_id for ch in ended.rating_changes] == [a.id, b.id]
        assert ended.rating_changes[1].after.rating > 1000.0 > ended.rating_changes[0].after.rating
        assert await storage.rate_finished() == []
        assert {row[0] for row in history(db_url)} == {live.id}


async def test_the_result_and_the_rating_are_stored_together_or_not_at_all(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        await finish(storage, [a, b], [1.0, -1.0])
        before = await storage.get_ratings([a.id, b.id, c.id])
        rows = history(db_url)

        # The history refuses the match's rows: the last write of its end fails, after its result
        # and its ratings were written in the same transaction.
        match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1), NewSeat(b.id, 1)], rated=True)
        await storage.set_match_live(match.id, time.time())
        if is_postgres_url(db_url):
            PostgresServer.execute(db_url, "ALTER TABLE rating_history ADD CONSTRAINT no_history"
                                           f" CHECK (match_id <> {match.id})")
        else:
            query(db_url, "CREATE TRIGGER no_history BEFORE INSERT ON rating_history"
                          f" WHEN NEW.match_id = {match.id} BEGIN SELECT RAISE(ABORT, 'no history'); END")
        with pytest.raises(StorageError, match=f"cannot finish match {match.id}: .*no.history"):
            await storage.finish_match(match.id, MatchStatus.FINISHED, None, results(match, [1.0, -1.0]),
                                       time.time(), logs=["a's log", "b's log"])
        stored = await storage.get_match(match.id)
        assert stored.status is MatchStatus.LIVE and stored.finished_at is None
        assert [s.status for s in stored.seats] == [None, None] and await storage.get_log(match.id, 0) is None
        assert await storage.get_ratings([a.id, b.id, c.id]) == before and history(db_url) == rows
        assert not is_rating_done(db_url, match.id)
        # Stored aborted instead, as the match manager does when its end cannot be stored.
        aborted = await storage.finish_match(match.id, MatchStatus.ABORTED, "aborted: cannot store its end",
                                             match.seats, time.time())
        assert aborted.status is MatchStatus.ABORTED and aborted.rating_changes == ()

        # A seat's agent is gone (behind the storage's back): the end is refused, with why.
        gone = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1), NewSeat(c.id, 1)], rated=True)
        await storage.set_match_live(gone.id, time.time())
        if is_postgres_url(db_url):
            PostgresServer.execute(db_url, "SET session_replication_role = replica;"
                                           f" DELETE FROM agent_versions WHERE agent_id = {c.id};"
                                           f" DELETE FROM agents WHERE id = {c.id}")
        else:
            query(db_url, f"DELETE FROM agent_versions WHERE agent_id = {c.id}")
            query(db_url, f"DELETE FROM agents WHERE id = {c.id}")
        with pytest.raises(StorageError, match=f"match {gone.id} cannot be rated: its agent {c.id} is gone"):
            await storage.finish_match(gone.id, MatchStatus.FINISHED, None, results(gone, [1.0, -1.0]), time.time())
        assert (await storage.get_match(gone.id)).status is MatchStatus.LIVE
        assert (await storage.get_ratings([a.id]))[a.id] == before[a.id] and history(db_url) == rows


async def test_matches_are_rated_in_the_order_they_ended(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        ended = [await finish(storage, pair, [1.0, -1.0]) for pair in ([a, b], [b, c], [c, a], [a, b], [c, b])]
        # Per agent, its history runs in the order its matches ended, each from the rating the one
        # before it left.
        for agent in (a, b, c):
            mine = [ch for record in ended for ch in record.rating_changes if ch.agent_id == agent.id]
            assert [ch.after.matches for ch in mine] == list(range(1, len(mine) + 1))
            assert [ch.after.last_match_id for ch in mine] == [r.id for r in ended if agent.id in
                                                                [s.agent_id for s in r.seats]]
            assert all(later.before == earlier.after for earlier, later in zip(mine, mine[1:], strict=False))
            rows = [row for row in history(db_url) if row[1] == agent.id]
            assert [row[0] for row in rows] == [ch.after.last_match_id for ch in mine]
        ratings = await storage.get_ratings([a.id, b.id, c.id])
        assert [ratings[x.id].matches for x in (a, b, c)] == [3, 4, 3]


async def test_the_backfill_rates_what_was_left_unrated_once_in_the_order_it_ended(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        left = [await finish_unrated(storage, db_url, pair, [1.0, -1.0]) for pair in ([a, b], [b, c], [c, a], [a, b])]
        first_two = await storage.rate_finished(limit=2)
        rest = await storage.rate_finished(limit=10)
        assert [m.match_id for m in first_two + rest] == left
        assert await storage.rate_finished(limit=10) == []
        assert all(is_rating_done(db_url, m) for m in left)
        # The same ratings and history as if they had been rated with their results.
        assert sorted(history(db_url)) == sorted(history_of(ch, m.match_id) for m in first_two + rest
                                                 for ch in m.changes)
        ratings = await storage.get_ratings([a.id, b.id, c.id])
        assert [ratings[x.id].matches for x in (a, b, c)] == [3, 3, 2]
        # One left unrated when the storage closes: rated on the next open, and only it.
        last = await finish_unrated(storage, db_url, [a, c], [0.0, 0.0])

    async with open_storage(db_url) as storage:
        (rated,) = await storage.rate_finished()
        assert rated.match_id == last and rated.game == "tictactoe"
        assert [ch.after.matches for ch in rated.changes] == [4, 3]
        assert await storage.rate_finished() == []


async def test_leaderboard_ranks_by_rating_with_standings(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        a, b, c = await three_agents(storage)
        user = await storage.create_user("bob", "h2")
        idle = await storage.save_agent(user.id, "idle", "tictactoe", "x")
        await storage.save_agent(user.id, "elsewhere", "connectx", "x")
        for pair in ([a, b], [a, c], [b, c], [a, b]):
            await finish(storage, pair, [1.0, -1.0])
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
        # The history starts empty with the upgrade; the backfill writes its rows.
        assert sorted(history(bare_db_url)) == sorted(history_of(ch, 1) for ch in rated.changes)
        board = await storage.leaderboard("tictactoe")
        assert [(row["name"], row["rated_matches"], row["matches"]) for row in board] == [("b", 1, 2), ("a", 1, 2)]
        assert [(await storage.get_match(m)).rated for m in (1, 2)] == [True, False]
    assert schema_version(backend, bare_db_url) == SCHEMA_VERSION
