"""Checks shared by the built-in games: turn order, action presence and config ranges."""

from __future__ import annotations

from collections.abc import Mapping

from protocol.errors import ConfigOutOfRange, IllegalAction
from protocol.messages import JSON
from server.matches.games.base import Game, Outcome, Termination


def check_turn(game: Game, seat: int) -> None:
    """Check that ``seat`` is one of the seats to act now.

    Raises:
        IllegalAction: the game is over or ``seat`` is not to act.
    """
    if game.outcome() is not None:
        raise IllegalAction(f"the game is over at step {game.step}")
    to_act = game.to_act()
    if seat not in to_act:
        raise IllegalAction(f"seat {seat!r} is not to act at step {game.step}; seats to act: {list(to_act)}")


def acting_seats(game: Game, actions: Mapping[int, JSON]) -> tuple[int, ...]:
    """The seats to act, checking that ``actions`` has an entry for each of them.

    Raises:
        IllegalAction: the game is over or a seat to act has no action.
    """
    if game.outcome() is not None:
        raise IllegalAction(f"the game is over at step {game.step}")
    to_act = game.to_act()
    missing = [seat for seat in to_act if seat not in actions]
    if missing:
        raise IllegalAction(f"no action for seats {missing} at step {game.step}")
    return to_act


def check_int_range(config: Mapping[str, JSON], key: str, low: int, high: int | None = None) -> None:
    """Check that ``config[key]`` lies in ``low..high`` (no upper bound when ``high`` is None).

    Raises:
        ConfigOutOfRange: naming the key, the accepted range and the value.
    """
    value = config[key]
    if value < low or (high is not None and value > high):
        accepted = f"in {low}..{high}" if high is not None else f"at least {low}"
        raise ConfigOutOfRange(f"config {key} must be {accepted}, got {value!r}", key=key, low=low,
                               high=high if high is not None else float("inf"))


def is_int(value: JSON) -> bool:
    """True for an ``int`` that is not a ``bool`` (JSON ``true`` is no move)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_episode_steps(config: Mapping[str, JSON]) -> None:
    """Check ``episodeSteps``: at least 2, as Kaggle requires (the initial state counts as one).

    Raises:
        ConfigOutOfRange: naming the key, the accepted range and the value.
    """
    check_int_range(config, "episodeSteps", 2)


def is_last_step(game: Game) -> bool:
    """True once ``game.step`` reached Kaggle's limit of ``episodeSteps - 1`` applied steps.

    Kaggle counts the initial state as a step, so an episode of ``episodeSteps`` has at
    most ``episodeSteps - 1`` moves and a replay at most ``episodeSteps`` entries.
    """
    return bool(game.step >= game.config["episodeSteps"] - 1)


def board_outcome(game: Game, mover: int, *, has_line: bool, is_full: bool) -> Outcome | None:
    """The result of a two-seat board game after ``mover`` placed a mark: a line wins, a full
    board draws, and so does running out of steps."""
    if has_line:
        rewards = tuple(game.win_reward if s == mover else game.loss_reward for s in range(2))
        return Outcome(rewards, Termination.WIN, mover)
    if is_full:
        return Outcome((game.draw_reward,) * 2, Termination.DRAW)
    if is_last_step(game):
        return Outcome((game.draw_reward,) * 2, Termination.STEPS)
    return None
