"""The ladder's pure rules: rating a match from its rewards, and pairing agents for the scheduler."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from server.ladder.rules import (
    DEFAULT_SKILL,
    FEATURED_POOL,
    NEAREST_OPPONENTS,
    PROVISIONAL_MATCHES,
    Candidate,
    Skill,
    choose_featured_pair,
    choose_pair,
    display_rating,
    is_rated_match,
    ranks_from_rewards,
    rate_match,
)

# -- rating ------------------------------------------------------------------------------------------


def test_a_new_agent_shows_1000() -> None:
    assert DEFAULT_SKILL == Skill(mu=25.0, sigma=25.0 / 3)
    assert DEFAULT_SKILL.rating == 1000.0
    assert display_rating(30.0, 2.0) == 1000.0 + 40 * 24.0
    assert display_rating(25.0, 8.0) == 1040.0


def test_ranks_from_rewards() -> None:
    assert ranks_from_rewards([1.0, -1.0]) == [0, 1]
    assert ranks_from_rewards([-1.0, 1.0]) == [1, 0]
    assert ranks_from_rewards([0.0, 0.0]) == [0, 0]
    assert ranks_from_rewards([3.0, 1.0, 3.0, 0.5]) == [0, 2, 0, 3]
    assert ranks_from_rewards([None, -5.0]) == [1, 0]  # a missing reward is below every number


def test_the_winner_goes_up_and_the_loser_down() -> None:
    winner, loser = rate_match([DEFAULT_SKILL, DEFAULT_SKILL], [1.0, -1.0])
    assert winner.mu > DEFAULT_SKILL.mu > loser.mu
    assert winner.sigma < DEFAULT_SKILL.sigma and loser.sigma < DEFAULT_SKILL.sigma
    assert winner.rating > 1000.0 > loser.rating
    assert winner.mu - DEFAULT_SKILL.mu == pytest.approx(DEFAULT_SKILL.mu - loser.mu)  # zero-sum in mu
    # Seat order does not matter, only the rewards.
    loser2, winner2 = rate_match([DEFAULT_SKILL, DEFAULT_SKILL], [-1.0, 1.0])
    assert (winner2, loser2) == (winner, loser)


def test_a_draw_between_equals_moves_no_skill_but_narrows_uncertainty() -> None:
    a, b = rate_match([DEFAULT_SKILL, DEFAULT_SKILL], [0.0, 0.0])
    assert a.mu == pytest.approx(25.0) and b.mu == pytest.approx(25.0)
    assert a.sigma < DEFAULT_SKILL.sigma and a.rating > 1000.0  # surer, so the conservative number rises


def test_an_upset_moves_ratings_more_than_the_expected_result() -> None:
    strong, weak = Skill(35.0, 3.0), Skill(15.0, 3.0)
    strong_won, weak_lost = rate_match([strong, weak], [1.0, 0.0])
    strong_lost, weak_won = rate_match([strong, weak], [0.0, 1.0])
    assert weak_won.mu - weak.mu > strong_won.mu - strong.mu > 0
    assert strong.mu - strong_lost.mu > weak.mu - weak_lost.mu > 0


def test_repeated_wins_climb_and_repeated_losses_fall() -> None:
    winner = loser = DEFAULT_SKILL
    for _ in range(20):
        new_winner, new_loser = rate_match([winner, loser], [1.0, 0.0])
        assert new_winner.rating > winner.rating and new_loser.rating < loser.rating
        winner, loser = new_winner, new_loser


def test_more_than_two_seats_and_ties() -> None:
    first, second_a, second_b, last = rate_match([DEFAULT_SKILL] * 4, [3.0, 1.0, 1.0, 0.0])
    assert first.mu > second_a.mu > last.mu
    assert second_a == second_b


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 skills for 3 rewards"):
        rate_match([DEFAULT_SKILL] * 2, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="at least two seats"):
        rate_match([DEFAULT_SKILL], [1.0])


def test_only_matches_between_distinct_agents_are_rated() -> None:
    assert is_rated_match([1, 2])
    assert is_rated_match([3, 1, 2])
    assert not is_rated_match([1, 1])
    assert not is_rated_match([1, 2, 1])
    assert not is_rated_match([1])
    assert not is_rated_match([])


# -- pairing -----------------------------------------------------------------------------------------


def test_no_pair_without_two_distinct_agents() -> None:
    rng = random.Random(1)
    assert choose_pair([], rng) is None
    assert choose_pair([Candidate(1, 1000.0, 0)], rng) is None
    assert choose_pair([Candidate(1, 1000.0, 0), Candidate(1, 1000.0, 0)], rng) is None  # the same agent twice


def test_an_agent_never_plays_itself_and_pairs_are_reproducible() -> None:
    candidates = [Candidate(i, 900.0 + 37 * i, 1 + i % 4, last_played=float(i)) for i in range(8)]
    pairs = []
    for seed in range(300):
        pair = choose_pair(candidates, random.Random(seed))
        assert pair is not None
        first, second = pair
        assert first.agent_id != second.agent_id
        pairs.append((first.agent_id, second.agent_id))
    assert pairs == [
        tuple(c.agent_id for c in choose_pair(candidates, random.Random(seed)) or ()) for seed in range(300)
    ]
    assert len(set(pairs)) > 5  # there is randomness


def test_provisional_agents_are_paired_first() -> None:
    veterans = [Candidate(i, 1500.0, 50, last_played=0.0) for i in range(1, 6)]
    newcomer = Candidate(99, 1000.0, 1, last_played=10.0)  # one rated match so far
    firsts = Counter()
    rng = random.Random(7)
    for _ in range(2000):
        pair = choose_pair([*veterans, newcomer], rng)
        assert pair is not None
        firsts[pair[0].agent_id] += 1
    assert firsts.most_common(1)[0][0] == 99
    assert firsts[99] > 2000 / 6 * 1.4  # well above a fair share
    # Below the provisional threshold, fewer rated matches come first.
    almost = Candidate(98, 1000.0, PROVISIONAL_MATCHES - 1)
    counts = Counter()
    for _ in range(2000):
        pair = choose_pair([*veterans, newcomer, almost], rng)
        assert pair is not None
        counts[pair[0].agent_id] += 1
    assert counts[99] > counts[98] > max(counts[v.agent_id] for v in veterans)


def test_among_established_agents_the_least_recently_played_comes_first() -> None:
    agents = [Candidate(i, 1200.0, 40, last_played=100.0 + i) for i in range(1, 6)]  # 1 played longest ago
    counts = Counter()
    rng = random.Random(3)
    for _ in range(3000):
        pair = choose_pair(agents, rng)
        assert pair is not None
        counts[pair[0].agent_id] += 1
    assert [agent_id for agent_id, _ in counts.most_common()] == [1, 2, 3, 4, 5]


def test_the_opponent_is_close_in_rating() -> None:
    # Agent 1 is the only provisional one, so it is drawn first most often; watch its opponents.
    me = Candidate(1, 1000.0, 0)
    others = [Candidate(10 + i, 1000.0 + offset, 30) for i, offset in enumerate([-500, -40, 10, 60, 300, 900, 25])]
    nearest = sorted(others, key=lambda c: abs(c.rating - me.rating))[:NEAREST_OPPONENTS]
    seen = Counter()
    rng = random.Random(11)
    for _ in range(3000):
        pair = choose_pair([me, *others], rng)
        assert pair is not None
        if pair[0] == me:
            seen[pair[1].agent_id] += 1
    assert sum(seen.values()) > 500
    assert set(seen) == {c.agent_id for c in nearest}
    # The closest is drawn most often.
    assert seen.most_common(1)[0][0] == nearest[0].agent_id


def test_an_agent_that_has_not_played_goes_first_for_sure() -> None:
    """A new agent, or a new version (no rated match of its current version), is paired first every time."""
    rng = random.Random(1)
    veterans = [Candidate(i, 1000.0 + i, 20, last_played=float(i)) for i in range(1, 9)]
    newcomer = Candidate(99, 1000.0, 0, last_played=None)
    for _ in range(50):
        pair = choose_pair([*veterans, newcomer], rng)
        assert pair is not None and pair[0] == newcomer


def test_a_featured_pair_comes_from_the_best_rated() -> None:
    rng = random.Random(2)
    field = [Candidate(i, 900.0 + 10 * i, 15, last_played=float(i)) for i in range(30)]
    best = {c.agent_id for c in sorted(field, key=lambda c: -c.rating)[:FEATURED_POOL]}
    for _ in range(100):
        pair = choose_featured_pair(field, rng)
        assert pair is not None and {c.agent_id for c in pair} <= best
    # Agents without a rated match yet are shown only when there are too few others.
    unrated = [Candidate(100 + i, 2000.0, 0) for i in range(3)]
    pair = choose_featured_pair([*field, *unrated], rng)
    assert pair is not None and not {c.agent_id for c in pair} & {100, 101, 102}
