"""The ladder's bookkeeping, whatever the backend: rating a batch of finished matches in order,
and the leaderboard from standings and ratings.

No I/O here. Each backend (``_ratings.py``, ``_pg_ratings.py``) reads, in its write
transaction, the matches to rate, their seats and the stored ratings of their agents; hands
them to :func:`rate_in_order`, which applies the rule of ``server/ladder/rules.py`` one match
after the other (a match sees the ratings the matches before it left); and writes back the
ratings it returns, with the matches marked rated, in the same commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server.ladder.rules import DEFAULT_SKILL, Skill, is_rated_match, rate_match

from .base import RatedMatch, RatingChange, RatingRecord

__all__: list[str] = []

# The same SQL on both backends: an agent's rating row, NULLs when it has none yet.
_RATINGS_SELECT = """
    SELECT a.id, a.game, r.mu, r.sigma, r.rating, r.matches, r.updated_at, r.last_match_id
    FROM agents a LEFT JOIN ratings r ON r.agent_id = a.id
"""

# One seat of a match to rate: (agent_id, reward, agent name, owner name).
RatedSeat = tuple[int, float | None, str, str]


def _rating(row: Any) -> RatingRecord:
    """A rating from a row of ``_RATINGS_SELECT``: the model's default for an agent without one."""
    agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id = row
    if mu is None:  # no rated match yet
        return RatingRecord(agent_id, game, DEFAULT_SKILL.mu, DEFAULT_SKILL.sigma, DEFAULT_SKILL.rating)
    return RatingRecord(agent_id, game, mu, sigma, rating, matches, updated_at, last_match_id)


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
