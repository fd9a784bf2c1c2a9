"""Ranges of match configuration values, set by the operator.

Theory of operation. Every configuration key of every game has a range, so that no request
can ask for a match that runs without end, holds seats for days or feeds the runner a value
it cannot use (``NaN``, ``inf``, ``2**63`` steps). The defaults live next to the values they
bound: ``COMMON_RANGES`` for the time controls every game shares, ``Game.config_ranges`` for
a game's own keys (what its rules can play). A key a game declares no range for accepts only
its default until the operator opens a range for it. A text value's range bounds its length.

The operator overrides them in the settings file's ``[config_ranges]`` table (``ConfigRanges``,
see ``server/config.py``): ``KEY = [LOW, HIGH]`` for every game with that key, and a sub-table
``[config_ranges.GAME]`` for one game. A time control may be given any range within
``TIME_CONTROL_LIMITS``; a game's own key only a range within the game's own, since its rules
cannot play more. A default outside the operator's range moves to the range's nearest bound
(``runTimeout = [1, 300]`` makes 300 the default), and the defaults so moved must still make a
match the game can play, since the ladder plays defaults.

``check_value`` converts one value (a string from the command line becomes a number) and
checks it against its range; a value of the wrong kind, not finite or outside its range is a
``ConfigOutOfRange`` (HTTP 422) naming the key and the range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol.errors import ConfigError, ConfigOutOfRange

if TYPE_CHECKING:
    from .base import Game

__all__ = [
    "COMMON_RANGES",
    "TEXT_RANGE",
    "TIME_CONTROL_LIMITS",
    "ConfigRange",
    "ConfigRanges",
    "check_value",
    "default_within",
]

JSON = Any
_SHOWN_CHARS = 60  # of a refused value quoted back: a megabyte of it must not come back in the error


@dataclass(frozen=True, slots=True)
class ConfigRange:
    """The accepted values of one key, ``low`` to ``high`` inclusive (for text: its length).

    Raises:
        ConfigError: a bound that is not a finite number, or ``low`` above ``high``.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        for bound in (self.low, self.high):
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                raise ConfigError(f"a config range needs two finite numbers, got {bound!r}")
        if self.low > self.high:
            raise ConfigError(f"a config range needs low <= high, got {_number(self.low)}..{_number(self.high)}")

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    def is_within(self, other: ConfigRange) -> bool:
        """True when every value of this range is in ``other``."""
        return other.low <= self.low and self.high <= other.high

    def describe(self) -> str:
        """``LOW..HIGH`` as people write numbers (``1..64``, ``0.001..60``)."""
        return f"{_number(self.low)}..{_number(self.high)}"

    def to_json(self) -> list[float]:
        return [self.low, self.high]


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# Generous defaults. episodeSteps: every event of a live match is kept for its spectators and
# stored, so steps are what a match costs; 10,000 is ten of Kaggle's default episodes. The
# time controls bound how long a match holds its seats: at most agentTimeout + runTimeout.
COMMON_RANGES: Mapping[str, ConfigRange] = {
    "episodeSteps": ConfigRange(2, 10_000),
    "actTimeout": ConfigRange(0.001, 60.0),
    "remainingOverageTime": ConfigRange(0.0, 600.0),
    "agentTimeout": ConfigRange(0.001, 60.0),
    "runTimeout": ConfigRange(0.001, 3600.0),
}

# The widest ranges an operator may give the time controls: what the runner can run (Kaggle's
# episodes need two steps; a match of more than a day is not one anybody watches).
TIME_CONTROL_LIMITS: Mapping[str, ConfigRange] = {
    "episodeSteps": ConfigRange(2, 10_000_000),
    "actTimeout": ConfigRange(0.0, 86_400.0),
    "remainingOverageTime": ConfigRange(0.0, 86_400.0),
    "agentTimeout": ConfigRange(0.0, 86_400.0),
    "runTimeout": ConfigRange(0.0, 86_400.0),
}

#: The length range of a text key that its game declares no range for.
TEXT_RANGE = ConfigRange(0, 1000)


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
        from .base import resolve_config  # base imports this module

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
        where = f"config_ranges {key} = [{_number(bounds.low)}, {_number(bounds.high)}] for {game.name}"
        limit = TIME_CONTROL_LIMITS.get(key) or game.config_ranges.get(key)
        if limit is not None and not bounds.is_within(limit):
            raise ConfigError(f"{where} is wider than {limit.describe()}, what can be played")
        if type(default) is int and not all(type(b) is int for b in (bounds.low, bounds.high)):
            raise ConfigError(f"{where}: {key} is an integer, so are its bounds")


def default_within(default: JSON, bounds: ConfigRange | None) -> JSON:
    """A number default moved to the nearest bound of ``bounds`` when outside it (same type)."""
    if bounds is None or isinstance(default, bool) or not isinstance(default, int | float) or default in bounds:
        return default
    return type(default)(min(max(default, bounds.low), bounds.high))


def check_value(key: str, raw: object, default: JSON, bounds: ConfigRange | None) -> JSON:
    """``raw`` converted to the kind of ``default`` (from a string too) and checked against
    ``bounds``; other kinds than numbers, text and booleans need only be of the default's type.

    Raises:
        ConfigOutOfRange: the value is of another kind, not finite or outside ``bounds``.
    """
    kind = type(default)
    if kind is bool:
        value = {"true": True, "false": False}.get(raw.strip().lower()) if isinstance(raw, str) else raw
        if type(value) is not bool:
            raise ConfigOutOfRange(f"config {key} must be true or false, got {_shown(raw)}", key=key, low=0, high=1)
        return value
    if kind not in (int, float, str):
        if type(raw) is not kind:
            raise ConfigOutOfRange(f"config {key} must be a {kind.__name__}, got {_shown(raw)}", key=key, low=0,
                                   high=0)
        return raw
    bounds = bounds if bounds is not None else ConfigRange(default, default) if kind is not str else TEXT_RANGE
    if kind is str:
        if not isinstance(raw, str) or len(raw) not in bounds:
            raise _refused(key, "text of", raw, bounds, unit=" characters")
        return raw
    value = _as_int(raw) if kind is int else _as_float(raw)
    if value is None:
        raise _refused(key, "an integer in" if kind is int else "a finite number in", raw, bounds)
    if value not in bounds:
        raise _refused(key, "in", raw, bounds)
    return value


def _as_int(raw: object) -> int | None:
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:  # also a string of more digits than Python converts
            return None
    return raw if type(raw) is int else None


def _as_float(raw: object) -> float | None:
    value: float
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            return None
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    else:
        try:
            value = float(raw)
        except OverflowError:  # an integer beyond any float: out of every range
            value = math.inf
    return value if math.isfinite(value) else None


def _refused(key: str, what: str, raw: object, bounds: ConfigRange, unit: str = "") -> ConfigOutOfRange:
    return ConfigOutOfRange(f"config {key} must be {what} {bounds.describe()}{unit}, got {_shown(raw)}",
                            key=key, low=bounds.low, high=bounds.high)


def _shown(raw: object) -> str:
    try:
        text = repr(raw)
    except (RecursionError, ValueError):  # deeply nested JSON; an integer of too many digits
        return f"a {type(raw).__name__}"
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
