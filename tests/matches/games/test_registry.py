"""The game registry, plugin loading and configuration checks."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from importlib import metadata
from typing import Any, ClassVar

import pytest

from protocol.errors import ConfigError, ConfigOutOfRange, UnknownGame
from server.matches import games
from server.matches.games import (
    COMMON_CONFIG,
    GAMES,
    ConnectX,
    Game,
    Outcome,
    RockPaperScissors,
    TicTacToe,
    game_names,
    get_game,
    resolve_config,
)


def test_builtin_games() -> None:
    assert {"connectx", "rps", "tictactoe"} <= set(game_names())
    assert get_game("tictactoe") is TicTacToe
    assert get_game("connectx") is ConnectX
    assert get_game("rps") is RockPaperScissors
    assert GAMES["rps"] is RockPaperScissors
    assert list(GAMES) == game_names() == sorted(game_names())


def test_unknown_game_lists_known_names() -> None:
    with pytest.raises(UnknownGame, match="unknown game 'chess'; known games: .*connectx, rps, tictactoe"):
        get_game("chess")


def test_reexports() -> None:
    for name in ("Game", "Outcome", "Termination", "resolve_config", "COMMON_CONFIG", "get_game", "GAMES"):
        assert name in games.__all__


def test_unknown_config_key_names_known_keys() -> None:
    with pytest.raises(
        ConfigError, match="unknown config key 'cols' for connectx; known keys: .*columns.*inarow"
    ):
        resolve_config(ConnectX, {"cols": 7})


def test_defaults_include_time_controls() -> None:
    config = resolve_config(RockPaperScissors, None)
    assert set(COMMON_CONFIG) <= set(config)
    assert config["episodeSteps"] == 1000
    assert config["signs"] == 3
    assert config["tieRewardThreshold"] == 20
    assert config["remainingOverageTime"] == 60.0


def test_strings_are_coerced() -> None:
    config = resolve_config(ConnectX, {"columns": "7", "rows": "5", "actTimeout": "0.5", "episodeSteps": 50})
    assert config["columns"] == 7 and isinstance(config["columns"], int)
    assert config["rows"] == 5
    assert config["actTimeout"] == 0.5
    assert resolve_config(ConnectX, {"actTimeout": 3})["actTimeout"] == 3.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"columns": "seven"}, r"config columns must be an integer in 1\.\.64, got 'seven'"),
        ({"columns": 7.5}, r"config columns must be an integer in 1\.\.64, got 7\.5"),
        ({"rows": True}, r"config rows must be an integer in 1\.\.64, got True"),
        ({"actTimeout": "fast"}, r"config actTimeout must be a finite number in 0\.001\.\.60, got 'fast'"),
        ({"actTimeout": 0}, r"config actTimeout must be in 0\.001\.\.60, got 0"),
    ],
)
def test_bad_types(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(ConnectX, overrides)


@pytest.mark.parametrize(
    ("game", "overrides"),
    [
        (TicTacToe, {"episodeSteps": 1}),
        (ConnectX, {"rows": 65}),
        (ConnectX, {"inarow": 8}),
        (RockPaperScissors, {"signs": 7}),
        (RockPaperScissors, {"tieRewardThreshold": 1001}),
    ],
)
def test_check_config_ranges(game: type[Game], overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigOutOfRange, match=r"must be in \d+\.\.\d+, got"):
        resolve_config(game, overrides)


class Solo(Game):
    """A one-move game, as a plugin would ship it."""

    name: ClassVar[str] = "solo"
    title: ClassVar[str] = "Solo"
    num_seats: ClassVar[int] = 1

    def to_act(self) -> tuple[int, ...]:
        return () if self.step else (0,)

    def observation(self, seat: int) -> dict[str, Any]:
        return {"step": self.step}

    def parse_action(self, seat: int, action: Any) -> Any:
        return action

    def apply(self, actions: Mapping[int, Any]) -> None:
        self.step += 1

    def outcome(self) -> Outcome | None:
        return None

    def state(self) -> dict[str, Any]:
        return {"step": self.step}

    def render(self) -> str:
        return "solo"


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self.value = f"plugin:{name}"
        self._target = target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugins_are_loaded_once_and_broken_ones_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    entry_points = [
        FakeEntryPoint("solo", Solo),
        FakeEntryPoint("broken", ImportError("no module named arena_broken")),
        FakeEntryPoint("notagame", object()),
        FakeEntryPoint("abstract", Game),
        FakeEntryPoint("clash", TicTacToe),
    ]
    calls: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        calls.append(group)
        return entry_points

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    registry = games._Registry(games.BUILTIN_GAMES, games.ENTRY_POINT_GROUP)
    with caplog.at_level(logging.INFO, logger=games.__name__):
        assert list(registry) == ["connectx", "rps", "solo", "tictactoe"]
    assert registry["solo"] is Solo
    assert registry["tictactoe"] is TicTacToe
    assert len(registry) == 4
    assert calls == ["agent_arena.games"]
    skipped = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    for name in ("broken", "notagame", "abstract", "clash"):
        assert f"game plugin {name} = plugin:{name}" in skipped
    game = registry["solo"](resolve_config(Solo, None), random.Random(0))
    assert game.to_act() == (0,)
