"""The interface every game implements: pure rules, no I/O, no clock.

A game is a state machine driven by the match runner. Each step the runner asks
``to_act()`` which seats move, sends each of them ``observation(seat)``, checks each reply
with ``parse_action`` and hands the parsed actions to ``apply``. ``outcome()`` is ``None``
until the game is over. ``state()`` is a JSON snapshot stored with every step, so a replay
can be recomputed from the actions and compared (``arena replay --verify``).

Configuration is a flat dict in Kaggle's naming: the time controls shared by all games
(``COMMON_CONFIG``) plus the game's own keys (``default_config``). Every key has a range
(``COMMON_RANGES``, ``config_ranges``; the operator's on top, see ``ranges.py``).
``resolve_config`` checks and fills it. All randomness comes from the ``random.Random``
passed in.
"""

from __future__ import annotations

import enum
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from protocol.errors import ConfigError
from protocol.messages import JSON

from .ranges import COMMON_RANGES, TEXT_RANGE, ConfigRange, check_value, default_within

__all__ = [
    "COMMON_CONFIG",
    "Game",
    "Outcome",
    "Termination",
    "resolve_config",
]

# Time controls, in seconds, as Kaggle names them. Games may override the defaults.
COMMON_CONFIG: Mapping[str, float | int] = {
    "episodeSteps": 1000,  # steps after which the game ends in a draw (or by its own scoring)
    "actTimeout": 1.0,  # per move, before the overage bank is spent
    "remainingOverageTime": 10.0,  # the bank, per seat, for moves slower than actTimeout
    "agentTimeout": 10.0,  # start-up: from process start until the bot is loaded
    "runTimeout": 600.0,  # the whole match, wall clock
}


class Termination(enum.Enum):
    """How a game ended, as decided by its rules (forfeits are decided by the runner)."""

    WIN = "win"
    DRAW = "draw"
    SCORE = "score"  # ended by steps running out, decided on points
    STEPS = "steps"  # ended by steps running out, no decision


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished game: one reward per seat and the winner's seat index, if any."""

    rewards: tuple[float, ...]
    termination: Termination
    winner: int | None = None


class Game(ABC):
    """Rules of one game. Subclasses are registered by ``name``."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: Bumped whenever the rules change, so a replay can tell a changed rule from a corrupt log.
    rules_version: ClassVar[int] = 1
    num_seats: ClassVar[int] = 2
    #: The game's own configuration keys with their defaults (and so their types).
    default_config: ClassVar[Mapping[str, JSON]] = {}
    #: Overrides of ``COMMON_CONFIG`` defaults for this game.
    time_defaults: ClassVar[Mapping[str, float | int]] = {}
    #: Ranges of the game's own keys: what its rules can play (operators may narrow them). A key
    #: without one accepts only its default unless the operator gives it a range.
    config_ranges: ClassVar[Mapping[str, ConfigRange]] = {}
    win_reward: ClassVar[float] = 1.0
    loss_reward: ClassVar[float] = -1.0
    draw_reward: ClassVar[float] = 0.0

    def __init__(self, config: Mapping[str, JSON], rng: random.Random) -> None:
        self.config = dict(config)
        self.rng = rng
        self.step = 0

    @classmethod
    def config_defaults(cls) -> dict[str, JSON]:
        """Every accepted configuration key with its default."""
        return {**COMMON_CONFIG, **cls.time_defaults, **cls.default_config}

    @classmethod
    def ranges(cls) -> dict[str, ConfigRange]:
        """The default range of every numeric or text key (the operator's are in ``ConfigRanges``):
        a key the game declares none for accepts only its default, a text key up to 1000 characters."""
        ranges = dict(COMMON_RANGES)
        ranges.update(cls.config_ranges)
        for key, default in cls.default_config.items():
            if key in ranges or isinstance(default, bool):
                continue
            if isinstance(default, str):
                ranges[key] = TEXT_RANGE
            elif isinstance(default, int | float):
                ranges[key] = ConfigRange(default, default)
        return ranges

    @classmethod  # noqa: B027 - an optional hook: games without own keys need no check
    def check_config(cls, config: Mapping[str, JSON]) -> None:
        """Reject values the rules cannot play with (called after types are checked).

        Raises:
            ConfigError: naming the key and the accepted range.
        """

    @abstractmethod
    def to_act(self) -> tuple[int, ...]:
        """Seats that must act this step (all seats for simultaneous games)."""

    @abstractmethod
    def observation(self, seat: int) -> dict[str, JSON]:
        """What ``seat`` sees now, in Kaggle's naming (``board``, ``mark``, ``step``, ...)."""

    @abstractmethod
    def parse_action(self, seat: int, action: JSON) -> JSON:
        """Check a reply and return the action in canonical form.

        Raises:
            IllegalAction: malformed or against the rules, with a message naming the value.
        """

    @abstractmethod
    def apply(self, actions: Mapping[int, JSON]) -> None:
        """Play one step: ``actions`` holds a parsed action for every seat in ``to_act()``."""

    @abstractmethod
    def outcome(self) -> Outcome | None:
        """The result once the game is over, else ``None``."""

    @abstractmethod
    def state(self) -> dict[str, JSON]:
        """A JSON snapshot of the full state, stored with each step."""

    @abstractmethod
    def render(self) -> str:
        """The state as text for a terminal."""

    def forfeit_rewards(self, faulty: set[int]) -> tuple[float, ...]:
        """Rewards when the seats in ``faulty`` broke the rules of play: they lose, others win."""
        return tuple(self.loss_reward if s in faulty else self.win_reward for s in range(self.num_seats))


def resolve_config(
    game: type[Game], overrides: Mapping[str, object] | None, ranges: Mapping[str, ConfigRange] | None = None
) -> dict[str, JSON]:
    """Fill defaults and check types and ranges of a match configuration.

    Values may be given as strings (from the command line); they are converted to the
    default's type. ``ranges`` are the ranges in force (default: the game's own defaults); a
    default outside them is moved to the nearest bound.

    Raises:
        ConfigError: an unknown key (the message names the known ones).
        ConfigOutOfRange: a value of the wrong kind, not finite, or outside its range.
    """
    defaults = game.config_defaults()
    ranges = game.ranges() if ranges is None else ranges
    config = {key: default_within(default, ranges.get(key)) for key, default in defaults.items()}
    for key, raw in (overrides or {}).items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise ConfigError(f"unknown config key {shown!r} for {game.name}; known keys: {known}")
        config[key] = check_value(key, raw, defaults[key], ranges.get(key))
    game.check_config(config)
    return config
