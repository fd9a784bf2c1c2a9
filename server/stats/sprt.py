"""Is bot B stronger than bot A? The Elo estimate and sequential test of chess engine testers.

Everything is from B's side: B is the candidate, A the baseline, a win is B's win and a
positive Elo means B is the stronger.

Theory of operation
-------------------
Games are played in pairs: two games with the same seed, seats swapped, so whatever the seed
gives one seat is given to each bot once. The two games of a pair are not independent, so the
unit of data is the pair, scored by B's points out of 2 (0, 1/2, 1, 3/2, 2, or as a fraction
of the pair 0, 1/4, 1/2, 3/4, 1). Counting pairs per score gives the pentanomial
(``Pentanomial``); counting single games gives the trinomial (``WDL``), for games not played
in pairs. Both are handled the same way below, with 5 or 3 outcomes.

Elo is logistic: a mean score ``s`` per game is ``400 * log10(s / (1 - s))`` Elo. The estimate
is the Elo of the observed mean score; its 95% interval is the normal interval on the mean,
``mean +- 1.96 * se``, each end converted to Elo, where ``se`` is the standard error of the
mean of the pair (or game) scores. The likelihood of superiority (LOS) is the normal
probability that the true mean score is above 1/2, ``Phi((mean - 1/2) / se)``.

The test is the generalized SPRT (GSPRT) of the fishtest statistics write-ups and of Michel
Van den Bergh's notes ("A note on the GSPRT", "Normalized Elo", and his write-up of the
pentanomial model), which OpenBench uses as well. H0 says B's Elo is ``elo0``, H1 says it is
``elo1`` (``elo0 < elo1``; here both are logistic Elo). Neither hypothesis fixes the whole
outcome distribution, only its mean, so each is represented by the distribution of the highest
likelihood for the data among those with the hypothesis's mean score. That maximum satisfies
``p_i = f_i / (1 + lam * (x_i - s))``, where ``f_i`` are the observed frequencies, ``x_i``
the outcome scores, ``s`` the hypothesis's mean score, and ``lam`` the Lagrange multiplier
that makes the mean come out as ``s``; it is found by bisection. The log-likelihood ratio is
then ``LLR = N * sum_i f_i * log(p_i(elo1) / p_i(elo0))``. The test stops with H1 once
``LLR >= log((1 - beta) / alpha)``, with H0 once ``LLR <= log(beta / (1 - alpha))``, and asks
for more games between the two. Wald's bounds hold the rates of a false H1 and a false H0 near
alpha and beta, and the GSPRT behaves as the SPRT does in this (Van den Bergh's note).

Degenerate data. When the data lie far to one side of ``s`` (all pairs won, say), the best
distribution of mean ``s`` may need mass on an extreme outcome that was never observed (a lost
pair); the Lagrange form then sits on the edge of its domain, with the missing mass on that
outcome. That case is solved exactly rather than by adding a small count to empty cells, so
the LLR of ``N`` won pairs is ``N * log(s1 / s0)``. Values that are infinite or unknown are ``None``, so that a
``Comparison`` always serializes as JSON: see ``Comparison`` for each field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "GAME_SCORES",
    "PAIR_SCORES",
    "WDL",
    "Z95",
    "Comparison",
    "GameResult",
    "Pentanomial",
    "Sprt",
    "Verdict",
    "compare_pairs",
    "compare_wdl",
    "elo_from_score",
    "game_points",
    "pair_index",
    "score_from_elo",
]

Z95 = 1.959963984540054  # the normal quantile at 0.975: a two-sided 95% interval
PAIR_SCORES = (0.0, 0.25, 0.5, 0.75, 1.0)  # B's score in a pair, as a fraction of its 2 points
GAME_SCORES = (0.0, 0.5, 1.0)  # B's score in one game: loss, draw, win

# B's result in one game: "W", "D" or "L", or the points 1, 0.5 or 0.
GameResult = Literal["W", "D", "L"] | float

_LETTER_POINTS = {"W": 1.0, "D": 0.5, "L": 0.0}
_EloInterval = tuple[float | None, float | None]  # None for an infinite or unknown end


def elo_from_score(score: float) -> float:
    """The logistic Elo difference at which one expects ``score`` per game (``-400 * log10(1/s - 1)``).

    Raises:
        ValueError: ``score`` is not strictly between 0 and 1 (its Elo would be infinite).
    """
    if not 0.0 < score < 1.0:
        raise ValueError(f"score {score!r} is not strictly between 0 and 1")
    # The same as -400 * log10(1/s - 1), without the cancellation of 1/s - 1 near s = 1.
    return 400.0 * math.log10(score / (1.0 - score))


def score_from_elo(elo: float) -> float:
    """The expected score per game of a player ``elo`` logistic Elo stronger: ``1 / (1 + 10^(-elo/400))``."""
    # Raise 10 only to a non-positive power, so that no Elo overflows.
    if elo >= 0:
        return 1.0 / (1.0 + math.pow(10.0, -elo / 400.0))
    power = math.pow(10.0, elo / 400.0)
    return power / (1.0 + power)


def game_points(result: GameResult) -> float:
    """B's points in one game: 1 for "W" or 1, 0.5 for "D" or 0.5, 0 for "L" or 0.

    Raises:
        ValueError: ``result`` is none of these.
    """
    if isinstance(result, str):
        if result not in _LETTER_POINTS:
            raise ValueError(f"game result {result!r} is not 'W', 'D' or 'L'")
        return _LETTER_POINTS[result]
    if result not in (0.0, 0.5, 1.0):
        raise ValueError(f"game result {result!r} is not 1, 0.5 or 0 points")
    return float(result)


def pair_index(first: GameResult, second: GameResult) -> int:
    """The pentanomial index of a pair from B's results in its two games: B's points times 2.

    0: LL; 1: LD, DL; 2: DD, WL, LW; 3: WD, DW; 4: WW. The order of the two games does not matter.

    Raises:
        ValueError: a result is not a game result (see ``game_points``).
    """
    return round(2.0 * (game_points(first) + game_points(second)))


def _check_counts(counts: Sequence[int], what: str) -> None:
    for count in counts:
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{what} count {count!r} is not a non-negative integer")


@dataclass(frozen=True, slots=True)
class Pentanomial:
    """Game pairs counted by B's points: ``counts[k]`` pairs in which B scored k/2 points out of 2.

    Index 0: LL; 1: LD or DL; 2: DD, WL or LW; 3: WD or DW; 4: WW. ``pairs[k]`` reads ``counts[k]``.
    """

    counts: tuple[int, int, int, int, int]

    def __post_init__(self) -> None:
        if len(self.counts) != 5:
            raise ValueError(f"a pentanomial has 5 counts, not {len(self.counts)}: {self.counts!r}")
        _check_counts(self.counts, "pair")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[GameResult, GameResult]]) -> Pentanomial:
        """Count pairs given as B's results in their two games.

        Raises:
            ValueError: a result is not a game result (see ``game_points``).
        """
        counts = [0, 0, 0, 0, 0]
        for first, second in pairs:
            counts[pair_index(first, second)] += 1
        return cls((counts[0], counts[1], counts[2], counts[3], counts[4]))

    def __getitem__(self, index: int) -> int:
        return self.counts[index]

    @property
    def total(self) -> int:
        """The number of pairs."""
        return sum(self.counts)

    def mirrored(self) -> Pentanomial:
        """The same pairs seen from A's side (B's lost pairs are A's won pairs)."""
        n0, n1, n2, n3, n4 = self.counts
        return Pentanomial((n4, n3, n2, n1, n0))


@dataclass(frozen=True, slots=True)
class WDL:
    """Single games counted by B's result: the trinomial."""

    wins: int
    draws: int
    losses: int

    def __post_init__(self) -> None:
        _check_counts((self.wins, self.draws, self.losses), "game")

    @classmethod
    def from_results(cls, results: Iterable[GameResult]) -> WDL:
        """Count games given as B's results.

        Raises:
            ValueError: a result is not a game result (see ``game_points``).
        """
        counts = [0, 0, 0]  # losses, draws, wins
        for result in results:
            counts[round(2.0 * game_points(result))] += 1
        return cls(wins=counts[2], draws=counts[1], losses=counts[0])

    @property
    def games(self) -> int:
        """The number of games."""
        return self.wins + self.draws + self.losses

    def mirrored(self) -> WDL:
        """The same games seen from A's side."""
        return WDL(wins=self.losses, draws=self.draws, losses=self.wins)


class Verdict(StrEnum):
    """The outcome of the test so far."""

    H1 = "H1"  # B is stronger than A by at least elo1: accept the candidate
    H0 = "H0"  # B is not stronger by elo1; its Elo is at most about elo0: reject it
    INCONCLUSIVE = "inconclusive"  # play more games (or no test was asked for)


@dataclass(frozen=True, slots=True)
class Sprt:
    """The hypotheses and error rates of one test: H0 "B is ``elo0`` Elo stronger" against H1 "``elo1``".

    ``alpha`` is the rate of H1 verdicts when H0 holds, ``beta`` that of H0 verdicts when H1 holds.
    Elo here is logistic (``score_from_elo``).

    Raises:
        ValueError: ``elo0 >= elo1``, an Elo so far from 0 that its score rounds to 0 or 1, or
            error rates not in (0, 1) with ``alpha + beta < 1``.
    """

    elo0: float
    elo1: float
    alpha: float = 0.05
    beta: float = 0.05

    def __post_init__(self) -> None:
        for elo in (self.elo0, self.elo1):
            if not 0.0 < score_from_elo(elo) < 1.0:  # also rejects nan and infinities
                raise ValueError(f"Elo {elo!r} is not a finite Elo whose expected score is below 1")
        if not self.elo0 < self.elo1:
            raise ValueError(f"elo0 {self.elo0!r} is not below elo1 {self.elo1!r}")
        if not (0.0 < self.alpha < 1.0 and 0.0 < self.beta < 1.0 and self.alpha + self.beta < 1.0):
            raise ValueError(f"error rates alpha {self.alpha!r} and beta {self.beta!r} are not in (0, 1) "
                             "with a sum below 1")

    @property
    def bounds(self) -> tuple[float, float]:
        """The LLR at or below which the test accepts H0, and at or above which it accepts H1."""
        return math.log(self.beta / (1.0 - self.alpha)), math.log((1.0 - self.beta) / self.alpha)

    def verdict(self, llr: float) -> Verdict:
        """The verdict at log-likelihood ratio ``llr``."""
        lower, upper = self.bounds
        if llr >= upper:
            return Verdict.H1
        if llr <= lower:
            return Verdict.H0
        return Verdict.INCONCLUSIVE


@dataclass(frozen=True, slots=True)
class Comparison:
    """What the games say about B against A; ``to_json`` gives the document the CLI prints.

    - ``games``: games played (twice the pairs, for pairs).
    - ``wins``, ``draws``, ``losses``: B's game results, ``None`` when only pairs are known
      (pairs do not determine them: a pair worth 1 point is a double draw or a win and a loss).
    - ``pairs``: the pentanomial counts, ``None`` for single games.
    - ``elo``: the logistic Elo of B's mean score; ``None`` with no games, or a mean score of 0
      or 1 (an infinite Elo).
    - ``elo_ci95``: the 95% interval, lower end first; an end whose score reaches 0 or 1 is
      ``None`` (minus or plus infinity), and both are ``None`` with no games. Data all in one
      outcome has no spread, so the interval closes onto ``elo``.
    - ``los``: the likelihood that B is stronger, in [0, 1]; 0.5 with no games. With no spread
      (data all in one outcome) it is 1, 0 or 0.5 as the mean score is above, below or at 1/2.
    - ``llr``: the GSPRT's log-likelihood ratio, 0 with no games; ``None`` when no test was asked.
    - ``llr_bounds``: the test's (lower, upper) bounds, ``None`` when no test was asked.
    - ``verdict``: H1, H0, or inconclusive (always so when no test was asked).
    """

    games: int
    wins: int | None
    draws: int | None
    losses: int | None
    pairs: tuple[int, int, int, int, int] | None
    elo: float | None
    elo_ci95: _EloInterval
    los: float
    llr: float | None
    llr_bounds: tuple[float, float] | None
    verdict: Verdict

    def to_json(self) -> dict[str, object]:
        """The comparison as a JSON document, with no infinities or NaNs (``None`` stands for them)."""
        return {
            "games": self.games,
            "wins": self.wins,
            "draws": self.draws,
            "losses": self.losses,
            "pairs": None if self.pairs is None else list(self.pairs),
            "elo": self.elo,
            "elo_ci95": list(self.elo_ci95),
            "los": self.los,
            "llr": self.llr,
            "llr_bounds": None if self.llr_bounds is None else list(self.llr_bounds),
            "verdict": self.verdict.value,
        }


def compare_pairs(pairs: Pentanomial, sprt: Sprt | None = None, *, wdl: WDL | None = None) -> Comparison:
    """Compare B with A from game pairs (the pentanomial), testing ``sprt`` if given.

    ``wdl``, when the caller knows the games' results, fills in wins, draws and losses.

    Raises:
        ValueError: ``wdl`` does not agree with ``pairs`` in games played or points scored.
    """
    if wdl is not None:
        if wdl.games != 2 * pairs.total:
            raise ValueError(f"{wdl.games} games do not make {pairs.total} pairs")
        pair_points = sum(index * count for index, count in enumerate(pairs.counts))  # in half points
        if 2 * wdl.wins + wdl.draws != pair_points:
            raise ValueError(f"{wdl.wins} wins and {wdl.draws} draws are not the {pair_points / 2} points "
                             f"of pairs {pairs.counts!r}")
    return _compare(pairs.counts, PAIR_SCORES, sprt, games=2 * pairs.total, wdl=wdl, pairs=pairs.counts)


def compare_wdl(wdl: WDL, sprt: Sprt | None = None) -> Comparison:
    """Compare B with A from single games (the trinomial), testing ``sprt`` if given."""
    counts = (wdl.losses, wdl.draws, wdl.wins)
    return _compare(counts, GAME_SCORES, sprt, games=wdl.games, wdl=wdl, pairs=None)


def _compare(counts: Sequence[int], scores: Sequence[float], sprt: Sprt | None, *, games: int, wdl: WDL | None,
             pairs: tuple[int, int, int, int, int] | None) -> Comparison:
    elo, elo_ci95, los = _estimate(counts, scores)
    llr: float | None = None
    llr_bounds: tuple[float, float] | None = None
    verdict = Verdict.INCONCLUSIVE
    if sprt is not None:
        llr = _llr(counts, scores, score_from_elo(sprt.elo0), score_from_elo(sprt.elo1))
        llr_bounds = sprt.bounds
        verdict = sprt.verdict(llr)
    return Comparison(
        games=games,
        wins=None if wdl is None else wdl.wins,
        draws=None if wdl is None else wdl.draws,
        losses=None if wdl is None else wdl.losses,
        pairs=pairs,
        elo=elo,
        elo_ci95=elo_ci95,
        los=los,
        llr=llr,
        llr_bounds=llr_bounds,
        verdict=verdict,
    )


def _elo_or_none(score: float) -> float | None:
    return elo_from_score(score) if 0.0 < score < 1.0 else None


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _estimate(counts: Sequence[int], scores: Sequence[float]) -> tuple[float | None, _EloInterval, float]:
    """The Elo estimate, its 95% interval and the LOS, from outcome counts and the outcomes' scores."""
    total = sum(counts)
    if total == 0:
        return None, (None, None), 0.5
    mean = sum(count * score for count, score in zip(counts, scores, strict=True)) / total
    variance = sum(count * (score - mean) ** 2 for count, score in zip(counts, scores, strict=True)) / total
    se = math.sqrt(variance / total)  # the standard error of the mean score
    elo_ci95 = (_elo_or_none(mean - Z95 * se), _elo_or_none(mean + Z95 * se))
    if se > 0.0:
        los = _normal_cdf((mean - 0.5) / se)
    else:  # the limit of the normal CDF as the spread vanishes
        los = 1.0 if mean > 0.5 else 0.0 if mean < 0.5 else 0.5
    return _elo_or_none(mean), elo_ci95, los


def _bisect_decreasing(function: Callable[[float], float], lower: float, upper: float) -> float:
    """The root of ``function``, decreasing from positive to negative on the open interval (lower, upper).

    The ends themselves are never evaluated: they may be poles.
    """
    low, high = lower, upper
    while True:
        middle = low + (high - low) / 2.0
        if not low < middle < high or high - low <= 1e-15 * max(1.0, abs(low), abs(high)):
            break
        if function(middle) > 0.0:
            low = middle
        else:
            high = middle
    # Return an end that was evaluated, hence lies inside the interval.
    return high if low == lower else low


def _constrained_mle(counts: Sequence[int], scores: Sequence[float], mean: float) -> list[float]:
    """The distribution over the outcomes with mean score ``mean`` under which ``counts`` are likeliest.

    ``scores`` ascend, ``counts`` are not all zero and ``mean`` is strictly between the first and last score.
    """
    total = sum(counts)
    freqs = [count / total for count in counts]
    deviations = [score - mean for score in scores]
    top, bottom = len(scores) - 1, 0

    def slope(lam: float) -> float:
        # The mean deviation under p_i = f_i / (1 + lam * d_i), times the total mass; zero at the maximum.
        return sum(f * d / (1.0 + lam * d) for f, d in zip(freqs, deviations, strict=True) if f > 0.0)

    # Every weight 1 + lam * d_i must stay non-negative, observed outcome or not; the extreme outcomes
    # bind, and a weight reaches 0 only at an unobserved outcome, which then takes the missing mass.
    lam_low, lam_high = -1.0 / deviations[top], -1.0 / deviations[bottom]
    leftover_at: int | None = None
    if freqs[top] == 0.0 and slope(lam_low) <= 0.0:
        lam, leftover_at = lam_low, top
    elif freqs[bottom] == 0.0 and slope(lam_high) >= 0.0:
        lam, leftover_at = lam_high, bottom
    else:
        lam = _bisect_decreasing(slope, lam_low, lam_high)
    probs = [f / (1.0 + lam * d) if f > 0.0 else 0.0 for f, d in zip(freqs, deviations, strict=True)]
    if leftover_at is not None:
        probs[leftover_at] = max(0.0, 1.0 - sum(probs))
    return probs


def _llr(counts: Sequence[int], scores: Sequence[float], mean0: float, mean1: float) -> float:
    """The GSPRT's log-likelihood ratio of mean score ``mean1`` against ``mean0``; 0 without data."""
    if sum(counts) == 0:
        return 0.0
    probs0 = _constrained_mle(counts, scores, mean0)
    probs1 = _constrained_mle(counts, scores, mean1)
    return sum(count * math.log(p1 / p0) for count, p0, p1 in zip(counts, probs0, probs1, strict=True) if count > 0)
