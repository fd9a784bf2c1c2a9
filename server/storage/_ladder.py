"""The ladder's bookkeeping, whatever the backend: rating finished matches in order, their
rows in the rating history, and the leaderboard from standings and ratings.

No I/O here. Each backend (``_ratings.py``, ``_pg_ratings.py``) reads, in its write
transaction, the seats of the matches to rate with the stored ratings of their agents
(:func:`seats_to_rate`; on PostgreSQL the seats of a match whose end is being stored come
with its record, :func:`seats_of`); hands them to :func:`rate_in_order`, which applies the rule of
``server/ladder/rules.py`` one match after the other (a match sees the ratings the matches
before it left); and writes back the ratings it returns and their history rows
(:func:`history_rows`), with the matches marked rated, in the same commit. What the history
holds reads back as the same changes (:func:`history_changes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import StorageError
from server.ladder.rules import DEFAULT_SKILL, Skill, is_rated_match, rate_match

from .base import MatchRecord, RatedMatch, RatingChange, RatingRecord

__all__: list[str] = []

# The same SQL on both backends: an agent's rating row, NULLs when it has none yet.
_RATINGS_SELECT = """
    SELECT a.id, a.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at, r.last_match_id
    FROM agents a LEFT JOIN ratings r ON r.agent_id = a.id
"""

# One seat of a match to rate: (agent_id, reward, agent name, owner name).
RatedSeat = tuple[int, float | None, str, str]

# The columns of a seat to rate that both backends select, in the order seats_to_rate reads
# them (the match's seats in seat order, the agent outer-joined, so that a seat whose agent row
# is gone is seen rather than left out): match id, agent id, reward, agent and owner names,
# then the agent's rating as _RATINGS_SELECT has it from its game on.
_SEATS_TO_RATE = """
    SELECT s.match_id, s.agent_id, s.reward, a.name, u.name,
           a.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at, r.last_match_id
    FROM match_seats s LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN users u ON u.id = a.user_id
    LEFT JOIN ratings r ON r.agent_id = s.agent_id
"""
_HISTORY_COLUMNS = ("match_id, agent_id, game, mu_before, sigma_before, rating_before, mu, sigma, rating, matches,"
                    " rated_at")
# The rating changes the history holds, with the names they are announced under and the
# agent's previous row (its last rated match before, when the history has it); each backend
# adds its WHERE (on h) and orders by match and seat.
_HISTORY_SELECT = """
    SELECT h.match_id, h.agent_id, a.name, u.name, h.game, h.mu_before, h.sigma_before, h.rating_before,
           h.mu, h.sigma, h.rating, h.matches, h.rated_at, p.match_id, p.rated_at
    FROM rating_history h JOIN match_seats s ON s.match_id = h.match_id AND s.agent_id = h.agent_id
    JOIN agents a ON a.id = h.agent_id JOIN users u ON u.id = a.user_id
    LEFT JOIN rating_history p ON p.agent_id = h.agent_id AND p.matches = h.matches - 1
"""


def _rating(row: Any) -> RatingRecord:
    """A rating from a row of ``_RATINGS_SELECT``: the model's default for an agent without one."""
    agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id = row
    if mu is None:  # no rated match yet
        return RatingRecord(agent_id, game, DEFAULT_SKILL.mu, DEFAULT_SKILL.sigma, DEFAULT_SKILL.rating)
    return RatingRecord(agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)


def seats_to_rate(rows: Sequence[Any]) -> tuple[dict[int, list[RatedSeat]], dict[int, RatingRecord]]:
    """The seats of each match (in the rows' order) and the rating of each agent, from rows of
    ``_SEATS_TO_RATE``.

    Raises:
        StorageError: a seat's agent (or its owner) is gone: the match cannot be rated.
    """
    seats: dict[int, list[RatedSeat]] = {}
    ratings: dict[int, RatingRecord] = {}
    for match_id, agent_id, reward, name, owner, *rating in rows:
        if name is None or owner is None:
            raise StorageError(f"match {match_id} cannot be rated: its agent {agent_id} is gone")
        seats.setdefault(match_id, []).append((agent_id, reward, name, owner))
        ratings[agent_id] = _rating((agent_id, *rating))
    return seats, ratings


def seats_of(record: MatchRecord) -> dict[int, list[RatedSeat]]:
    """The seats of a match whose result is being stored, as :func:`rate_in_order` takes them.

    Raises:
        StorageError: a seat's agent (or its owner) is gone: the match cannot be rated.
    """
    for seat in record.seats:
        if seat.agent_name is None or seat.owner is None:
            raise StorageError(f"match {record.id} cannot be rated: its agent {seat.agent_id} is gone")
    return {record.id: [(s.agent_id, s.reward, s.agent_name, s.owner) for s in record.seats]}


def history_rows(done: Sequence[RatedMatch]) -> list[tuple[Any, ...]]:
    """The rating history's rows (``_HISTORY_COLUMNS``) of these rated matches: one per change."""
    return [(match.match_id, c.agent_id, c.after.game, c.before.mu, c.before.sigma, c.before.rating, c.after.mu,
             c.after.sigma, c.after.rating, c.after.matches, c.after.updated_at)
            for match in done for c in match.changes]


def history_changes(rows: Sequence[Any]) -> dict[int, RatedMatch]:
    """The rated matches in rows of ``_HISTORY_SELECT`` (by match, then seat), by match id.

    A change read back is the one stored, but for the ``updated_at`` and ``last_match_id`` of
    its ``before``: those come from the agent's previous row, so they are None for the first
    rating the history holds of an agent rated before it was kept (schema version 7).
    """
    rated: dict[int, RatedMatch] = {}
    for row in rows:
        (match_id, agent_id, name, owner, game, mu_before, sigma_before, rating_before, mu, sigma, rating, matches,
         rated_at, previous_match, previous_at) = row
        before = RatingRecord(agent_id, game, mu_before, sigma_before, rating_before, matches - 1, previous_at,
                              previous_match)
        after = RatingRecord(agent_id, game, mu, sigma, rating, matches, rated_at, match_id)
        rated.setdefault(match_id, RatedMatch(match_id, game, [])).changes.append(
            RatingChange(agent_id, name, owner, before, after))
    return rated


def rate_in_order(
    matches: Sequence[tuple[int, str]], seats: Mapping[int, Sequence[RatedSeat]], ratings: dict[int, RatingRecord],
    now: float,
) -> tuple[list[RatedMatch], list[RatingRecord]]:
    """Rate ``matches`` (``(id, game)``, in the order they ended), each from the ratings the
    ones before it left, so matches sharing an agent apply in order.

    ``seats`` gives each match's seats in seat order; ``ratings`` the stored rating of every
    agent in them (it is updated as matches are applied). Returns the rated matches, in order
    (one with the same agent in every seat has no changes), and the ratings to store: the
    latest of every agent that changed.
    """
    done: list[RatedMatch] = []
    changed: dict[int, RatingRecord] = {}
    for match_id, game in matches:
        rows = seats.get(match_id, ())
        agent_ids = [row[0] for row in rows]
        if not is_rated_match(agent_ids):
            done.append(RatedMatch(match_id, game, []))
            continue
        before = [ratings[agent_id] for agent_id in agent_ids]
        skills = rate_match([Skill(r.mu, r.sigma) for r in before], [row[1] for row in rows])
        changes: list[RatingChange] = []
        for (agent_id, _, name, owner), old, skill in zip(rows, before, skills, strict=True):
            new = RatingRecord(agent_id, old.game, skill.mu, skill.sigma, skill.rating, old.matches + 1, now, match_id)
            ratings[agent_id] = changed[agent_id] = new
            changes.append(RatingChange(agent_id, name, owner, old, new))
        done.append(RatedMatch(match_id, game, changes))
    return done, list(changed.values())


def leaderboard_rows(standings: Sequence[dict[str, Any]], ratings: Mapping[int, RatingRecord]) -> list[dict[str, Any]]:
    """Every agent of the standings, ranked by displayed rating (more rated matches first on a tie).

    Unrated agents carry the default rating and rank among the others by it, so the list is
    always ordered by the number it shows. Each row: ``rank``, ``agent_id``, ``name``,
    ``owner``, ``version``, ``rating``, ``mu``, ``sigma``, ``rated_matches``, and the
    standings' ``matches``, ``wins``, ``draws``, ``losses``, ``faults`` and ``points`` (every
    finished match, once per agent) and ``rated_wins``, ``rated_draws``, ``rated_losses`` (the
    rated ones, which ``rated_matches`` counts once the rater has caught up).
    """
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
