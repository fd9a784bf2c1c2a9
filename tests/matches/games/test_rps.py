"""Rock-paper-scissors rules, checked against Kaggle's ``rps`` environment."""

from __future__ import annotations

import random

import pytest

from protocol.errors import ConfigError, IllegalAction
from server.matches.games import Outcome, RockPaperScissors, Termination, resolve_config
from server.matches.games.rps import get_score

ROCK, PAPER, SCISSORS, SPOCK, LIZARD = range(5)


def new_game(**overrides: object) -> RockPaperScissors:
    return RockPaperScissors(resolve_config(RockPaperScissors, overrides), random.Random(0))


def play(game: RockPaperScissors, rounds: list[tuple[int, int]]) -> None:
    for left, right in rounds:
        assert game.to_act() == (0, 1)
        game.apply({0: game.parse_action(0, left), 1: game.parse_action(1, right)})


def test_score_table_three_signs() -> None:
    table = [[get_score(a, b) for b in range(3)] for a in range(3)]
    assert table == [
        [0, -1, 1],  # rock loses to paper, beats scissors
        [1, 0, -1],  # paper beats rock, loses to scissors
        [-1, 1, 0],  # scissors loses to rock, beats paper
    ]


def test_score_table_five_signs() -> None:
    # Kaggle's get_score: with a + b even the lower sign wins, with a + b odd the higher one.
    table = [[get_score(a, b) for b in range(5)] for a in range(5)]
    assert table == [
        [0, -1, 1, -1, 1],
        [1, 0, -1, 1, -1],
        [-1, 1, 0, -1, 1],
        [1, -1, 1, 0, -1],
        [-1, 1, -1, 1, 0],
    ]
    # Every sign beats exactly two others and loses to two: the game is balanced.
    assert all(sorted(row) == [-1, -1, 0, 1, 1] for row in table)


def test_observations_follow_kaggle() -> None:
    game = new_game()
    assert game.observation(0) == {"step": 0, "lastOpponentAction": None, "reward": 0}
    play(game, [(PAPER, ROCK)])
    assert game.observation(0) == {"step": 1, "lastOpponentAction": ROCK, "reward": 1}
    assert game.observation(1) == {"step": 1, "lastOpponentAction": PAPER, "reward": -1}
    play(game, [(ROCK, ROCK), (ROCK, PAPER), (ROCK, PAPER)])
    assert game.scores == [-1, 1]
    assert game.state() == {
        "step": 4,
        "to_act": [0, 1],
        "scores": [-1, 1],
        "last_actions": [0, 1],
        "winner": None,
    }


def test_episode_has_episode_steps_minus_one_rounds() -> None:
    game = new_game(episodeSteps=10)
    play(game, [(ROCK, SCISSORS)] * 8)
    assert game.outcome() is None
    play(game, [(ROCK, SCISSORS)])
    assert game.step == 9
    assert game.outcome() is not None
    assert game.to_act() == ()
    with pytest.raises(IllegalAction, match="the game is over"):
        game.parse_action(0, ROCK)


def test_default_episode_is_999_rounds() -> None:
    game = new_game()
    while game.outcome() is None:
        play(game, [(game.step % 3, (game.step + 1) % 3)])
    assert game.step == 999
    assert game.outcome() == Outcome((-999.0, 999.0), Termination.SCORE, 1)


@pytest.mark.parametrize(
    ("margin", "outcome"),
    [
        (19, Outcome((0.0, 0.0), Termination.SCORE)),
        (-19, Outcome((0.0, 0.0), Termination.SCORE)),
        (20, Outcome((20.0, -20.0), Termination.SCORE, 0)),
        (-20, Outcome((-20.0, 20.0), Termination.SCORE, 1)),
        (0, Outcome((0.0, 0.0), Termination.SCORE)),
    ],
)
def test_tie_reward_threshold(margin: int, outcome: Outcome) -> None:
    game = new_game(episodeSteps=31)
    rounds = [(PAPER, ROCK) if margin > 0 else (ROCK, PAPER)] * abs(margin)
    rounds += [(SCISSORS, SCISSORS)] * (30 - len(rounds))
    play(game, rounds)
    assert game.outcome() == outcome


def test_custom_threshold_and_five_signs() -> None:
    game = new_game(episodeSteps=4, tieRewardThreshold=2, signs=5)
    play(game, [(LIZARD, SPOCK), (SPOCK, SCISSORS), (ROCK, ROCK)])
    assert game.outcome() == Outcome((2.0, -2.0), Termination.SCORE, 0)
    assert "seat 0 wins" in game.render()


@pytest.mark.parametrize("action", [3, -1, True, 1.0, "1", None])
def test_bad_signs(action: object) -> None:
    with pytest.raises(IllegalAction, match=r"action must be an integer in 0\.\.2, got"):
        new_game().parse_action(0, action)


def test_apply_needs_both_seats() -> None:
    game = new_game()
    with pytest.raises(IllegalAction, match=r"no action for seats \[1\]"):
        game.apply({0: ROCK})
    assert game.step == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"signs": 2}, r"config signs must be in 3\.\.5, got 2"),
        ({"signs": 6}, r"config signs must be in 3\.\.5, got 6"),
        ({"tieRewardThreshold": 0}, r"config tieRewardThreshold must be in 1\.\.1000, got 0"),
        ({"episodeSteps": 1}, r"config episodeSteps must be in 2\.\.10000, got 1"),
    ],
)
def test_config_ranges(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(RockPaperScissors, overrides)


def test_render() -> None:
    game = new_game(episodeSteps=5)
    play(game, [(PAPER, ROCK)])
    assert game.render() == "step 1 of 4\nlast: Paper vs Rock\nscore: 1 : -1"
