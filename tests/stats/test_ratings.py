"""Elo ratings by maximum likelihood (``server/stats/ratings.py``).

Values are checked against numbers worked out here another way: the closed forms for two players,
a three-player design whose maximum is known by construction with its Fisher information inverted
by hand, a one-parameter bisection for the prior. Properties (the score equations, symmetry, the
anchor, the order of results) and degenerate inputs cover the rest.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.stats.ratings import ELO_PER_NATURAL_UNIT, Z95, PlayerRating, Ratings, crosstable, fit_ratings

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True, database=None)
SCALE = 400.0 / math.log(10.0)  # Elo per natural unit, written out here
Result = tuple[int, int, float]


def games_of(i: int, j: int, wins: int, draws: int, losses: int) -> list[Result]:
    """``i``'s wins, draws and losses against ``j``, as results."""
    return [(i, j, 1.0)] * wins + [(i, j, 0.5)] * draws + [(j, i, 1.0)] * losses


def elo_of(rating: PlayerRating) -> float:
    assert rating.elo is not None
    return rating.elo


def se_of(rating: PlayerRating) -> float:
    assert rating.se is not None
    return rating.se


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def serializes(ratings: Ratings) -> str:
    return json.dumps(ratings.to_json(), allow_nan=False)


# Two players: closed forms.


@pytest.mark.parametrize(("wins", "draws", "losses"), [(7, 0, 3), (3, 0, 7), (5, 5, 5), (60, 30, 10), (1, 0, 1000)])
def test_two_players_maximum_likelihood_is_the_elo_of_the_mean_score(wins: int, draws: int, losses: int) -> None:
    ratings = fit_ratings(2, games_of(1, 0, wins, draws, losses), prior_draws=0)
    games = wins + draws + losses
    s = (wins + 0.5 * draws) / games  # player 1's mean score
    r0, r1 = elo_of(ratings.players[0]), elo_of(ratings.players[1])
    assert r1 - r0 == pytest.approx(400.0 * math.log10(s / (1.0 - s)), abs=1e-7)
    assert r0 + r1 == pytest.approx(0.0, abs=1e-9)
    # The Fisher information of the difference is N s (1 - s) / SCALE^2; each rating is half the difference.
    se_difference = SCALE / math.sqrt(games * s * (1.0 - s))
    difference, se = ratings.difference(1, 0)
    assert difference == pytest.approx(r1 - r0)
    assert se == pytest.approx(se_difference, rel=1e-7)
    for player in ratings.players:
        assert se_of(player) == pytest.approx(se_difference / 2.0, rel=1e-7)
        elo, se_player = elo_of(player), se_of(player)
        assert player.ci95 == pytest.approx((elo - Z95 * se_player, elo + Z95 * se_player))
    assert ratings.players[1].games == games
    assert ratings.players[1].score == wins + 0.5 * draws
    assert ratings.players[0].score == losses + 0.5 * draws


@pytest.mark.parametrize("prior", [0.5, 1.0, 3.0])
@pytest.mark.parametrize(("wins", "draws", "losses"), [(10, 0, 0), (7, 2, 1), (0, 4, 0), (2, 0, 9)])
def test_two_players_with_the_prior_by_bisection(prior: float, wins: int, draws: int, losses: int) -> None:
    # With d = r1 - r0 in natural units, r1 = d/2 and r0 = -d/2, and each player's virtual draws are
    # against the mean (0), at +-d/2. The log-posterior in d is
    #   W log s(d) + L' log s(-d) + prior * (log s(d/2) + log s(-d/2)),
    # W and L' player 1's and player 0's points; its derivative W - N s(d) + prior (1/2 - s(d/2))
    # decreases in d, and its curvature is N s'(d) + prior/2 s'(d/2), s' = s (1 - s).
    games = wins + draws + losses
    points = wins + 0.5 * draws

    def slope(d: float) -> float:
        return points - games * sigmoid(d) + prior * (0.5 - sigmoid(d / 2.0))

    low, high = -60.0, 60.0
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if slope(middle) > 0.0 else (low, middle)
    d = (low + high) / 2.0
    curvature = games * sigmoid(d) * (1.0 - sigmoid(d)) + prior / 2.0 * sigmoid(d / 2.0) * (1.0 - sigmoid(d / 2.0))

    ratings = fit_ratings(2, games_of(1, 0, wins, draws, losses), prior_draws=prior)
    difference, se = ratings.difference(1, 0)
    assert difference == pytest.approx(d * SCALE, abs=1e-6)
    assert se == pytest.approx(SCALE / math.sqrt(curvature), rel=1e-7)
    assert elo_of(ratings.players[1]) == pytest.approx(d * SCALE / 2.0, abs=1e-6)


def test_a_sweep_with_the_default_prior() -> None:
    # 10 wins out of 10, one virtual draw each: the maximum has 10 (1 - s(d)) = s(d/2) - 1/2 (see the
    # bisection above), so 10 (1 - s(d)) < 1/2, d > ln 19 (511 Elo); in fact s(d/2) is near 0.8 and d
    # about 580 Elo.
    ratings = fit_ratings(2, games_of(0, 1, 10, 0, 0))
    difference, se = ratings.difference(0, 1)
    assert difference is not None and se is not None
    d = difference / SCALE
    assert 10.0 * (1.0 - sigmoid(d)) == pytest.approx(sigmoid(d / 2.0) - 0.5, abs=1e-12)
    assert 400.0 * math.log10(19.0) < difference < 600.0
    assert 0.0 < se < difference


def test_the_prior_fades_with_games() -> None:
    mle = 400.0 * math.log10(0.7 / 0.3)
    gaps = []
    for scale in (1, 10, 100):
        ratings = fit_ratings(2, games_of(0, 1, 7 * scale, 0, 3 * scale))
        difference, _ = ratings.difference(0, 1)
        assert difference is not None and difference < mle  # pulled towards the mean
        gaps.append(mle - difference)
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1.0


# Three players.


def test_three_players_by_construction_and_their_errors_by_hand() -> None:
    # 15 games a pair: 0 scores 10 against 1, 1 scores 10 against 2, 0 scores 12 against 2. At
    # ratings (d, 0, -d) with d = 400 log10(2), odds 2:1 a step and 4:1 over two, the expected
    # scores are 15 * 2/3 = 10, 10 and 15 * 4/5 = 12: the observed ones, so that is the maximum
    # (the likelihood depends on the games only through each player's points, given who played whom).
    results = games_of(0, 1, 10, 0, 5) + games_of(1, 2, 10, 0, 5) + games_of(0, 2, 12, 0, 3)
    ratings = fit_ratings(3, results, prior_draws=0)
    d = 400.0 * math.log10(2.0)
    assert [elo_of(player) for player in ratings.players] == pytest.approx([d, 0.0, -d], abs=1e-7)
    # The Fisher information, natural units: weights N p (1 - p) per pair.
    w01, w12, w02 = 15 * 2 / 3 * 1 / 3, 15 * 2 / 3 * 1 / 3, 15 * 4 / 5 * 1 / 5
    # In the mean-zero coordinates (x, y) with ratings (x, y, -x - y), it is A^T L A with
    # A = [[1, 0], [0, 1], [-1, -1]], L the weighted Laplacian; written out:
    a = (w01 + w02) + (w02 + w12) + 2 * w02  # L00 + L22 - 2 L02
    b = -w01 + (w02 + w12) + w02 + w12  # L01 + L22 - L02 - L12
    c = (w01 + w12) + (w02 + w12) + 2 * w12  # L11 + L22 - 2 L12
    det = a * c - b * b
    var_x, var_y, cov_xy = c / det, a / det, -b / det
    var_z = var_x + var_y + 2 * cov_xy  # z = -x - y
    expected = [math.sqrt(v) * SCALE for v in (var_x, var_y, var_z)]
    assert [se_of(player) for player in ratings.players] == pytest.approx(expected, rel=1e-7)
    _, se_01 = ratings.difference(0, 1)
    assert se_01 == pytest.approx(math.sqrt(var_x + var_y - 2 * cov_xy) * SCALE, rel=1e-7)


def test_three_players_in_a_symmetric_design() -> None:
    # Every pair scores 4-4 (two wins each and four draws): all ratings 0. The information is
    # w (3 I - J) with w = 8/4 = 2 per pair; its pseudo-inverse (I - J/3) / (3 w) has diagonal 2 / (9 w).
    results = games_of(0, 1, 2, 4, 2) + games_of(1, 2, 2, 4, 2) + games_of(2, 0, 2, 4, 2)
    ratings = fit_ratings(3, results, prior_draws=0)
    for player in ratings.players:
        assert elo_of(player) == pytest.approx(0.0, abs=1e-9)
        assert se_of(player) == pytest.approx(math.sqrt(2.0 / 9.0 / 2.0) * SCALE, rel=1e-9)


# Properties.


@st.composite
def tournaments(draw: st.DrawFn) -> tuple[int, list[Result]]:
    """Random results among 2 to 7 players, with a draw between neighbours so that the maximum exists."""
    n = draw(st.integers(2, 7))
    results: list[Result] = [(i, i + 1, 0.5) for i in range(n - 1)] + [(n - 1, 0, 0.5)]
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda pair: pair[0] != pair[1])
    for i, j in draw(st.lists(pairs, max_size=40)):
        results.append((i, j, draw(st.sampled_from((0.0, 0.5, 1.0)))))
    return n, results


@given(tournaments())
@PROPERTIES
def test_the_maximum_satisfies_the_score_equations(tournament: tuple[int, list[Result]]) -> None:
    # At the maximum likelihood each player's expected score equals its points.
    n, results = tournament
    ratings = fit_ratings(n, results, prior_draws=0)
    elos = [elo_of(player) for player in ratings.players]
    for player in range(n):
        expected = 0.0
        for i, j, _ in results:
            if player in (i, j):
                other = j if player == i else i
                expected += 1.0 / (1.0 + 10.0 ** ((elos[other] - elos[player]) / 400.0))
        assert expected == pytest.approx(ratings.players[player].score, abs=1e-7)
    assert sum(elos) == pytest.approx(0.0, abs=1e-7)


@given(tournaments(), st.sampled_from((0.5, 1.0, 4.0)))
@PROPERTIES
def test_the_prior_is_draws_against_the_average(tournament: tuple[int, list[Result]], prior: float) -> None:
    # The log-posterior adds prior/2 * (log s(u_i) + log s(-u_i)) per player, u_i its rating above the
    # mean (natural units). At its maximum each player's points less its expected score, plus the
    # prior's pull prior * (1/2 - s(u_i)) less the mean pull, is zero.
    n, results = tournament
    results = results[n:]  # without the draws that made the plain maximum exist: the prior suffices
    ratings = fit_ratings(n, results, prior_draws=prior)
    rated = [player for player in range(n) if ratings.players[player].games]
    theta = {player: elo_of(ratings.players[player]) / SCALE for player in rated}
    for component in {ratings.players[player].component for player in rated}:
        members = [player for player in rated if ratings.players[player].component == component]
        mean = sum(theta[player] for player in members) / len(members)
        assert mean == pytest.approx(0.0, abs=1e-9)
        pull = {player: prior * (0.5 - sigmoid(theta[player] - mean)) for player in members}
        mean_pull = sum(pull.values()) / len(members)
        for player in members:
            expected = sum(sigmoid(theta[player] - theta[j if player == i else i])
                           for i, j, _ in results if player in (i, j))
            residual = ratings.players[player].score - expected + pull[player] - mean_pull
            assert residual == pytest.approx(0.0, abs=1e-8)
    serializes(ratings)


@given(tournaments(), st.sampled_from((0.0, 1.0)), st.randoms(use_true_random=False))
@PROPERTIES
def test_relabelling_and_reordering_move_the_ratings_with_the_players(tournament: tuple[int, list[Result]],
                                                                     prior: float, rng: random.Random) -> None:
    n, results = tournament
    ratings = fit_ratings(n, results, prior_draws=prior)
    label = list(range(n))
    rng.shuffle(label)
    relabelled = [(label[i], label[j], score) for i, j, score in results]
    rng.shuffle(relabelled)
    again = fit_ratings(n, relabelled, prior_draws=prior)
    for player in range(n):
        moved = again.players[label[player]]
        assert elo_of(moved) == pytest.approx(elo_of(ratings.players[player]), abs=1e-7)
        assert se_of(moved) == pytest.approx(se_of(ratings.players[player]), rel=1e-7)
        assert moved.games == ratings.players[player].games and moved.score == ratings.players[player].score
    assert sum(elo_of(player) for player in ratings.players) == pytest.approx(0.0, abs=1e-7)
    serializes(ratings)


def test_swapping_two_players_swaps_their_ratings() -> None:
    results = games_of(0, 1, 3, 1, 2) + games_of(1, 2, 4, 0, 1) + games_of(0, 2, 1, 1, 1)
    swapped = [({0: 1, 1: 0}.get(i, i), {0: 1, 1: 0}.get(j, j), s) for i, j, s in results]
    a, b = fit_ratings(3, results), fit_ratings(3, swapped)
    assert elo_of(a.players[0]) == pytest.approx(elo_of(b.players[1]), abs=1e-9)
    assert elo_of(a.players[1]) == pytest.approx(elo_of(b.players[0]), abs=1e-9)
    assert elo_of(a.players[2]) == pytest.approx(elo_of(b.players[2]), abs=1e-9)


def test_the_order_of_results_does_not_matter() -> None:
    results = games_of(0, 1, 5, 2, 3) + games_of(2, 1, 1, 3, 6) + games_of(3, 0, 2, 2, 2) + games_of(2, 3, 4, 0, 0)
    shuffled = results[:]
    random.Random(11).shuffle(shuffled)
    a, b = fit_ratings(4, results), fit_ratings(4, shuffled)
    assert [p.elo for p in a.players] == pytest.approx([p.elo for p in b.players], abs=1e-9)
    assert [p.se for p in a.players] == pytest.approx([p.se for p in b.players], rel=1e-9)


# Degenerate inputs.


def test_a_player_who_won_everything_is_finite_with_the_prior_and_none_without() -> None:
    results = games_of(0, 1, 6, 0, 0) + games_of(1, 2, 3, 2, 3)  # 0 beat 1 six times; 1 and 2 are even
    ratings = fit_ratings(3, results)
    elos = [elo_of(player) for player in ratings.players]
    assert elos[0] > elos[1] and elos[0] > elos[2]
    assert all(math.isfinite(elo) and math.isfinite(se_of(p)) for elo, p in zip(elos, ratings.players, strict=True))
    assert sum(elos) == pytest.approx(0.0, abs=1e-9)
    serializes(ratings)
    plain = fit_ratings(3, results, prior_draws=0)
    assert all(player.elo is None and player.se is None and player.ci95 == (None, None) for player in plain.players)
    assert plain.players[0].games == 6 and plain.players[0].score == 6.0
    assert plain.difference(0, 1) == (None, None)
    serializes(plain)


def test_a_chain_of_sweeps_is_ordered() -> None:
    # 0 always beats 1, 1 always beats 2, 2 always beats 3: no finite maximum anywhere.
    results = games_of(0, 1, 5, 0, 0) + games_of(1, 2, 5, 0, 0) + games_of(2, 3, 5, 0, 0)
    elos = [elo_of(player) for player in fit_ratings(4, results).players]
    assert elos[0] > elos[1] > elos[2] > elos[3]
    assert elos == pytest.approx([-e for e in reversed(elos)], abs=1e-7)  # the design is antisymmetric


def test_players_without_games_have_no_rating() -> None:
    ratings = fit_ratings(4, games_of(0, 2, 2, 1, 1))
    for player in (1, 3):
        assert ratings.players[player] == PlayerRating(games=0, score=0.0, elo=None, se=None, component=None)
        assert ratings.players[player].ci95 == (None, None)
    assert elo_of(ratings.players[0]) + elo_of(ratings.players[2]) == pytest.approx(0.0, abs=1e-9)
    document = json.loads(serializes(ratings))
    assert document["players"][1] == {"player": 1, "games": 0, "score": 0.0, "elo": None, "se": None,
                                      "ci95": [None, None], "component": None}


@pytest.mark.parametrize("prior", [0.0, 1.0])
def test_no_games_at_all(prior: float) -> None:
    for n in (1, 3):
        ratings = fit_ratings(n, [], prior_draws=prior)
        assert all(player.elo is None for player in ratings.players)
        serializes(ratings)


@pytest.mark.parametrize("prior", [0.0, 1.0])
def test_disconnected_components_are_each_anchored_at_zero(prior: float) -> None:
    results = games_of(0, 2, 3, 1, 1) + games_of(1, 3, 1, 0, 4) + games_of(3, 4, 2, 2, 1)
    ratings = fit_ratings(5, results, prior_draws=prior)
    assert [player.component for player in ratings.players] == [0, 1, 0, 1, 1]
    assert elo_of(ratings.players[0]) + elo_of(ratings.players[2]) == pytest.approx(0.0, abs=1e-9)
    assert sum(elo_of(ratings.players[p]) for p in (1, 3, 4)) == pytest.approx(0.0, abs=1e-9)
    assert ratings.difference(0, 1) == (None, None)
    assert ratings.covariance[0][1] is None and ratings.covariance[0][2] is not None
    # Each component is fitted as if alone.
    alone = fit_ratings(5, games_of(0, 2, 3, 1, 1), prior_draws=prior)
    assert elo_of(alone.players[0]) == pytest.approx(elo_of(ratings.players[0]), abs=1e-9)
    assert se_of(alone.players[0]) == pytest.approx(se_of(ratings.players[0]), rel=1e-9)
    serializes(ratings)


def test_a_lopsided_but_finite_maximum_converges() -> None:
    # 10000 wins to 1: the maximum is far out, 400 log10(10000) = 1600 Elo apart.
    ratings = fit_ratings(2, games_of(0, 1, 10000, 0, 1), prior_draws=0)
    difference, se = ratings.difference(0, 1)
    assert difference == pytest.approx(1600.0, abs=1e-6)
    assert se == pytest.approx(SCALE / math.sqrt(10001 * (10000 / 10001) * (1 / 10001)), rel=1e-6)


# The crosstable, the JSON document and bad input.


def test_the_crosstable_by_hand() -> None:
    results = [(0, 1, 1.0), (1, 0, 0.5), (2, 0, 0.0), (0, 2, 0.5), (1, 0, 1.0)]
    assert crosstable(4, results) == [
        [None, (1.5, 3), (1.5, 2), (0.0, 0)],
        [(1.5, 3), None, (0.0, 0), (0.0, 0)],
        [(0.5, 2), (0.0, 0), None, (0.0, 0)],
        [(0.0, 0), (0.0, 0), (0.0, 0), None],
    ]


def test_the_json_document() -> None:
    ratings = fit_ratings(2, games_of(0, 1, 2, 1, 1), prior_draws=0.5)
    document = ratings.to_json()
    assert document["prior_draws"] == 0.5
    first = json.loads(serializes(ratings))["players"][0]
    player = ratings.players[0]
    assert first == {"player": 0, "games": 4, "score": 2.5, "elo": player.elo, "se": player.se,
                     "ci95": list(player.ci95), "component": 0}


def test_elo_per_natural_unit() -> None:
    assert ELO_PER_NATURAL_UNIT == pytest.approx(SCALE)


@pytest.mark.parametrize(
    ("n", "results", "message"),
    [
        (0, [], "number of players"),
        (2, [(0, 0, 1.0)], "distinct players"),
        (2, [(0, 2, 1.0)], "distinct players"),
        (2, [(-1, 0, 1.0)], "distinct players"),
        (2, [(0, 1, 0.7)], "score"),
        (2, [(0, 1, float("nan"))], "score"),
        (2, [(0, 1, 2.0)], "score"),
    ],
)
def test_bad_input_is_refused(n: int, results: list[Result], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_ratings(n, results)
    with pytest.raises(ValueError, match=message):
        crosstable(n, results)


@pytest.mark.parametrize("prior", [-1.0, float("nan"), float("inf")])
def test_bad_priors_are_refused(prior: float) -> None:
    with pytest.raises(ValueError, match="prior_draws"):
        fit_ratings(2, [(0, 1, 1.0)], prior_draws=prior)
