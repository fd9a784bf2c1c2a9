"""The games the arena can run: the built-ins and those of installed plugins.

A plugin is any installed distribution that declares an entry point in the group
``agent_arena.games`` pointing at a :class:`Game` subclass, e.g. in its ``pyproject.toml``::

    [project.entry-points."agent_arena.games"]
    go = "arena_go:Go"

Plugins are loaded once, on the first lookup. A plugin that fails to import, is not a
concrete ``Game`` subclass, or reuses a name already taken is logged and skipped: one
broken package must not take the arena down. Built-in games keep their names.
"""

from __future__ import annotations

import inspect
import logging
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any

from protocol.errors import UnknownGame
from server.matches.games.base import COMMON_CONFIG, Game, Outcome, Termination, resolve_config
from server.matches.games.connectx import ConnectX
from server.matches.games.operator_ranges import ConfigRanges
from server.matches.games.ranges import COMMON_RANGES, ConfigRange
from server.matches.games.rps import RockPaperScissors
from server.matches.games.tictactoe import TicTacToe

__all__ = [
    "BUILTIN_GAMES",
    "COMMON_CONFIG",
    "COMMON_RANGES",
    "ConfigRange",
    "ConfigRanges",
    "ENTRY_POINT_GROUP",
    "GAMES",
    "ConnectX",
    "Game",
    "Outcome",
    "RockPaperScissors",
    "Termination",
    "TicTacToe",
    "game_names",
    "get_game",
    "new_game",
    "resolve_config",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agent_arena.games"
BUILTIN_GAMES: tuple[type[Game], ...] = (TicTacToe, ConnectX, RockPaperScissors)


class _Registry(Mapping[str, type[Game]]):
    """Game classes by name; plugins of ``group`` are loaded on first access."""

    def __init__(self, builtins: Iterable[type[Game]], group: str) -> None:
        self._games = {game.name: game for game in builtins}
        self._group = group
        self._is_loaded = False
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, type[Game]]:
        if not self._is_loaded:
            with self._lock:
                if not self._is_loaded:
                    self._load_plugins()
                    self._is_loaded = True
        return self._games

    def _load_plugins(self) -> None:
        for entry in metadata.entry_points(group=self._group):
            try:
                game = entry.load()
            except Exception:
                logger.exception("game plugin %s = %s failed to load; skipped", entry.name, entry.value)
                continue
            problem = _plugin_problem(game)
            if problem is None and game.name in self._games:
                problem = f"the name {game.name!r} is taken by {self._games[game.name].__module__}"
            if problem is not None:
                logger.error("game plugin %s = %s skipped: %s", entry.name, entry.value, problem)
                continue
            self._games[game.name] = game
            logger.info("game plugin %s loaded from %s", game.name, entry.value)

    def __getitem__(self, name: str) -> type[Game]:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaded()))

    def __len__(self) -> int:
        return len(self._loaded())


def _plugin_problem(game: object) -> str | None:
    """Why ``game`` cannot be registered, or ``None`` when it can."""
    if not (isinstance(game, type) and issubclass(game, Game)):
        return f"{game!r} is not a Game subclass"
    if inspect.isabstract(game):
        return f"{game.__qualname__} is abstract"
    name = getattr(game, "name", None)
    if not isinstance(name, str) or not name:
        return f"{game.__qualname__} has no name"
    return None


#: Every game by name, built-ins and plugins, iterated in name order.
GAMES: Mapping[str, type[Game]] = _Registry(BUILTIN_GAMES, ENTRY_POINT_GROUP)


def get_game(name: str) -> type[Game]:
    """The game class registered under ``name``.

    Raises:
        UnknownGame: no such game; the message lists the known names.
    """
    try:
        return GAMES[name]
    except KeyError:
        raise UnknownGame(f"unknown game {name!r}; known games: {', '.join(game_names())}") from None


def new_game(name: str, config: Mapping[str, Any], seed: int) -> Game:
    """A new game of ``name`` in its initial state, with ``config`` (resolved) and its RNG seeded
    from the match's ``seed``: the one way a match's game is built, so a replay recomputes it.

    Raises:
        UnknownGame: no such game.
    """
    return get_game(name)(config, random.Random(seed))


def game_names() -> list[str]:
    """The names of all registered games, sorted."""
    return list(GAMES)
