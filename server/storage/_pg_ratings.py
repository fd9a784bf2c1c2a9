"""The rated ladder in PostgreSQL: rating finished matches exactly once, reading ratings, the leaderboard.

Which matches are rated, when and in what order, is as on SQLite (``_ratings.py``): a rated
match is rated in the transaction that stores its result (``_pg_matches.finish_match`` calls
:func:`rate_match`), and :func:`rate_finished` is the backfill for finished matches left
unrated. The ratings are computed by ``_ladder.rate_in_order``, the same code for both
backends; the new ratings, their rows in ``rating_history`` and the mark ``rating_done``
commit together, or none of them does.

Exactly once. A match's end locks its row first (``_pg_matches.finish_match``), so only one
end is stored, and that one rates it: ``rating_done`` is set in the same transaction, so no
backfill pass ever picks it. Backfill passes never overlap, in this process or any other:
each first takes a transaction-level advisory lock (``_RATER_LOCK``), which goes with the
commit or the rollback (a rater that dies mid-pass holds nothing); a pass that waited for it
sees the previous pass's marks. The mark is conditional (``AND NOT rating_done``) and
counted, and ``rating_history``'s key is (match, agent): two guards that fail a pass rather
than rate a match twice should the lock ever be bypassed.

No lost update. Two workers finishing matches of one agent at once, or a worker and a
backfill pass, must not both start from the same stored rating. Every rating therefore first
locks its agents' rows (``agents``, ``FOR NO KEY UPDATE``; an agent's ``ratings`` row does not
exist before its first rated match, so it cannot be what is locked), in agent id order so that
two transactions locking overlapping sets never wait on each other in a circle; and only then,
in a statement of its own, reads the ratings: under READ COMMITTED a statement sees what was
committed before it began, so the read after the lock sees the rating the previous holder
wrote (a read in the locking statement itself would see the snapshot from before the wait).
``FOR NO KEY UPDATE`` does not block the key-share locks of foreign keys, so matches of these
agents are still created meanwhile. Of two matches sharing an agent, the one whose end locks
first is rated first, which is the order their results are stored in. A backfill pass takes
the advisory lock before any agent, and a match's end takes its match row before its agents
and never waits for the advisory lock, so the locks are always taken in one order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import StorageError

from ._ladder import (
    _HISTORY_COLUMNS,
    _HISTORY_SELECT,
    _RATINGS_SELECT,
    _SEATS_TO_RATE,
    RatedSeat,
    _rating,
    history_changes,
    history_rows,
    leaderboard_rows,
    rate_in_order,
    seats_of,
    seats_to_rate,
)
from ._pg_notify import notify_rated
from ._pg_schema import Conn
from ._rows import _is_row_id, _standings_table
from .base import MatchRecord, RatedMatch, RatingRecord

__all__: list[str] = []

# pg_advisory_xact_lock key: the arena's rating passes ("arena" + 2, as an int64).
_RATER_LOCK = 0x6172656E6102

_TO_RATE = """
    SELECT id, game FROM matches WHERE status = 'finished' AND NOT rating_done
    ORDER BY finished_at, id LIMIT $1
"""
_SEATS = _SEATS_TO_RATE + " WHERE s.match_id = ANY($1::bigint[]) ORDER BY s.match_id, s.seat"
# Agents locked in id order (see "No lost update" above): these, or those of these matches.
_LOCK_AGENTS = "SELECT id FROM agents WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"
_LOCK_AGENTS_OF = """
    SELECT id FROM agents WHERE id IN (SELECT agent_id FROM match_seats WHERE match_id = ANY($1::bigint[]))
    ORDER BY id FOR NO KEY UPDATE
"""
# The new ratings and their history rows, in one statement (one round trip). Each agent is in
# the ratings once (the latest of a batch), so no row is affected twice.
_STORE = f"""
    WITH stored AS (
        INSERT INTO ratings (agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::bigint[],
                             $7::float8[], $8::bigint[])
        ON CONFLICT (agent_id) DO UPDATE SET
            game = excluded.game, mu = excluded.mu, sigma = excluded.sigma, rating = excluded.rating,
            matches = excluded.matches, updated_at = excluded.updated_at, last_match_id = excluded.last_match_id
    )
    INSERT INTO rating_history ({_HISTORY_COLUMNS})
    SELECT * FROM unnest($9::bigint[], $10::bigint[], $11::text[], $12::float8[], $13::float8[], $14::float8[],
                         $15::float8[], $16::float8[], $17::float8[], $18::bigint[], $19::float8[])
"""
_HISTORY = _HISTORY_SELECT + " WHERE h.match_id = ANY($1::bigint[]) ORDER BY h.match_id, s.seat"
# The standings of SQLite's _ratings._STANDINGS, in PostgreSQL's words (bool_or for max of a
# truth value, counts with FILTER for sums of them).
_STANDINGS = """
    WITH mine AS (
        SELECT s.match_id, s.agent_id, m.rated, max(s.reward) AS reward,
               bool_or(s.status IN ('TIMEOUT', 'ERROR', 'INVALID')) AS faulted
        FROM match_seats s JOIN matches m ON m.id = s.match_id
        WHERE m.status = 'finished' AND m.game = $1
        GROUP BY s.match_id, s.agent_id, m.rated
    ), against AS (
        SELECT r.agent_id, r.rated, r.faulted, r.reward,
               (SELECT max(s.reward) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id <> r.agent_id) AS best_other,
               (SELECT count(*) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id <> r.agent_id) AS others
        FROM mine r
    ), results AS (
        SELECT agent_id, rated, faulted,
               others > 0 AND reward > coalesce(best_other, -1e308) AS won,
               others = 0 OR reward = best_other AS drew
        FROM against
    ), tally AS (
        SELECT a.id, a.name, u.name AS owner, a.version,
               count(r.agent_id) AS matches,
               count(*) FILTER (WHERE r.won) AS wins,
               count(*) FILTER (WHERE r.drew) AS draws,
               count(*) FILTER (WHERE r.faulted) AS faults,
               count(*) FILTER (WHERE r.rated) AS rated,
               count(*) FILTER (WHERE r.rated AND r.won) AS rated_wins,
               count(*) FILTER (WHERE r.rated AND r.drew) AS rated_draws
        FROM agents a JOIN users u ON u.id = a.user_id LEFT JOIN results r ON r.agent_id = a.id
        WHERE a.game = $1
        GROUP BY a.id, u.name
    )
    SELECT id, name, owner, version, matches, wins, draws, matches - wins - draws, faults,
           rated_wins, rated_draws, rated - rated_wins - rated_draws
    FROM tally
    ORDER BY matches = 0, wins + 0.5 * draws DESC, wins DESC, matches, id
"""


async def standings(conn: Conn, game: str) -> list[dict[str, Any]]:
    """The standings of ``game`` (see SqliteStorage.standings), best first."""
    return _standings_table(await conn.fetch(_STANDINGS, game))


async def rate_finished(conn: Conn, limit: int, now: float) -> list[RatedMatch]:
    """Rate up to ``limit`` finished rated matches not rated yet, oldest end first; the caller commits."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _RATER_LOCK)
    matches = [(row[0], row[1]) for row in await conn.fetch(_TO_RATE, max(1, limit))]
    if not matches:
        return []
    ids = [match_id for match_id, _ in matches]
    await conn.execute(_LOCK_AGENTS_OF, ids)
    seats, ratings = seats_to_rate(await conn.fetch(_SEATS, ids))  # read once locked
    done = await _store(conn, matches, seats, ratings, now)
    marked = await conn.execute(
        "UPDATE matches SET rating_done = true WHERE id = ANY($1::bigint[]) AND NOT rating_done", ids)
    if int(marked.split()[-1]) != len(ids):  # "UPDATE n"
        raise StorageError(f"matches {ids} were rated meanwhile by another rater; this pass is undone")
    await notify_rated(conn, ids)
    return done


async def rate_match(conn: Conn, record: MatchRecord, now: float) -> RatedMatch:
    """Rate the match whose result this transaction stores (and marks rated), from its record:
    three statements (lock its agents, read their ratings, store); the caller commits.

    Raises:
        StorageError: a seat's agent is gone.
    """
    seats = seats_of(record)
    agent_ids = sorted({seat[0] for seat in seats[record.id]})
    await conn.execute(_LOCK_AGENTS, agent_ids)
    (done,) = await _store(conn, [(record.id, record.game)], seats, await get_ratings(conn, agent_ids), now)
    return done


async def _store(
    conn: Conn, matches: Sequence[tuple[int, str]], seats: Mapping[int, Sequence[RatedSeat]],
    ratings: dict[int, RatingRecord], now: float,
) -> list[RatedMatch]:
    """Rate ``matches`` (``(id, game)``, in order) from their agents' locked ``ratings``; write
    the new ratings and their history rows."""
    done, changed = rate_in_order(matches, seats, ratings, now)
    history = history_rows(done)
    if changed or history:
        await conn.execute(_STORE, *_columns([(r.agent_id, r.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at,
                                                r.last_match_id) for r in changed], 8), *_columns(history, 11))
    return done


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column arrays, the parameters of an ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


async def rating_changes(conn: Conn, match_ids: Sequence[int]) -> dict[int, RatedMatch]:
    """The rating changes of these matches as the history holds them, by match (each in seat
    order); a match without any (not rated, or not yet) is left out."""
    ids = sorted({m for m in match_ids if _is_row_id(m)})
    if not ids:
        return {}
    return history_changes(await conn.fetch(_HISTORY, ids))


async def get_ratings(conn: Conn, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
    """The ratings of these agents, the default for an unrated one; unknown ids are left out."""
    ids = sorted({a for a in agent_ids if _is_row_id(a)})
    if not ids:
        return {}
    rows = await conn.fetch(f"{_RATINGS_SELECT} WHERE a.id = ANY($1::bigint[])", ids)
    return {row[0]: _rating(row) for row in rows}


async def leaderboard(conn: Conn, game: str) -> list[dict[str, Any]]:
    """Every agent of ``game``, ranked as ``_ladder.leaderboard_rows`` says, with its standings.
    Two statements: the caller reads them in one snapshot."""
    table = await standings(conn, game)
    rows = await conn.fetch(f"{_RATINGS_SELECT} WHERE a.game = $1", game)
    return leaderboard_rows(table, {row[0]: _rating(row) for row in rows})


async def ladder_matches_of_versions(conn: Conn, versions: Mapping[int, int]) -> dict[int, int]:
    """For each ``agent id -> version``, how many rated matches that version has played or is
    playing (aborted ones not counted); an agent without any is left out."""
    ids = sorted({agent for agent in versions if _is_row_id(agent)})
    if not ids:
        return {}
    rows = await conn.fetch(
        """SELECT s.agent_id, s.version, count(*) FROM match_seats s JOIN matches m ON m.id = s.match_id
           WHERE s.agent_id = ANY($1::bigint[]) AND m.rated AND m.status <> 'aborted'
           GROUP BY s.agent_id, s.version""", ids)
    return {agent: count for agent, version, count in rows if versions.get(agent) == version}


async def ladder_ends_since(conn: Conn, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
    """``(game, finished_at, agent ids)`` of every rated match finished after ``since``, oldest first."""
    rows = await conn.fetch(
        "SELECT m.game, m.finished_at, array_agg(s.agent_id ORDER BY s.seat)"
        " FROM matches m JOIN match_seats s ON s.match_id = m.id"
        " WHERE m.rated AND m.status = 'finished' AND m.finished_at > $1"
        " GROUP BY m.id ORDER BY m.finished_at, m.id", since)
    return [(game, finished_at, tuple(agents)) for game, finished_at, agents in rows]
