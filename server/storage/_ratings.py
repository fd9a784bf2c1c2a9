"""The rated ladder in SQLite: rating finished matches exactly once, reading ratings, the leaderboard.

Only matches stored ``rated`` (the scheduler's ladder matches between distinct agents; see
``SqliteStorage.create_match``) are ever rated: every other match is stored with
``rating_done = 1`` and never reaches the queue below.

Rating runs inside the caller's write transaction (in the database thread, like every
function here): it reads the oldest finished matches whose
``rating_done`` is 0, rates each with ``server.ladder.rules.rate_match`` from the ratings as stored
(so matches sharing an agent are applied in order), writes the new ratings and sets
``rating_done = 1``, all in one commit. A crash before the commit leaves nothing half done and
the matches are picked again on the next call; after it they never are. Matches are taken in
the order they ended, which is the order their results became known.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from server.ladder.rules import DEFAULT_SKILL, Skill, is_rated_match, rate_match

from ._rows import _is_row_id, _standings
from .base import RatedMatch, RatingChange, RatingRecord

__all__: list[str] = []

# Literal 'finished' and 0: the planner uses the partial index matches_to_rate only then.
_TO_RATE = """
    SELECT id, game FROM matches WHERE status = 'finished' AND rating_done = 0
    ORDER BY finished_at, id LIMIT ?
"""
_SEATS = """
    SELECT s.agent_id, s.reward, a.name, u.name
    FROM match_seats s JOIN agents a ON a.id = s.agent_id JOIN users u ON u.id = a.user_id
    WHERE s.match_id = ? ORDER BY s.seat
"""
_RATINGS_SELECT = """
    SELECT a.id, a.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at, r.last_match_id
    FROM agents a LEFT JOIN ratings r ON r.agent_id = a.id
"""
_UPSERT = """
    INSERT INTO ratings (agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET
        game = excluded.game, mu = excluded.mu, sigma = excluded.sigma, rating = excluded.rating,
        matches = excluded.matches, updated_at = excluded.updated_at, last_match_id = excluded.last_match_id
"""


def rate_finished(db: sqlite3.Connection, limit: int, now: float) -> list[RatedMatch]:
    """Rate up to ``limit`` finished rated matches not rated yet, oldest end first; the caller commits."""
    rows = db.execute(_TO_RATE, (max(1, limit),)).fetchall()
    done = [_rate_one(db, match_id, game, now) for match_id, game in rows]
    db.executemany("UPDATE matches SET rating_done = 1 WHERE id = ?", [(m.match_id,) for m in done])
    return done


def _rate_one(db: sqlite3.Connection, match_id: int, game: str, now: float) -> RatedMatch:
    seats = db.execute(_SEATS, (match_id,)).fetchall()
    agent_ids = [row[0] for row in seats]
    if not is_rated_match(agent_ids):
        return RatedMatch(match_id, game, [])
    before = get_ratings(db, agent_ids)
    skills = rate_match([Skill(before[a].mu, before[a].sigma) for a in agent_ids], [row[1] for row in seats])
    changes: list[RatingChange] = []
    for (agent_id, _, name, owner), skill in zip(seats, skills, strict=True):
        old = before[agent_id]
        new = RatingRecord(agent_id, old.game, skill.mu, skill.sigma, skill.rating, old.matches + 1, now, match_id)
        db.execute(_UPSERT, (agent_id, new.game, new.mu, new.sigma, new.rating, new.matches, now, match_id))
        changes.append(RatingChange(agent_id, name, owner, old, new))
    return RatedMatch(match_id, game, changes)


def get_ratings(db: sqlite3.Connection, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
    """The ratings of these agents, the default for an unrated one; unknown ids are left out."""
    ids = sorted({a for a in agent_ids if _is_row_id(a)})
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"{_RATINGS_SELECT} WHERE a.id IN ({marks})", ids).fetchall()
    return {row[0]: _rating(row) for row in rows}


def leaderboard(db: sqlite3.Connection, game: str) -> list[dict[str, Any]]:
    """Every agent of ``game``, ranked by displayed rating (more rated matches first on a tie).

    Unrated agents carry the default rating and rank among the others by it, so the list is
    always ordered by the number it shows. Each row: ``rank``, ``agent_id``, ``name``,
    ``owner``, ``version``, ``rating``, ``mu``, ``sigma``, ``rated_matches``, and the
    standings' ``matches``, ``wins``, ``draws``, ``losses``, ``faults`` and ``points`` (every
    finished match, once per agent) and ``rated_wins``, ``rated_draws``, ``rated_losses`` (the
    rated ones, which ``rated_matches`` counts once the rater has caught up). Two statements:
    the caller reads them in one snapshot.
    """
    standings = _standings(db, game)
    rows = db.execute(f"{_RATINGS_SELECT} WHERE a.game = ?", (game,)).fetchall()
    ratings = {row[0]: _rating(row) for row in rows}
    board: list[dict[str, Any]] = []
    for doc in standings:
        r = ratings[doc["agent_id"]]
        board.append({
            "agent_id": doc["agent_id"], "name": doc["name"], "owner": doc["owner"], "version": doc["version"],
            "rating": r.rating, "mu": r.mu, "sigma": r.sigma, "rated_matches": r.matches,
            **{k: doc[k] for k in ("matches", "wins", "draws", "losses", "faults", "points", "rated_wins",
                                   "rated_draws", "rated_losses")},
        })
    board.sort(key=lambda d: (-d["rating"], -d["rated_matches"], d["agent_id"]))
    return [{"rank": i, **doc} for i, doc in enumerate(board, start=1)]


def _rating(row: Any) -> RatingRecord:
    agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id = row
    if mu is None:  # no rated match yet
        return RatingRecord(agent_id, game, DEFAULT_SKILL.mu, DEFAULT_SKILL.sigma, DEFAULT_SKILL.rating)
    return RatingRecord(agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)


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
