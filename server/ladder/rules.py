"""The rated ladder's rules, as pure functions: rating a finished match, and pairing agents.

Ratings come from openskill's Plackett-Luce model (a Bayesian, Weng-Lin rating like
TrueSkill, without its patents): each agent has a skill estimate ``mu`` and an uncertainty
``sigma``. Plackett-Luce rates any number of seats from their finishing order, ties included,
so a game with more than two players needs no other model; it is openskill's recommended
model and the fastest of its five. A new agent starts at the model's prior (mu 25, sigma 25/3).

What people see is one conservative number, ``rating = 1000 + 40 * (mu - 3 * sigma)``
(openskill's ordinal, rescaled to an Elo-like range): a new agent shows 1000, and an agent
climbs only as the ladder grows sure of it. The same number is stored, sent in
``rating_changed`` frames and ranked on the leaderboard.

Only the ladder's own matches are rated: those the scheduler starts (``server/ladder/scheduler.py``),
once finished (not aborted), and only when their seats are distinct agents; an agent playing
itself learns nothing about its skill. Challenges (``POST /api/matches``) are never rated:
anyone may start one between any agents, so a rating they moved would be anyone's to move.
Seats are ranked by reward: a higher reward is a better place, equal rewards tie.

This module imports nothing of the server (storage computes ratings with it inside its write
transaction) and does no I/O; randomness comes from a ``random.Random`` passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from openskill.models import PlackettLuce

__all__ = [
    "DEFAULT_SKILL",
    "FEATURED_POOL",
    "NEAREST_OPPONENTS",
    "PROVISIONAL_MATCHES",
    "RATING_BASE",
    "RATING_SCALE",
    "Candidate",
    "Skill",
    "choose_featured_pair",
    "choose_pair",
    "display_rating",
    "is_rated_match",
    "need",
    "ranks_from_rewards",
    "rate_match",
]

RATING_BASE = 1000.0  # the displayed rating of a new agent
RATING_SCALE = 40.0  # displayed points per point of ordinal: one beta (mu 4.17) is about 170 points
PROVISIONAL_MATCHES = 10  # agents with fewer rated matches than this are paired first
NEAREST_OPPONENTS = 3  # an opponent is drawn from this many agents closest in rating
FEATURED_POOL = 8  # a featured match is drawn among this many best-rated agents of its game

_MODEL = PlackettLuce()


@dataclass(frozen=True, slots=True)
class Skill:
    """One agent's rating in the model: the skill estimate and its uncertainty."""

    mu: float
    sigma: float

    @property
    def rating(self) -> float:
        """The displayed, conservative rating (see :func:`display_rating`)."""
        return display_rating(self.mu, self.sigma)


DEFAULT_SKILL = Skill(mu=float(_MODEL.mu), sigma=float(_MODEL.sigma))


def display_rating(mu: float, sigma: float) -> float:
    """The number people see: ``1000 + 40 * (mu - 3 * sigma)``, to one decimal."""
    return round(RATING_BASE + RATING_SCALE * (mu - 3.0 * sigma), 1)


def is_rated_match(agent_ids: Sequence[int]) -> bool:
    """Whether a finished match with these seats counts: at least two seats, all distinct agents."""
    return len(agent_ids) >= 2 and len(set(agent_ids)) == len(agent_ids)


def ranks_from_rewards(rewards: Sequence[float | None]) -> list[int]:
    """Each seat's place from its reward: 0 is best, equal rewards share a place (1, 2, 2, 4 style).

    A missing reward (``None``) counts below every number.
    """
    values = [-math.inf if r is None else r for r in rewards]
    return [sum(1 for other in values if other > mine) for mine in values]


def rate_match(skills: Sequence[Skill], rewards: Sequence[float | None]) -> list[Skill]:
    """The seats' new skills after a match they finished with these rewards.

    Raises:
        ValueError: ``skills`` and ``rewards`` differ in length, or there are fewer than two seats.
    """
    if len(skills) != len(rewards):
        raise ValueError(f"{len(skills)} skills for {len(rewards)} rewards")
    if len(skills) < 2:
        raise ValueError(f"a rated match needs at least two seats, got {len(skills)}")
    teams = [[_MODEL.rating(mu=s.mu, sigma=s.sigma)] for s in skills]
    rated = _MODEL.rate(teams, ranks=[float(r) for r in ranks_from_rewards(rewards)])
    return [Skill(mu=float(team[0].mu), sigma=float(team[0].sigma)) for team in rated]


# -- pairing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent the scheduler may pair: its rating, the rated matches of its current version
    (a new version starts again from none, and so goes first), and when it last played
    (``None``: never; the scheduler passes "now" for agents in a live match)."""

    agent_id: int
    rating: float
    matches: int
    last_played: float | None = None


def choose_pair(candidates: Sequence[Candidate], rng: random.Random) -> tuple[Candidate, Candidate] | None:
    """Two distinct agents to play next, or ``None`` with fewer than two distinct agents.

    The first is the neediest agent if it has not played yet (a new agent, or a new version:
    it goes first, for sure); otherwise it is drawn with weights 1, 1/2, 1/3, ... by need:
    provisional agents (fewer than ``PROVISIONAL_MATCHES`` rated matches, fewest first) come
    first, then the least recently played. Its opponent is drawn among the
    ``NEAREST_OPPONENTS`` agents closest in rating, again weighted 1, 1/2, 1/3 by closeness,
    so close games are the rule and upsets possible.
    """
    unique = list({c.agent_id: c for c in candidates}.values())
    if len(unique) < 2:
        return None
    by_need = sorted(unique, key=need)
    first = by_need[0] if by_need[0].matches == 0 else _weighted_pick(by_need, rng)
    others = sorted(
        (c for c in unique if c.agent_id != first.agent_id),
        key=lambda c: (abs(c.rating - first.rating), c.agent_id),
    )
    second = _weighted_pick(others[:NEAREST_OPPONENTS], rng)
    return first, second


def choose_featured_pair(
    candidates: Sequence[Candidate], rng: random.Random
) -> tuple[Candidate, Candidate] | None:
    """A pair worth watching: :func:`choose_pair` among the ``FEATURED_POOL`` best-rated agents
    (those with rated matches first), so that people see the strongest bots of a game, in turn."""
    unique = list({c.agent_id: c for c in candidates}.values())
    best = sorted(unique, key=lambda c: (c.matches == 0, -c.rating, c.agent_id))[:FEATURED_POOL]
    return choose_pair(best, rng)


def need(candidate: Candidate) -> tuple[int, float, int]:
    """The sort key of :func:`choose_pair`, most in need of a match first."""
    provisional = min(candidate.matches, PROVISIONAL_MATCHES)
    last = -math.inf if candidate.last_played is None else candidate.last_played
    return provisional, last, candidate.agent_id


def _weighted_pick(ordered: Sequence[Candidate], rng: random.Random) -> Candidate:
    weights = [1.0 / (i + 1) for i in range(len(ordered))]
    return rng.choices(ordered, weights=weights, k=1)[0]
