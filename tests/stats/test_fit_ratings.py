"""Ratings fitted to a tournament's results (``server/stats/ratings.py``), against values worked
out here by other means: the two-player closed forms, symmetry, the anchor, and degenerate
results that must still give finite, serializable numbers."""

from __future__ import annotations

import json
import math
import random

import pytest

from server.stats.ratings import Z95, crosstable, fit_ratings

SCALE = 400 / math.log(10)  # Elo per natural unit of the logistic


def two_player_fit(wins: int, losses: int) -> tuple[float, float]:
    """The MLE of r1 - r0 (player 1 against 0) and its standard error, worked out directly: one
    parameter d = r1 - r0 (natural units) with each player's virtual draw against a player rated
    0 fixing the mean at 0 by symmetry (r0 = -d/2, r1 = d/2), maximised by bisection on the
    derivative of the log-likelihood; the standard error from its second derivative."""
    n = wins + losses

    def p(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    def slope(d: float) -> float:
        # wins and losses of player 1 at difference d, and its and player 0's virtual draws
        return wins * (1 - p(d)) - losses * p(d) + 0.5 * (0.5 - p(d / 2)) + 0.5 * (p(-d / 2) - 0.5)

    lo, hi = -50.0, 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    d = (lo + hi) / 2
    curvature = n * p(d) * (1 - p(d)) + 0.5 * p(d / 2) * (1 - p(d / 2))  # -d2 logL / dd2, virtual draws at d/2
    return d * SCALE, math.sqrt(1 / curvature) * SCALE


@pytest.mark.parametrize(("wins", "losses"), [(7, 3), (3, 7), (50, 50), (90, 10)])
def test_two_players_match_the_direct_fit(wins: int, losses: int) -> None:
    results = [(1, 0, 1.0)] * wins + [(1, 0, 0.0)] * losses
    ratings = fit_ratings(2, results).players
    difference, se = two_player_fit(wins, losses)
    assert ratings[1].elo is not None and ratings[0].elo is not None
    assert ratings[1].elo - ratings[0].elo == pytest.approx(difference, abs=1e-6)
    assert ratings[0].elo + ratings[1].elo == pytest.approx(0, abs=1e-9)  # anchored at mean 0
    # Each rating is half the difference: its standard error is half the difference's.
    assert ratings[1].se == pytest.approx(se / 2, rel=1e-6)
    lo, hi = ratings[1].ci95
    assert (lo, hi) == pytest.approx((ratings[1].elo - Z95 * se / 2, ratings[1].elo + Z95 * se / 2))


def test_with_many_games_the_prior_fades_into_the_plain_maximum() -> None:
    results = [(0, 1, 1.0)] * 700 + [(0, 1, 0.0)] * 300
    ratings = fit_ratings(2, results).players
    assert ratings[0].elo is not None and ratings[1].elo is not None
    plain = 400 * math.log10(0.7 / 0.3)  # the MLE without the virtual draws
    assert ratings[0].elo - ratings[1].elo == pytest.approx(plain, abs=1.0)
    # and the standard error of the difference tends to the Fisher information's: (400/ln10)^2 / (N s (1-s))
    se_difference = 2 * ratings[0].se  # type: ignore[operator]
    assert se_difference == pytest.approx(SCALE / math.sqrt(1000 * 0.7 * 0.3), rel=0.01)


def test_a_cycle_of_equal_results_rates_everyone_alike_and_order_does_not_matter() -> None:
    results = [(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (1, 0, 0.0), (2, 1, 0.0), (0, 2, 0.0), (0, 1, 0.5)]
    fitted = fit_ratings(3, results).players
    shuffled = results[:]
    random.Random(4).shuffle(shuffled)
    again = fit_ratings(3, shuffled).players
    for a, b in zip(fitted, again, strict=True):
        assert a.elo == pytest.approx(b.elo, abs=1e-9) and a.se == pytest.approx(b.se, rel=1e-9)
    assert fitted[2].elo == pytest.approx(-(fitted[0].elo or 0) - (fitted[1].elo or 0), abs=1e-9)


def test_swapping_players_swaps_their_ratings() -> None:
    results = [(0, 1, 1.0), (0, 2, 0.5), (1, 2, 0.0), (2, 0, 1.0), (1, 0, 1.0)]
    swap = {0: 1, 1: 0, 2: 2}
    swapped = [(swap[i], swap[j], s) for i, j, s in results]
    a, b = fit_ratings(3, results).players, fit_ratings(3, swapped).players
    assert a[0].elo == pytest.approx(b[1].elo) and a[1].elo == pytest.approx(b[0].elo)
    assert a[2].elo == pytest.approx(b[2].elo)


def test_degenerate_results_stay_finite_and_serialize() -> None:
    all_won = fit_ratings(3, [(0, 1, 1.0)] * 8)  # player 0 won everything; player 2 never played
    doc = all_won.to_json()
    json.dumps(doc, allow_nan=False)
    players = all_won.players
    assert players[0].elo is not None and players[0].elo > 0 and math.isfinite(players[0].elo)
    assert players[2].elo is None and players[2].ci95 == (None, None) and players[2].games == 0
    json.dumps(fit_ratings(4, []).to_json(), allow_nan=False)


def test_the_crosstable_counts_points_and_games_both_ways() -> None:
    table = crosstable(3, [(0, 1, 1.0), (1, 0, 0.5), (2, 0, 0.0)])
    assert table[0][1] == (1.5, 2) and table[1][0] == (0.5, 2)
    assert table[0][2] == (1.0, 1) and table[2][0] == (0.0, 1)
    assert table[1][2] == (0.0, 0) and table[0][0] is None


@pytest.mark.parametrize("bad", [(0, 0, 1.0), (0, 3, 1.0), (0, 1, 0.7)])
def test_bad_results_are_refused(bad: tuple[int, int, float]) -> None:
    with pytest.raises(ValueError):
        fit_ratings(3, [bad])
