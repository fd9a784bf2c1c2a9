"""One conformance test for every registered game (after PettingZoo's ``api_test``/``seed_test``).

The rules only know their own actions, so the driver finds legal ones by probing
``parse_action`` with small integers and mixes in junk that must be refused with
``IllegalAction`` and nothing else.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from protocol.errors import IllegalAction
from server.matches.games import GAMES, Game, Outcome, Termination, game_names, resolve_config

EPISODES = 200
PROBES: list[Any] = list(range(-1, 100))
JUNK: list[Any] = [None, True, False, -1, 10**9, 2.0, "1", "rock", [0], {"column": 0}, float("nan")]
STEP_CHOICES = [2, 3, 7, 30, 100]


def make(name: str, overrides: dict[str, Any] | None, seed: int) -> Game:
    game_cls = GAMES[name]
    return game_cls(resolve_config(game_cls, overrides), random.Random(seed))


def legal_actions(game: Game, seat: int) -> list[Any]:
    legal = []
    for action in PROBES:
        try:
            legal.append(game.parse_action(seat, action))
        except IllegalAction:
            pass
    return legal


def choose(game: Game, seat: int, rng: random.Random) -> Any:
    """A legal action for ``seat``, after trying some junk on the way."""
    if rng.random() < 0.2:
        junk = rng.choice(JUNK + PROBES)
        try:
            return game.parse_action(seat, junk)
        except IllegalAction as exc:
            assert str(exc), "IllegalAction without a message"
    legal = legal_actions(game, seat)
    if not legal:
        pytest.fail(f"{game.name}: no legal action among probes for seat {seat} at step {game.step}")
    return rng.choice(legal)


def check_snapshot(game: Game) -> dict[str, Any]:
    state = game.state()
    assert orjson.loads(orjson.dumps(state)) == state
    for seat in range(game.num_seats):
        observation = game.observation(seat)
        assert orjson.loads(orjson.dumps(observation)) == observation
        assert observation["step"] == game.step
    assert isinstance(game.render(), str) and game.render()
    return state


def play(game: Game, rng: random.Random) -> list[dict[str, Any]]:
    """Play to the end with random actions; return the state after every step."""
    states = [check_snapshot(game)]
    limit = game.config["episodeSteps"]
    while game.outcome() is None:
        to_act = game.to_act()
        assert to_act, f"{game.name}: nobody to act at step {game.step} but no outcome"
        assert all(0 <= seat < game.num_seats for seat in to_act)
        for seat in set(range(game.num_seats)) - set(to_act):
            with pytest.raises(IllegalAction):
                game.parse_action(seat, rng.choice(PROBES))
        actions = {seat: choose(game, seat, rng) for seat in to_act}
        step = game.step
        game.apply(actions)
        assert game.step == step + 1
        states.append(check_snapshot(game))
        assert game.step < limit, f"{game.name}: still going at step {game.step} of episodeSteps {limit}"
    check_outcome(game, game.outcome())
    assert game.to_act() == ()
    with pytest.raises(IllegalAction):
        game.parse_action(0, rng.choice(PROBES))
    return states


def check_outcome(game: Game, outcome: Outcome | None) -> None:
    assert outcome is not None
    assert isinstance(outcome.termination, Termination)
    assert len(outcome.rewards) == game.num_seats
    assert all(isinstance(r, float) for r in outcome.rewards)
    assert outcome.winner is None or 0 <= outcome.winner < game.num_seats
    if outcome.winner is not None:
        assert outcome.rewards[outcome.winner] == max(outcome.rewards)


@pytest.mark.parametrize("name", game_names())
def test_class_attributes(name: str) -> None:
    game_cls = GAMES[name]
    assert game_cls.name == name
    assert isinstance(game_cls.title, str) and game_cls.title
    assert isinstance(game_cls.rules_version, int)
    assert game_cls.num_seats >= 1
    resolve_config(game_cls, None)  # the defaults pass the game's own checks


@pytest.mark.parametrize("name", game_names())
def test_random_play_follows_the_api(name: str) -> None:
    rng = random.Random(f"conformance-{name}")
    for episode in range(EPISODES):
        # Mostly short episodes, so step limits are hit; a few at the game's defaults.
        overrides = {"episodeSteps": rng.choice(STEP_CHOICES)} if episode % 20 else None
        play(make(name, overrides, seed=episode), rng)


@pytest.mark.parametrize("name", game_names())
def test_same_seed_and_actions_give_same_states(name: str) -> None:
    for seed in range(10):
        overrides = {"episodeSteps": 60}
        first = play(make(name, overrides, seed), random.Random(seed))
        second = play(make(name, overrides, seed), random.Random(seed))
        assert first == second


@pytest.mark.parametrize("name", game_names())
def test_snapshots_are_copies(name: str) -> None:
    game = make(name, None, seed=0)
    before = orjson.dumps(game.state())
    for value in (*game.state().values(), *game.observation(0).values()):
        if isinstance(value, list):
            value.clear()
    assert orjson.dumps(game.state()) == before


@pytest.mark.parametrize("name", game_names())
def test_apply_refuses_what_parse_action_refuses(name: str) -> None:
    game = make(name, None, seed=0)
    with pytest.raises(IllegalAction):
        game.apply({seat: "junk" for seat in game.to_act()})
    with pytest.raises(IllegalAction):
        game.apply({})
    assert game.step == 0
