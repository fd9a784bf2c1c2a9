"""Repeated rock-paper-scissors, compatible with Kaggle's ``rps`` environment.

Both seats act every step. Signs are numbered 0..signs-1 (Rock, Paper, Scissors, Spock,
Lizard). Sign ``a`` beats sign ``b`` by Kaggle's ``get_score``: with ``a + b`` even the
lower sign wins, with ``a + b`` odd the higher one. Each step adds +1 to the winner's
running score and -1 to the loser's (so the scores sum to zero); each seat sees its own
running score as ``reward``, as on Kaggle.

Like Kaggle, the episode ends after ``episodeSteps - 1`` steps (the initial state counts
as one). The final rewards are Kaggle's: the running scores themselves, e.g. ``(25, -25)``,
unless the margin is below ``tieRewardThreshold``, which makes the match a tie ``(0, 0)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import ClassVar

from protocol.errors import IllegalAction
from protocol.messages import JSON
from server.matches.games._checks import (
    acting_seats,
    check_episode_steps,
    check_int_range,
    check_turn,
    is_int,
    is_last_step,
)
from server.matches.games.base import Game, Outcome, Termination
from server.matches.games.ranges import ConfigRange

__all__ = ["RockPaperScissors", "get_score"]

SIGN_NAMES = ("Rock", "Paper", "Scissors", "Spock", "Lizard")


def get_score(left: int, right: int) -> int:
    """+1 when sign ``left`` beats ``right``, -1 when it loses, 0 for the same sign (Kaggle's rule)."""
    delta = right - left if (left + right) % 2 == 0 else left - right
    return (delta > 0) - (delta < 0)


class RockPaperScissors(Game):
    """Rules of repeated rock-paper-scissors; observation ``step``, ``lastOpponentAction``, ``reward``."""

    name: ClassVar[str] = "rps"
    title: ClassVar[str] = "Rock Paper Scissors"
    rules_version: ClassVar[int] = 1
    num_seats: ClassVar[int] = 2
    # Kaggle's defaults and ranges (rps.json): signs 3..5, tieRewardThreshold 1..1000.
    default_config: ClassVar[Mapping[str, JSON]] = {"signs": 3, "tieRewardThreshold": 20}
    config_ranges: ClassVar[Mapping[str, ConfigRange]] = {
        "signs": ConfigRange(3, len(SIGN_NAMES)), "tieRewardThreshold": ConfigRange(1, 1000),
    }
    time_defaults: ClassVar[Mapping[str, float | int]] = {"remainingOverageTime": 60.0}

    def __init__(self, config: Mapping[str, JSON], rng: random.Random) -> None:
        super().__init__(config, rng)
        self.signs: int = self.config["signs"]
        self.scores = [0, 0]
        self.last_actions: list[int] | None = None
        self._outcome: Outcome | None = None

    @classmethod
    def check_config(cls, config: Mapping[str, JSON]) -> None:
        """Accept signs in 3..5, tieRewardThreshold in 1..1000 and episodeSteps >= 2, as Kaggle.

        Raises:
            ConfigOutOfRange: naming the key, the accepted range and the value.
        """
        check_episode_steps(config)
        check_int_range(config, "signs", 3, len(SIGN_NAMES))
        check_int_range(config, "tieRewardThreshold", 1, 1000)

    def to_act(self) -> tuple[int, ...]:
        """Both seats, every step, until the game is over."""
        return () if self._outcome is not None else (0, 1)

    def observation(self, seat: int) -> dict[str, JSON]:
        """The step, the opponent's last sign (``None`` at step 0) and this seat's running score."""
        last = self.last_actions[1 - seat] if self.last_actions is not None else None
        return {"step": self.step, "lastOpponentAction": last, "reward": self.scores[seat]}

    def parse_action(self, seat: int, action: JSON) -> JSON:
        """Accept a sign: an ``int`` (not a ``bool``) in ``range(signs)``.

        Raises:
            IllegalAction: the game is over or the action is not a sign.
        """
        check_turn(self, seat)
        if not is_int(action) or not 0 <= action < self.signs:
            raise IllegalAction(f"action must be an integer in 0..{self.signs - 1}, got {action!r}")
        return action

    def apply(self, actions: Mapping[int, JSON]) -> None:
        """Score one round of both seats' signs.

        Raises:
            IllegalAction: an action is missing or illegal, or the game is over.
        """
        acting_seats(self, actions)
        left, right = (self.parse_action(seat, actions[seat]) for seat in (0, 1))
        score = get_score(left, right)
        self.scores[0] += score
        self.scores[1] -= score
        self.last_actions = [left, right]
        self.step += 1
        if is_last_step(self):
            self._outcome = self._final_outcome()

    def outcome(self) -> Outcome | None:
        """The result once the steps ran out, else ``None``."""
        return self._outcome

    def state(self) -> dict[str, JSON]:
        """Step, seats to act, running scores, the last signs played and the winner's seat."""
        return {
            "step": self.step,
            "to_act": list(self.to_act()),
            "scores": list(self.scores),
            "last_actions": list(self.last_actions) if self.last_actions is not None else None,
            "winner": self._outcome.winner if self._outcome is not None else None,
        }

    def render(self) -> str:
        """The step, the last signs played and the score."""
        last_step = self.config["episodeSteps"] - 1
        lines = [f"step {self.step} of {last_step}"]
        if self.last_actions is not None:
            left, right = (SIGN_NAMES[a] for a in self.last_actions)
            lines.append(f"last: {left} vs {right}")
        lines.append(f"score: {self.scores[0]} : {self.scores[1]}")
        if self._outcome is not None:
            winner = self._outcome.winner
            lines.append(f"seat {winner} wins" if winner is not None else "tie")
        return "\n".join(lines)

    def _final_outcome(self) -> Outcome:
        # Kaggle keeps the running scores as final rewards and zeroes both when the margin
        # is below the threshold ("player performance too similar").
        margin = self.scores[0]
        if abs(margin) < self.config["tieRewardThreshold"]:
            return Outcome((self.draw_reward, self.draw_reward), Termination.SCORE)
        return Outcome((float(margin), float(-margin)), Termination.SCORE, 0 if margin > 0 else 1)
