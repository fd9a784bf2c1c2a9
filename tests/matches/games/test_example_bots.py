"""The example bots: they load Kaggle-style, play only legal moves and the smart ones win."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from typing import Any

import pytest

from protocol.errors import IllegalAction
from server.bots import example_bots
from server.matches.games import Game, get_game, resolve_config
from server.sandbox.seat.bot_runtime import Struct  # what a seat passes its bot

BOTS = example_bots()
ALL_BOTS = [(game, name, source) for game, bots in BOTS.items() for name, source in bots]
ALLOWED_IMPORTS = {"random", "math"}
FORBIDDEN_NAMES = {"open", "eval", "exec", "compile", "globals", "locals", "getattr", "input", "vars"}


Agent = Callable[[Struct, Struct], Any]


def load(source: str, seed: int) -> Agent:
    """Run a bot's source in a fresh namespace (a new match) with a seeded ``random``."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<bot>", "exec"), namespace)
    if "random" in namespace:
        namespace["random"] = random.Random(seed)
    agent: Agent = namespace["agent"]
    return agent


def play_match(game_name: str, sources: list[str], seed: int, **overrides: Any) -> Game:
    """Play one match between bot sources; every reply must be legal."""
    game_cls = get_game(game_name)
    config = resolve_config(game_cls, overrides)
    game = game_cls(config, random.Random(seed))
    agents = [load(source, seed * 10 + seat) for seat, source in enumerate(sources)]
    while game.outcome() is None:
        actions = {}
        for seat in game.to_act():
            reply = agents[seat](Struct(game.observation(seat)), Struct(config))
            try:
                actions[seat] = game.parse_action(seat, reply)
            except IllegalAction as exc:
                pytest.fail(f"{game_name} seat {seat} played {reply!r} at step {game.step}: {exc}")
        game.apply(actions)
    return game


def random_bot(game: str) -> str:
    return dict(BOTS[game])[f"{game}_random"]


def test_every_game_has_a_random_and_a_smarter_bot() -> None:
    for game in ("tictactoe", "connectx", "rps"):
        names = [name for name, _ in BOTS[game]]
        assert f"{game}_random" in names
        assert len(names) >= 2
    assert "tictactoe_minimax" in dict(BOTS["tictactoe"])
    assert "connectx_greedy" in dict(BOTS["connectx"])
    assert "rps_counter" in dict(BOTS["rps"])


@pytest.mark.parametrize(("game", "name", "source"), ALL_BOTS, ids=[name for _, name, _ in ALL_BOTS])
def test_bot_source_is_plain(game: str, name: str, source: str) -> None:
    """Only ``random``/``math`` imports, no dunders, no escape hatches (the validator's rules)."""
    tree = ast.parse(source)
    assert any(isinstance(node, ast.FunctionDef) and node.name == "agent" for node in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= ALLOWED_IMPORTS, name
        assert not isinstance(node, ast.ImportFrom), name
        if isinstance(node, ast.Name):
            assert not node.id.startswith("__"), (name, node.id)
            assert node.id not in FORBIDDEN_NAMES, (name, node.id)
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__"), (name, node.attr)


@pytest.mark.parametrize(("game", "name", "source"), ALL_BOTS, ids=[name for _, name, _ in ALL_BOTS])
def test_bot_plays_legal_moves_against_random(game: str, name: str, source: str) -> None:
    overrides: dict[str, Any] = {"episodeSteps": 200} if game == "rps" else {}
    for seed in range(4):
        sources = [source, random_bot(game)] if seed % 2 else [random_bot(game), source]
        assert play_match(game, sources, seed, **overrides).outcome() is not None
    if game == "connectx":
        play_match(game, [source, random_bot(game)], 99, rows=4, columns=5, inarow=3)
    if game == "rps":
        play_match(game, [source, random_bot(game)], 99, signs=5, episodeSteps=50)


def test_connectx_greedy_beats_random() -> None:
    greedy = dict(BOTS["connectx"])["connectx_greedy"]
    wins = 0
    for seed in range(20):
        seat = seed % 2
        sources = [greedy, random_bot("connectx")] if seat == 0 else [random_bot("connectx"), greedy]
        outcome = play_match("connectx", sources, seed).outcome()
        wins += outcome is not None and outcome.winner == seat
    assert wins >= 15


def test_tictactoe_minimax_never_loses() -> None:
    minimax = dict(BOTS["tictactoe"])["tictactoe_minimax"]
    for seed in range(20):
        seat = seed % 2
        sources = [minimax, random_bot("tictactoe")] if seat == 0 else [random_bot("tictactoe"), minimax]
        outcome = play_match("tictactoe", sources, seed).outcome()
        assert outcome is not None and outcome.winner in (seat, None)
    both = play_match("tictactoe", [minimax, minimax], 0).outcome()
    assert both is not None and both.winner is None


def test_rps_counter_beats_a_one_sign_bot() -> None:
    counter = dict(BOTS["rps"])["rps_counter"]
    always_rock = "def agent(observation, configuration):\n    return 0\n"
    outcome = play_match("rps", [always_rock, counter], 0, episodeSteps=100).outcome()
    assert outcome is not None and outcome.winner == 1
    assert outcome.rewards[1] >= 90
