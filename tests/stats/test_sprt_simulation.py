"""The sequential test keeps its promises, by simulation: pairs of games drawn from a model with
a known Elo difference (each game independent, a draw rate of 0.3, wins and losses from the
logistic score), the test looked at every ``LOOK`` pairs as a tester that collects games in
batches does, until it decides. Seeded: the same runs every time."""

from __future__ import annotations

import math
import random

import pytest

from server.stats.sprt import Pentanomial, Sprt, Verdict, compare_pairs, score_from_elo

pytestmark = pytest.mark.slow

DRAWS = 0.3
LOOK = 16  # pairs between two looks at the test
CAP = 40_000  # pairs: a run this long is a failure of the test (it always ends in practice)


def run(rng: random.Random, elo: float, sprt: Sprt) -> Verdict:
    """One sequential test on games whose true difference is ``elo``: its verdict."""
    score = score_from_elo(elo)
    win, loss = score - DRAWS / 2, 1 - score - DRAWS / 2
    counts = [0] * 5
    for pairs in range(1, CAP + 1):
        points = 0
        for _ in range(2):
            u = rng.random()
            points += 2 if u < win else 0 if u < win + loss else 1
        counts[points] += 1
        if pairs % LOOK == 0:
            verdict = compare_pairs(Pentanomial((counts[0], counts[1], counts[2], counts[3], counts[4])), sprt).verdict
            if verdict is not Verdict.INCONCLUSIVE:
                return verdict
    raise AssertionError(f"no verdict after {CAP} pairs")


def test_a_bot_against_itself_is_accepted_as_stronger_no_more_often_than_alpha() -> None:
    sprt, runs = Sprt(0, 10, alpha=0.05, beta=0.05), 1000
    rng = random.Random(2024)
    accepted = sum(run(rng, 0.0, sprt) is Verdict.H1 for _ in range(runs))
    standard_error = math.sqrt(sprt.alpha * (1 - sprt.alpha) / runs)
    assert accepted / runs <= sprt.alpha + 2 * standard_error, accepted


def test_a_true_difference_of_elo1_is_accepted_at_the_promised_rate() -> None:
    sprt, runs = Sprt(0, 10, alpha=0.05, beta=0.05), 400
    rng = random.Random(7)
    accepted = sum(run(rng, 10.0, sprt) is Verdict.H1 for _ in range(runs))
    power = 1 - sprt.beta
    standard_error = math.sqrt(power * (1 - power) / runs)
    assert accepted / runs >= power - 2 * standard_error, accepted
