"""The interface every game implements: pure rules, no I/O, no clock.

A game is a state machine driven by the match runner. Each step the runner asks
``to_act()`` which seats move, sends each of them ``observation(seat)``, checks each reply
with ``parse_action`` and hands the parsed actions to ``apply``. ``outcome()`` is ``None``
until the game is over. ``state()`` is a JSON snapshot stored with every step, so a replay
can be recomputed from the actions and compared (``arena replay --verify``).

Configuration is a flat dict in Kaggle's naming: the time controls shared by all games
(``COMMON_CONFIG``) plus the game's own keys (``default_config``). ``resolve_config``
checks and fills it. All randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import enum
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from protocol.errors import ConfigError

__all__ = [
    "COMMON_CONFIG",
    "Game",
    "Outcome",
    "Termination",
    "resolve_config",
]

JSON = Any

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


def resolve_config(game: type[Game], overrides: Mapping[str, object] | None) -> dict[str, JSON]:
    """Fill defaults and check types and ranges of a match configuration.

    Values may be given as strings (from the command line); they are converted to the
    default's type.

    Raises:
        ConfigError: an unknown key (the message names the known ones) or a bad value.
    """
    defaults = game.config_defaults()
    config = dict(defaults)
    for key, raw in (overrides or {}).items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"unknown config key {key!r} for {game.name}; known keys: {known}")
        config[key] = _coerce(key, raw, defaults[key])
    for key in COMMON_CONFIG:
        if config[key] <= 0:
            raise ConfigError(f"config {key} must be positive, got {config[key]!r}")
    game.check_config(config)
    return config


def _coerce(key: str, raw: object, default: JSON) -> JSON:
    kind = type(default)
    if isinstance(raw, str) and kind is not str:
        try:
            raw = float(raw) if kind is float else int(raw) if kind is int else raw
        except ValueError:
            raise ConfigError(f"config {key} must be a {kind.__name__}, got {raw!r}") from None
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if type(raw) is not kind:
        raise ConfigError(f"config {key} must be a {kind.__name__}, got {raw!r}")
    return raw
