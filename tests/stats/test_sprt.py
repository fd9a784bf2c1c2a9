"""The statistics of "is bot B stronger than bot A" (``server/stats/sprt.py``).

Values are checked against numbers computed here another way: the pentanomial GSPRT's
likelihoods by a brute-force search over every distribution with the hypothesis's mean, the
trinomial's by the closed form of its one free parameter, the estimates by hand with the steps
in comments. Properties (mirroring, scaling, monotonicity, the verdict at the bounds) cover the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.stats.sprt import (
    WDL,
    Comparison,
    Pentanomial,
    Sprt,
    Verdict,
    compare_pairs,
    compare_wdl,
    elo_from_score,
    game_points,
    pair_index,
    score_from_elo,
)

PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)
WALD_BOUND = math.log(0.95 / 0.05)  # log(19) = 2.9444389791664403, Wald's bound for alpha = beta = 0.05


def logistic_score(elo: float) -> float:
    """The expected score at ``elo``, written out here rather than taken from the module."""
    return 1.0 / (1.0 + 10.0 ** (-elo / 400.0))


# Brute force: the highest log-likelihood of pentanomial counts among all distributions with mean s.


def golden_max(function: Callable[[float], float], low: float, high: float, tolerance: float = 1e-9) -> float:
    """The maximum of a concave function on [low, high], ends included, by golden-section search."""
    if high <= low:
        return function(low)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = function(c), function(d)
    while b - a > tolerance:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = function(d)
    return max(fc, fd, function(low), function(high))


def log_likelihood(counts: Sequence[int], probs: Sequence[float]) -> float:
    total = 0.0
    for count, prob in zip(counts, probs, strict=True):
        if count:
            if prob <= 0.0:
                return -math.inf
            total += count * math.log(prob)
    return total


def pentanomial_max_log_likelihood(counts: Sequence[int], s: float) -> float:
    """Search the distributions (p0..p4) on scores 0, 1/4, 1/2, 3/4, 1 with sum 1 and mean s.

    The free coordinates are p1, p2, p3; the sum and the mean fix the others:
    p4 = s - p1/4 - p2/2 - 3 p3/4 and p0 = 1 - s - 3 p1/4 - p2/2 - p3/4. The log-likelihood is
    concave in (p1, p2, p3), so maximizing one coordinate at a time, nested, finds its maximum.
    """

    def at(p1: float, p2: float, p3: float) -> float:
        p4 = s - p1 / 4 - p2 / 2 - 3 * p3 / 4
        p0 = 1 - s - 3 * p1 / 4 - p2 / 2 - p3 / 4
        return log_likelihood(counts, (max(p0, 0.0), p1, p2, p3, max(p4, 0.0)))

    def best_over_p3(p1: float, p2: float) -> float:
        p3_max = min((s - p1 / 4 - p2 / 2) * 4 / 3, 4 * (1 - s - 3 * p1 / 4 - p2 / 2))
        return golden_max(lambda p3: at(p1, p2, p3), 0.0, p3_max)

    def best_over_p2(p1: float) -> float:
        p2_max = min(2 * s - p1 / 2, 2 - 2 * s - 3 * p1 / 2)
        return golden_max(lambda p2: best_over_p3(p1, p2), 0.0, p2_max)

    return golden_max(best_over_p2, 0.0, min(4 * s, 4 * (1 - s) / 3))


def trinomial_max_log_likelihood(wins: int, draws: int, losses: int, s: float) -> float:
    """The closed form: with pD = t, the mean and the sum give pW = s - t/2 and pL = 1 - s - t/2.

    Setting the derivative of W log pW + D log pD + L log pL to zero and clearing denominators:
    (N/2) t^2 - B t + 2 D s (1 - s) = 0 with B = D + W (1 - s) + L s. The derivative has the
    sign of that quadratic, positive at t = 0 and not positive where pW or pL reaches 0, so the
    maximum is its smaller root, written without cancellation as 4 D s (1 - s) / (B + sqrt(...)).
    """
    n = wins + draws + losses
    b = draws + wins * (1 - s) + losses * s
    t = 4 * draws * s * (1 - s) / (b + math.sqrt(b * b - 4 * n * draws * s * (1 - s)))
    return log_likelihood((wins, draws, losses), (s - t / 2, t, 1 - s - t / 2))


def brute_force_pair_llr(counts: Sequence[int], elo0: float, elo1: float) -> float:
    s0, s1 = logistic_score(elo0), logistic_score(elo1)
    return pentanomial_max_log_likelihood(counts, s1) - pentanomial_max_log_likelihood(counts, s0)


def closed_form_wdl_llr(wins: int, draws: int, losses: int, elo0: float, elo1: float) -> float:
    s0, s1 = logistic_score(elo0), logistic_score(elo1)
    return trinomial_max_log_likelihood(wins, draws, losses, s1) - trinomial_max_log_likelihood(wins, draws, losses, s0)


# Elo and the pair classifier


def test_elo_and_score_at_known_points() -> None:
    assert score_from_elo(0.0) == 0.5
    assert score_from_elo(400.0) == pytest.approx(10 / 11)  # 1 / (1 + 10^-1)
    assert score_from_elo(-400.0) == pytest.approx(1 / 11)
    assert elo_from_score(0.5) == 0.0
    assert elo_from_score(0.75) == pytest.approx(400 * math.log10(3))  # -400 log10(1/0.75 - 1) = 190.85
    assert elo_from_score(0.25) == pytest.approx(-400 * math.log10(3))
    for elo in (-1500.0, -35.5, 0.1, 800.0):
        assert elo_from_score(score_from_elo(elo)) == pytest.approx(elo)


def test_elo_far_from_zero_neither_overflows_nor_accepts_certain_scores() -> None:
    assert score_from_elo(1e6) == 1.0
    assert score_from_elo(-1e6) == 0.0
    for score in (0.0, 1.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            elo_from_score(score)


NINE_PAIRS = [
    ("L", "L", 0), ("L", "D", 1), ("D", "L", 1),
    ("D", "D", 2), ("W", "L", 2), ("L", "W", 2),
    ("W", "D", 3), ("D", "W", 3), ("W", "W", 4),
]


@pytest.mark.parametrize(("first", "second", "index"), NINE_PAIRS)
def test_pair_index_of_every_combination(first: str, second: str, index: int) -> None:
    points = {"W": 1, "D": 0.5, "L": 0}
    assert pair_index(first, second) == index  # type: ignore[arg-type]
    assert pair_index(points[first], points[second]) == index


@pytest.mark.parametrize("bad", ["w", "win", "", 2, -1, 0.25, math.nan])
def test_a_result_that_is_no_game_result_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        game_points(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_index("W", bad)  # type: ignore[arg-type]


def test_counting_pairs_and_games() -> None:
    pairs = Pentanomial.from_pairs([(a, b) for a, b, _ in NINE_PAIRS])
    assert pairs.counts == (1, 2, 3, 2, 1)
    assert pairs[2] == 3 and pairs.total == 9
    assert Pentanomial((1, 2, 3, 4, 5)).mirrored() == Pentanomial((5, 4, 3, 2, 1))
    assert WDL.from_results(["W", "W", 0.5, "L", 1, 0]) == WDL(wins=3, draws=1, losses=2)
    assert WDL(3, 1, 2).games == 6 and WDL(3, 1, 2).mirrored() == WDL(2, 1, 3)


@pytest.mark.parametrize("counts", [(1, 2, 3, 4), (1, 2, 3, 4, 5, 6), (1, -1, 0, 0, 0), (1, 2.5, 0, 0, 0)])
def test_a_malformed_pentanomial_is_refused(counts: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        Pentanomial(counts)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        WDL(1, -2, 3)


# Estimates, by hand


def test_pentanomial_estimate_by_hand() -> None:
    result = compare_pairs(Pentanomial((5, 15, 40, 25, 15)))
    # N = 100 pairs. Points in quarters of a pair: 15*1 + 40*2 + 25*3 + 15*4 = 230, mean 230/400 = 0.575.
    # Deviations from 0.575 of scores 0, .25, .5, .75, 1: -.575, -.325, -.075, .175, .425; squared:
    # .330625, .105625, .005625, .030625, .180625. Weighted by the counts: 1.653125 + 1.584375 + .225
    # + .765625 + 2.709375 = 6.9375, so the variance per pair is .069375 and se = sqrt(.069375 / 100)
    # = 0.026339134.
    # Elo: 400 log10(.575 / .425) = 52.511566.
    # Interval on the score: .575 -+ 1.959964 * .026339134 = .523376245, .626623755; in Elo
    # 400 log10(.523376245 / .476623755) = 16.255329 and 400 log10(.626623755 / .373376245) = 89.944068.
    # LOS: Phi(.075 / .026339134) = Phi(2.847474) = 0.9977966.
    assert result.elo == pytest.approx(52.511566, abs=1e-6)
    assert result.elo_ci95[0] == pytest.approx(16.255329, abs=1e-6)
    assert result.elo_ci95[1] == pytest.approx(89.944068, abs=1e-6)
    assert result.los == pytest.approx(0.9977966, abs=1e-7)
    assert (result.games, result.pairs) == (200, (5, 15, 40, 25, 15))
    assert (result.wins, result.draws, result.losses) == (None, None, None)


def test_wdl_estimate_by_hand() -> None:
    result = compare_wdl(WDL(wins=30, draws=50, losses=20))
    # N = 100 games, mean (30 + 50/2) / 100 = .55. Variance per game:
    # (30 * .45^2 + 50 * .05^2 + 20 * .55^2) / 100 = (6.075 + .125 + 6.05) / 100 = .1225, so the
    # spread is .35 and se = .35 / sqrt(100) = .035.
    # Elo: 400 log10(.55 / .45) = 34.860070.
    # Interval: .55 -+ 1.959964 * .035 = .55 -+ .068598739 = .481401261, .618598739; in Elo
    # 400 log10(.481401261 / .518598739) = -12.929693 and 400 log10(.618598739 / .381401261) = 84.010763.
    # LOS: Phi(.05 / .035) = Phi(1.428571) = 0.9234363.
    assert result.elo == pytest.approx(34.860070, abs=1e-6)
    assert result.elo_ci95[0] == pytest.approx(-12.929693, abs=1e-6)
    assert result.elo_ci95[1] == pytest.approx(84.010763, abs=1e-6)
    assert result.los == pytest.approx(0.9234363, abs=1e-7)
    assert (result.games, result.wins, result.draws, result.losses, result.pairs) == (100, 30, 50, 20, None)


# The GSPRT's log-likelihood ratio, against independent computations

PAIR_CASES = [
    ((5, 15, 40, 25, 15), 0.0, 5.0),
    ((12, 30, 51, 28, 9), -3.0, 2.0),
    ((0, 4, 20, 7, 0), 0.0, 10.0),  # no pair lost or won twice: the extremes get mass only if needed
    ((3, 0, 10, 0, 8), 0.0, 10.0),
    ((1, 0, 0, 0, 0), -10.0, 10.0),  # a single lost pair
    ((0, 0, 7, 0, 0), 0.0, 20.0),  # every pair in one bucket
    ((0, 0, 0, 5, 2), 0.0, 20.0),  # every pair above both hypotheses' means
    ((2, 9, 0, 0, 0), -20.0, -5.0),
]


@pytest.mark.parametrize(("counts", "elo0", "elo1"), PAIR_CASES)
def test_pair_llr_matches_a_brute_force_search(counts: tuple[int, int, int, int, int], elo0: float,
                                               elo1: float) -> None:
    llr = compare_pairs(Pentanomial(counts), Sprt(elo0, elo1)).llr
    assert llr == pytest.approx(brute_force_pair_llr(counts, elo0, elo1), rel=1e-6, abs=1e-8)


WDL_CASES = [
    (30, 50, 20, 0.0, 10.0),
    (1200, 3100, 1150, -2.0, 3.0),
    (0, 10, 0, 0.0, 10.0),  # all draws
    (7, 0, 3, 0.0, 50.0),  # no draws
    (0, 6, 4, -5.0, 5.0),  # no wins
    (9, 0, 0, 0.0, 10.0),  # all wins
    (0, 0, 9, 0.0, 10.0),  # all losses
]


@pytest.mark.parametrize(("wins", "draws", "losses", "elo0", "elo1"), WDL_CASES)
def test_wdl_llr_matches_the_closed_form(wins: int, draws: int, losses: int, elo0: float, elo1: float) -> None:
    llr = compare_wdl(WDL(wins, draws, losses), Sprt(elo0, elo1)).llr
    assert llr == pytest.approx(closed_form_wdl_llr(wins, draws, losses, elo0, elo1), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("wins", "draws", "losses", "elo0", "elo1"), WDL_CASES)
def test_pairs_on_even_buckets_have_the_trinomial_llr(wins: int, draws: int, losses: int, elo0: float,
                                                      elo1: float) -> None:
    # Pairs worth 0, 1 or 2 points have the scores 0, 1/2, 1 of single games; the best distribution
    # never puts mass on the unobserved 1/4 and 3/4 between them, so the LLR is the trinomial's.
    llr = compare_pairs(Pentanomial((losses, 0, draws, 0, wins)), Sprt(elo0, elo1)).llr
    assert llr == pytest.approx(closed_form_wdl_llr(wins, draws, losses, elo0, elo1), rel=1e-9, abs=1e-12)


def test_all_won_pairs_have_a_closed_form_llr_and_reach_h1() -> None:
    # With every pair won, the likeliest distribution of mean s puts s on a won pair and the rest on
    # a lost one, so LLR = N log(s1 / s0). For elo0 = 0 and elo1 = 10: s1 = .514387, log(s1 / .5)
    # = .0283682 per pair, and log(19) / .0283682 = 103.8: H1 comes with the 104th pair.
    sprt = Sprt(0.0, 10.0)
    per_pair = math.log(logistic_score(10.0) / 0.5)
    assert per_pair == pytest.approx(0.0283682, abs=1e-7)
    first_h1 = math.ceil(WALD_BOUND / per_pair)
    assert first_h1 == 104
    before = compare_pairs(Pentanomial((0, 0, 0, 0, first_h1 - 1)), sprt)
    after = compare_pairs(Pentanomial((0, 0, 0, 0, first_h1)), sprt)
    assert before.llr == pytest.approx(103 * per_pair)
    assert after.llr == pytest.approx(104 * per_pair)
    assert (before.verdict, after.verdict) == (Verdict.INCONCLUSIVE, Verdict.H1)
    assert after.elo is None and after.elo_ci95[1] is None and after.los == 1.0


def test_all_lost_pairs_reach_h0() -> None:
    # Mirror of the above: LLR = N log((1 - s1) / (1 - s0)) = N log(.485613 / .5) = -.0293167 N,
    # and log(1/19) / -.0293167 = 100.4: H0 comes with the 101st pair.
    sprt = Sprt(0.0, 10.0)
    per_pair = math.log((1 - logistic_score(10.0)) / 0.5)
    first_h0 = math.ceil(-WALD_BOUND / per_pair)
    assert first_h0 == 101
    before = compare_pairs(Pentanomial((first_h0 - 1, 0, 0, 0, 0)), sprt)
    after = compare_pairs(Pentanomial((first_h0, 0, 0, 0, 0)), sprt)
    assert after.llr == pytest.approx(first_h0 * per_pair)
    assert (before.verdict, after.verdict) == (Verdict.INCONCLUSIVE, Verdict.H0)
    assert after.elo is None and after.elo_ci95 == (None, None) and after.los == 0.0


# The test's bounds and verdicts


def test_bounds_and_verdicts_at_the_bounds() -> None:
    sprt = Sprt(0.0, 5.0, alpha=0.05, beta=0.1)
    lower, upper = sprt.bounds
    assert lower == pytest.approx(math.log(0.1 / 0.95))  # -2.2513
    assert upper == pytest.approx(math.log(0.9 / 0.05))  # 2.8904
    assert sprt.verdict(upper) is Verdict.H1
    assert sprt.verdict(math.nextafter(upper, 0.0)) is Verdict.INCONCLUSIVE
    assert sprt.verdict(lower) is Verdict.H0
    assert sprt.verdict(math.nextafter(lower, 0.0)) is Verdict.INCONCLUSIVE
    assert sprt.verdict(0.0) is Verdict.INCONCLUSIVE
    assert Sprt(0.0, 5.0).bounds == pytest.approx((-WALD_BOUND, WALD_BOUND))


@pytest.mark.parametrize(("elo0", "elo1", "alpha", "beta"), [
    (5.0, 5.0, 0.05, 0.05), (5.0, 0.0, 0.05, 0.05), (0.0, math.inf, 0.05, 0.05), (math.nan, 5.0, 0.05, 0.05),
    (0.0, 1e6, 0.05, 0.05), (0.0, 5.0, 0.0, 0.05), (0.0, 5.0, 0.05, 1.0), (0.0, 5.0, 0.6, 0.5),
])
def test_a_malformed_test_is_refused(elo0: float, elo1: float, alpha: float, beta: float) -> None:
    with pytest.raises(ValueError):
        Sprt(elo0, elo1, alpha, beta)


def test_llr_grows_as_results_grow_lopsided() -> None:
    sprt = Sprt(0.0, 5.0)
    ladder = [(10, 20, 40, 20, 10), (9, 19, 40, 21, 11), (8, 18, 40, 22, 12), (6, 16, 40, 24, 14),
              (4, 14, 40, 26, 16), (2, 10, 40, 30, 18)]
    llrs = [compare_pairs(Pentanomial(counts), sprt).llr for counts in ladder]
    assert all(a is not None and b is not None and a < b for a, b in zip(llrs, llrs[1:], strict=False))


# Properties


def test_symmetric_data_gives_zero_elo_and_even_los() -> None:
    for result in (compare_pairs(Pentanomial((3, 11, 25, 11, 3)), Sprt(-5.0, 5.0)),
                   compare_wdl(WDL(wins=40, draws=20, losses=40), Sprt(-5.0, 5.0))):
        assert result.elo == 0.0 and result.los == 0.5
        lower, upper = result.elo_ci95
        assert lower is not None and upper is not None and lower == pytest.approx(-upper)
        # Bounds symmetric about 0 make the hypotheses equally likely on data of mean 1/2.
        assert result.llr == pytest.approx(0.0, abs=1e-9)


counts_5 = st.tuples(*[st.integers(0, 5000)] * 5)
elo_bounds = st.tuples(st.floats(-60.0, 60.0), st.floats(0.5, 40.0)).map(lambda pair: (pair[0], pair[0] + pair[1]))


def negated(value: float | None) -> float | None:
    return None if value is None else -value


@PROPERTIES
@given(counts_5, elo_bounds)
def test_swapping_the_bots_mirrors_every_figure(counts: tuple[int, int, int, int, int],
                                                bounds: tuple[float, float]) -> None:
    elo0, elo1 = bounds
    b_side = compare_pairs(Pentanomial(counts), Sprt(elo0, elo1))
    # From A's side the pairs reverse and the hypotheses become -elo1 (as H0) and -elo0 (as H1).
    a_side = compare_pairs(Pentanomial(counts).mirrored(), Sprt(-elo1, -elo0))
    assert a_side.elo == pytest.approx(negated(b_side.elo))
    assert a_side.elo_ci95[0] == pytest.approx(negated(b_side.elo_ci95[1]))
    assert a_side.elo_ci95[1] == pytest.approx(negated(b_side.elo_ci95[0]))
    assert a_side.los == pytest.approx(1.0 - b_side.los, abs=1e-12)
    assert b_side.llr is not None and a_side.llr is not None
    assert a_side.llr == pytest.approx(-b_side.llr, rel=1e-9, abs=1e-9)


@PROPERTIES
@given(counts_5, elo_bounds, st.integers(2, 50))
def test_llr_scales_with_the_number_of_pairs(counts: tuple[int, int, int, int, int], bounds: tuple[float, float],
                                             factor: int) -> None:
    # The same frequencies over `factor` times the pairs: the same best distributions, `factor` times the LLR.
    sprt = Sprt(*bounds)
    once = compare_pairs(Pentanomial(counts), sprt).llr
    scaled = compare_pairs(Pentanomial((counts[0] * factor, counts[1] * factor, counts[2] * factor,
                                        counts[3] * factor, counts[4] * factor)), sprt).llr
    assert once is not None and scaled is not None
    assert scaled == pytest.approx(factor * once, rel=1e-9, abs=1e-9)


@PROPERTIES
@given(st.one_of(counts_5, st.tuples(*[st.integers(0, 3)] * 5)), st.one_of(st.none(), elo_bounds))
def test_every_document_is_json_and_consistent(counts: tuple[int, int, int, int, int],
                                               bounds: tuple[float, float] | None) -> None:
    result = compare_pairs(Pentanomial(counts), None if bounds is None else Sprt(*bounds))
    document = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert 0.0 <= document["los"] <= 1.0
    lower, upper = document["elo_ci95"]
    if document["elo"] is not None:
        assert lower is None or lower <= document["elo"] + 1e-9
        assert upper is None or document["elo"] <= upper + 1e-9
    assert (document["llr"] is None) == (bounds is None)


# Empty data, no test, and W/D/L alongside pairs

DOCUMENT_KEYS = ["games", "wins", "draws", "losses", "pairs", "elo", "elo_ci95", "los", "llr", "llr_bounds", "verdict"]


def test_zero_pairs_give_a_valid_document() -> None:
    document = compare_pairs(Pentanomial((0, 0, 0, 0, 0)), Sprt(0.0, 5.0)).to_json()
    assert list(document) == DOCUMENT_KEYS
    assert json.loads(json.dumps(document, allow_nan=False)) == {
        "games": 0, "wins": None, "draws": None, "losses": None, "pairs": [0, 0, 0, 0, 0],
        "elo": None, "elo_ci95": [None, None], "los": 0.5, "llr": 0.0,
        "llr_bounds": [pytest.approx(-WALD_BOUND), pytest.approx(WALD_BOUND)], "verdict": "inconclusive",
    }
    empty_games = compare_wdl(WDL(0, 0, 0), Sprt(0.0, 5.0)).to_json()
    assert json.dumps(empty_games, allow_nan=False)
    assert (empty_games["games"], empty_games["elo"], empty_games["llr"]) == (0, None, 0.0)


def test_data_in_one_bucket_has_a_closed_interval() -> None:
    result = compare_pairs(Pentanomial((0, 0, 0, 12, 0)))
    # Every pair scored 3/4: Elo 400 log10(3) = 190.85, no spread, so the interval is that point.
    assert result.elo == pytest.approx(400 * math.log10(3))
    assert result.elo_ci95 == (result.elo, result.elo)
    assert result.los == 1.0


def test_without_a_test_there_is_no_llr_and_no_verdict() -> None:
    result = compare_pairs(Pentanomial((0, 0, 0, 0, 500)))
    assert (result.llr, result.llr_bounds, result.verdict) == (None, None, Verdict.INCONCLUSIVE)
    document = result.to_json()
    assert (document["llr"], document["llr_bounds"], document["verdict"]) == (None, None, "inconclusive")
    assert compare_wdl(WDL(3, 4, 5)).llr is None


def test_known_games_fill_in_the_pairs_document() -> None:
    pairs = Pentanomial.from_pairs([("W", "L"), ("D", "D"), ("W", "D"), ("L", "L")])
    wdl = WDL.from_results(["W", "L", "D", "D", "W", "D", "L", "L"])
    result = compare_pairs(pairs, Sprt(0.0, 5.0), wdl=wdl)
    assert isinstance(result, Comparison)
    assert (result.games, result.wins, result.draws, result.losses) == (8, 2, 3, 3)
    assert result.pairs == (1, 0, 2, 1, 0)
    assert result.llr == compare_pairs(pairs, Sprt(0.0, 5.0)).llr  # the games add no information to the test


@pytest.mark.parametrize("wdl", [WDL(2, 3, 2), WDL(3, 2, 3), WDL(4, 0, 4)])
def test_games_that_disagree_with_the_pairs_are_refused(wdl: WDL) -> None:
    # The pairs hold 8 games worth 3.5 points (7 half points: 0 + 2 + 2 + 3). The first W/D/L holds
    # 7 games; the others hold 8 games worth 4 points.
    pairs = Pentanomial((1, 0, 2, 1, 0))
    with pytest.raises(ValueError):
        compare_pairs(pairs, wdl=wdl)
