"""Ranges of match configuration values, set by the operator.

Theory of operation. Every configuration key of every game has a range, so that no request
can ask for a match that runs without end, holds seats for days or feeds the runner a value
it cannot use (``NaN``, ``inf``, ``2**63`` steps). The defaults live next to the values they
bound: ``COMMON_RANGES`` for the time controls every game shares, ``Game.config_ranges`` for
a game's own keys (what its rules can play). A key a game declares no range for accepts only
its default until the operator opens a range for it. A text value's range bounds its length.

The operator overrides them in the settings file's ``[config_ranges]`` table (``ConfigRanges``
in ``operator_ranges.py``, see ``server/config.py``): ``KEY = [LOW, HIGH]`` for every game with
that key, and a sub-table ``[config_ranges.GAME]`` for one game. A time control may be given
any range within ``TIME_CONTROL_LIMITS``; a game's own key only a range within the game's own,
since its rules cannot play more. A default outside the operator's range moves to the range's
nearest bound (``runTimeout = [1, 300]`` makes 300 the default), and the defaults so moved must
still make a match the game can play, since the ladder plays defaults.

``check_value`` converts one value (a string from the command line becomes a number) and
checks it against its range; a value of the wrong kind, not finite or outside its range is a
``ConfigOutOfRange`` (HTTP 422) naming the key and the range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.errors import ConfigError, ConfigOutOfRange
from protocol.messages import JSON

__all__ = [
    "COMMON_RANGES",
    "TEXT_RANGE",
    "TIME_CONTROL_LIMITS",
    "ConfigRange",
    "check_value",
    "default_within",
]

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

    def as_written(self) -> str:
        """``[LOW, HIGH]`` as in the settings file (``[1, 64]``, ``[0.001, 60]``)."""
        return f"[{_number(self.low)}, {_number(self.high)}]"

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
