"""The rated ladder in PostgreSQL: rating finished matches exactly once, reading ratings, the leaderboard.

Which matches are rated, and in what order, is as on SQLite (``_ratings.py``); the ratings are
computed by ``_ladder.rate_in_order``, the same code for both backends.

Exactly once, with several processes on one database. A rating pass is one transaction that
first takes a transaction-level advisory lock (``_RATER_LOCK``): passes never overlap, in this
process or any other, and the lock goes with the commit or the rollback (a rater that dies
mid-pass holds nothing). Under READ COMMITTED each statement reads what was committed before
it began, so a pass that waited for the lock sees the previous pass's work: the matches it
marked ``rating_done`` are no longer candidates, and the ratings it wrote are the ones this
pass starts from. The new ratings and the marks commit together, so a crash before the commit
leaves nothing half done and the matches are picked again; after it they never are. The mark
itself is conditional (``AND NOT rating_done``) and counted, a guard that fails the pass
rather than rate a match twice should the lock ever be bypassed. Serializing passes costs
nothing that matters: one rater runs in the cluster, and a pass is a few statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import StorageError

from ._ladder import _RATINGS_SELECT, RatedSeat, _rating, leaderboard_rows, rate_in_order
from ._pg_schema import Conn
from ._rows import _is_row_id, _standings_table
from .base import RatedMatch, RatingRecord

__all__: list[str] = []

# pg_advisory_xact_lock key: the arena's rating passes ("arena" + 2, as an int64).
_RATER_LOCK = 0x6172656E6102

_TO_RATE = """
    SELECT id, game FROM matches WHERE status = 'finished' AND NOT rating_done
    ORDER BY finished_at, id LIMIT $1
"""
_SEATS = """
    SELECT s.match_id, s.agent_id, s.reward, a.name, u.name
    FROM match_seats s JOIN agents a ON a.id = s.agent_id JOIN users u ON u.id = a.user_id
    WHERE s.match_id = ANY($1::bigint[]) ORDER BY s.match_id, s.seat
"""
_UPSERT = """
    INSERT INTO ratings (agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (agent_id) DO UPDATE SET
        game = excluded.game, mu = excluded.mu, sigma = excluded.sigma, rating = excluded.rating,
        matches = excluded.matches, updated_at = excluded.updated_at, last_match_id = excluded.last_match_id
"""
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
    seats: dict[int, list[RatedSeat]] = {}
    for match_id, agent_id, reward, name, owner in await conn.fetch(_SEATS, ids):
        seats.setdefault(match_id, []).append((agent_id, reward, name, owner))
    ratings = await get_ratings(conn, [seat[0] for rows in seats.values() for seat in rows])
    done, changed = rate_in_order(matches, seats, ratings, now)
    await conn.executemany(_UPSERT, [(r.agent_id, r.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at,
                                      r.last_match_id) for r in changed])
    marked = await conn.execute(
        "UPDATE matches SET rating_done = true WHERE id = ANY($1::bigint[]) AND NOT rating_done", ids)
    if int(marked.split()[-1]) != len(ids):  # "UPDATE n"
        raise StorageError(f"matches {ids} were rated meanwhile by another rater; this pass is undone")
    return done


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
