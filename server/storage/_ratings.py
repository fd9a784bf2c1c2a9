"""The rated ladder in SQLite: rating finished matches exactly once, reading ratings, the leaderboard.

Only matches stored ``rated`` (the scheduler's ladder matches between distinct agents; see
``SqliteStorage.create_match``) are ever rated: every other match is stored with
``rating_done = 1`` and never reaches the queue below.

A rated match is rated in the write transaction that stores its result
(``_matches.finish_match`` calls :func:`rate_match`), so it is never finished but unrated,
even across a crash, and matches are rated in the order their results were stored. Rating
reads the match's seats with their agents' ratings, rates it with ``_ladder.rate_in_order``,
writes the new ratings and one row per seat into ``rating_history``, and sets ``rating_done
= 1``: all in the one commit, or nothing (a seat whose agent is gone fails the whole end). A
write holds SQLite's write lock from its first statement (``BEGIN IMMEDIATE``), so no other
writer, in this process or another, interleaves.

:func:`rate_finished` is the backfill for finished matches left unrated (a database from
before, or a result stored by an older program): it takes the oldest of them in the order
they ended and rates them the same way in one transaction. A crash before the commit leaves
nothing half done and the matches are picked again on the next call; after it they never are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ._ladder import (
    _HISTORY_COLUMNS,
    _RATINGS_SELECT,
    _SEATS_TO_RATE,
    RatedSeat,
    _rating,
    history_rows,
    leaderboard_rows,
    rate_in_order,
    seats_to_rate,
)
from ._rows import _is_row_id, _standings_table
from .base import MatchRecord, MatchStatus, RatedMatch, RatingRecord

__all__: list[str] = []

# Literal 'finished' and 0: the planner uses the partial index matches_to_rate only then.
_TO_RATE = """
    SELECT id, game FROM matches WHERE status = 'finished' AND rating_done = 0
    ORDER BY finished_at, id LIMIT ?
"""
_SEATS = _SEATS_TO_RATE + " WHERE s.match_id IN ({marks}) ORDER BY s.match_id, s.seat"
_HISTORY = f"INSERT INTO rating_history ({_HISTORY_COLUMNS}) VALUES ({', '.join('?' * 11)})"
_UPSERT = """
    INSERT INTO ratings (agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET
        game = excluded.game, mu = excluded.mu, sigma = excluded.sigma, rating = excluded.rating,
        matches = excluded.matches, updated_at = excluded.updated_at, last_match_id = excluded.last_match_id
"""
# Per agent of a game: its results in finished matches, best first (see SqliteStorage.standings).
# One match counts once per agent, however many of its seats the agent holds: ``mine`` folds an
# agent's seats of a match into its best reward and whether any of them faulted; ``others``
# counts the seats of other agents (none: a match against itself, which is a draw).
_STANDINGS = """
    WITH mine AS (
        SELECT s.match_id, s.agent_id, m.rated, max(s.reward) AS reward,
               max(s.status IN ('TIMEOUT', 'ERROR', 'INVALID')) AS faulted
        FROM match_seats s JOIN matches m ON m.id = s.match_id
        WHERE m.status = ? AND m.game = ?
        GROUP BY s.match_id, s.agent_id
    ), against AS (
        SELECT r.agent_id, r.rated, r.faulted, r.reward,
               (SELECT max(s.reward) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id != r.agent_id) AS best_other,
               (SELECT count(*) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id != r.agent_id) AS others
        FROM mine r
    ), results AS (
        SELECT agent_id, rated, faulted,
               others > 0 AND reward > coalesce(best_other, -1e308) AS won,
               others = 0 OR reward = best_other AS drew
        FROM against
    ), tally AS (
        SELECT a.id, a.name, u.name AS owner, a.version,
               count(r.agent_id) AS matches,
               coalesce(sum(r.won), 0) AS wins,
               coalesce(sum(r.drew), 0) AS draws,
               coalesce(sum(r.faulted), 0) AS faults,
               coalesce(sum(r.rated), 0) AS rated,
               coalesce(sum(r.rated AND r.won), 0) AS rated_wins,
               coalesce(sum(r.rated AND r.drew), 0) AS rated_draws
        FROM agents a JOIN users u ON u.id = a.user_id LEFT JOIN results r ON r.agent_id = a.id
        WHERE a.game = ?
        GROUP BY a.id
    )
    SELECT id, name, owner, version, matches, wins, draws, matches - wins - draws, faults,
           rated_wins, rated_draws, rated - rated_wins - rated_draws
    FROM tally
    ORDER BY matches = 0, wins + 0.5 * draws DESC, wins DESC, matches, id
"""


def _standings(db: sqlite3.Connection, game: str) -> list[dict[str, Any]]:
    """The standings of ``game`` (see SqliteStorage.standings), best first."""
    return _standings_table(db.execute(_STANDINGS, (MatchStatus.FINISHED.value, game, game)).fetchall())


def rate_finished(db: sqlite3.Connection, limit: int, now: float) -> list[RatedMatch]:
    """Rate up to ``limit`` finished rated matches not rated yet, oldest end first; the caller commits."""
    matches = [(row[0], row[1]) for row in db.execute(_TO_RATE, (max(1, limit),)).fetchall()]
    if not matches:
        return []
    marks = ", ".join("?" * len(matches))
    seats, ratings = seats_to_rate(db.execute(_SEATS.format(marks=marks), [m[0] for m in matches]).fetchall())
    done = _store(db, matches, seats, ratings, now)
    db.executemany("UPDATE matches SET rating_done = 1 WHERE id = ?", [(m.match_id,) for m in done])
    return done


def rate_match(db: sqlite3.Connection, record: MatchRecord, now: float) -> RatedMatch:
    """Rate the match whose result this transaction stores (and marks rated); the caller commits.
    Its seats are read again with their ratings, in one statement that sees a seat whose agent
    is gone (the record leaves such a seat out).

    Raises:
        StorageError: a seat's agent is gone.
    """
    seats, ratings = seats_to_rate(db.execute(_SEATS.format(marks="?"), (record.id,)).fetchall())
    (done,) = _store(db, [(record.id, record.game)], seats, ratings, now)
    return done


def _store(
    db: sqlite3.Connection, matches: Sequence[tuple[int, str]], seats: Mapping[int, Sequence[RatedSeat]],
    ratings: dict[int, RatingRecord], now: float,
) -> list[RatedMatch]:
    """Rate ``matches`` (``(id, game)``, in order) from their agents' ``ratings``; write the new
    ratings and their history rows."""
    done, changed = rate_in_order(matches, seats, ratings, now)
    db.executemany(_UPSERT, [(r.agent_id, r.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at, r.last_match_id)
                             for r in changed])
    db.executemany(_HISTORY, history_rows(done))
    return done


def get_ratings(db: sqlite3.Connection, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
    """The ratings of these agents, the default for an unrated one; unknown ids are left out."""
    ids = sorted({a for a in agent_ids if _is_row_id(a)})
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"{_RATINGS_SELECT} WHERE a.id IN ({marks})", ids).fetchall()
    return {row[0]: _rating(row) for row in rows}


def leaderboard(db: sqlite3.Connection, game: str) -> list[dict[str, Any]]:
    """Every agent of ``game``, ranked as ``_ladder.leaderboard_rows`` says, with its standings.
    Two statements: the caller reads them in one snapshot."""
    standings = _standings(db, game)
    rows = db.execute(f"{_RATINGS_SELECT} WHERE a.game = ?", (game,)).fetchall()
    return leaderboard_rows(standings, {row[0]: _rating(row) for row in rows})


def ladder_matches_of_versions(db: sqlite3.Connection, versions: Mapping[int, int]) -> dict[int, int]:
    """For each ``agent id -> version``, how many rated matches that version has played or is
    playing (aborted ones not counted); an agent without any is left out."""
    pairs = [(agent, version) for agent, version in versions.items() if _is_row_id(agent)]
    if not pairs:
        return {}
    ids = sorted({agent for agent, _ in pairs})
    marks = ", ".join("?" * len(ids))
    rows = db.execute(
        f"""SELECT s.agent_id, s.version, COUNT(*) FROM match_seats s JOIN matches m ON m.id = s.match_id
            WHERE s.agent_id IN ({marks}) AND m.rated = 1 AND m.status != 'aborted'
            GROUP BY s.agent_id, s.version""", ids).fetchall()
    return {agent: count for agent, version, count in rows if versions.get(agent) == version}


def ladder_ends_since(db: sqlite3.Connection, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
    """``(game, finished_at, agent ids)`` of every rated match finished after ``since``, oldest first."""
    rows = db.execute(
        "SELECT m.game, m.finished_at, group_concat(s.agent_id) FROM matches m JOIN match_seats s ON s.match_id = m.id "
        "WHERE m.rated = 1 AND m.status = 'finished' AND m.finished_at > ? GROUP BY m.id ORDER BY m.finished_at",
        (since,)).fetchall()
    return [(game, finished_at, tuple(int(a) for a in str(agents).split(","))) for game, finished_at, agents in rows]
