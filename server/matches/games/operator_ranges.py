"""The operator's ranges of match configuration values: the settings file's ``[config_ranges]``
table on top of the defaults each game declares (``ranges.py`` says how ranges work), and the
check that they fit the games installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import ConfigError

from .base import Game, resolve_config
from .ranges import TIME_CONTROL_LIMITS, ConfigRange

__all__ = ["ConfigRanges"]


@dataclass(frozen=True, slots=True)
class ConfigRanges:
    """The operator's ranges: ``common`` by key for every game that has it, ``games`` by game
    name then key, on top of the declared defaults."""

    common: Mapping[str, ConfigRange] = field(default_factory=dict)
    games: Mapping[str, Mapping[str, ConfigRange]] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ConfigRanges:
        """Ranges from the settings file's ``[config_ranges]`` table: ``KEY = [LOW, HIGH]`` and
        ``[config_ranges.GAME]`` sub-tables of the same.

        Raises:
            ConfigError: an entry that is neither a pair of numbers nor a table of them.
        """
        common: dict[str, ConfigRange] = {}
        games: dict[str, dict[str, ConfigRange]] = {}
        for key, value in table.items():
            if isinstance(value, Mapping):
                games[key] = {k: _pair(f"config_ranges.{key}.{k}", v) for k, v in value.items()}
            else:
                common[key] = _pair(f"config_ranges.{key}", value)
        return cls(common, games)

    def for_game(self, game: type[Game]) -> dict[str, ConfigRange]:
        """Every key of ``game`` with its range in force: the operator's, else the default."""
        ranges = game.ranges()
        ranges.update((key, bounds) for key, bounds in self.common.items() if key in ranges)
        ranges.update(self.games.get(game.name, {}))
        return ranges

    def check(self, games: Mapping[str, type[Game]]) -> None:
        """Check the operator's ranges against the games that are installed.

        Raises:
            ConfigError: an unknown game or key, a range wider than a game's rules can play or
                than ``TIME_CONTROL_LIMITS``, fractional bounds for an integer key, or ranges
                whose defaults make no match the game can play (the ladder plays defaults).
        """
        known = sorted({key for game in games.values() for key in game.config_defaults()})
        for key in self.common:
            if key not in known:
                raise ConfigError(f"unknown key {key!r} in [config_ranges]; known keys: {', '.join(known)}")
        for name, keys in self.games.items():
            if name not in games:
                raise ConfigError(f"unknown game {name!r} in [config_ranges]; known games: {', '.join(games)}")
            defaults = games[name].config_defaults()
            for key in keys:
                if key not in defaults:
                    raise ConfigError(f"unknown key {key!r} in [config_ranges.{name}]; known keys: "
                                      f"{', '.join(sorted(defaults))}")
        for game in games.values():
            ranges = self.for_game(game)
            _check_game(game, ranges, self._overridden(game))
            try:
                resolve_config(game, None, ranges)
            except ConfigError as exc:
                raise ConfigError(f"with these [config_ranges], {game.name}'s defaults make no match: {exc}") from None

    def _overridden(self, game: type[Game]) -> Iterable[str]:
        keys = set(game.config_defaults())
        return (keys & set(self.common)) | set(self.games.get(game.name, {}))


def _pair(where: str, value: object) -> ConfigRange:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{where} must be [LOW, HIGH] or a table of them, got {value!r}")
    try:
        return ConfigRange(value[0], value[1])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_game(game: type[Game], ranges: Mapping[str, ConfigRange], overridden: Iterable[str]) -> None:
    defaults = game.config_defaults()
    for key in overridden:
        bounds, default = ranges[key], defaults[key]
        where = f"config_ranges {key} = {bounds.as_written()} for {game.name}"
        limit = TIME_CONTROL_LIMITS.get(key) or game.config_ranges.get(key)
        if limit is not None and not bounds.is_within(limit):
            raise ConfigError(f"{where} is wider than {limit.describe()}, what can be played")
        if type(default) is int and not all(type(b) is int for b in (bounds.low, bounds.high)):
            raise ConfigError(f"{where}: {key} is an integer, so are its bounds")
