"""Tic-tac-toe: two seats take turns marking a 3x3 board; three in a line wins.

Seat 0 plays mark 1 (X) and moves first, seat 1 plays mark 2 (O). Cells are numbered 0-8,
row by row from the top left, as in Kaggle's ``tictactoe`` environment.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import ClassVar

from protocol.errors import IllegalAction
from protocol.messages import JSON
from server.matches.games._checks import (
    acting_seats,
    board_outcome,
    check_episode_steps,
    check_turn,
    is_int,
)
from server.matches.games.base import Game, Outcome

__all__ = ["TicTacToe"]

EMPTY = 0
CELLS = 9
LINES: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)
SYMBOLS = {EMPTY: ".", 1: "X", 2: "O"}


class TicTacToe(Game):
    """Rules of tic-tac-toe; observation ``board`` (9 cells), ``mark`` (1 or 2), ``step``."""

    name: ClassVar[str] = "tictactoe"
    title: ClassVar[str] = "Tic-tac-toe"
    rules_version: ClassVar[int] = 1
    num_seats: ClassVar[int] = 2

    def __init__(self, config: Mapping[str, JSON], rng: random.Random) -> None:
        super().__init__(config, rng)
        self.board = [EMPTY] * CELLS
        self.line: list[int] | None = None
        self._outcome: Outcome | None = None

    @classmethod
    def check_config(cls, config: Mapping[str, JSON]) -> None:
        """Reject an ``episodeSteps`` below 2 (the game needs at least one move).

        Raises:
            ConfigOutOfRange: naming the key and the accepted range.
        """
        check_episode_steps(config)

    def to_act(self) -> tuple[int, ...]:
        """The seat whose turn it is, or nobody once the game is over."""
        return () if self._outcome is not None else (self.step % 2,)

    def observation(self, seat: int) -> dict[str, JSON]:
        """The board, the seat's mark and the step, in Kaggle's naming."""
        return {"board": list(self.board), "mark": seat + 1, "step": self.step}

    def parse_action(self, seat: int, action: JSON) -> JSON:
        """Accept a cell index (an ``int``, not a ``bool``) of an empty cell.

        Raises:
            IllegalAction: out of turn, not an integer in 0..8, or a taken cell.
        """
        check_turn(self, seat)
        if not is_int(action) or not 0 <= action < CELLS:
            raise IllegalAction(f"action must be an integer in 0..{CELLS - 1}, got {action!r}")
        if self.board[action] != EMPTY:
            raise IllegalAction(f"cell {action!r} is taken")
        return action

    def apply(self, actions: Mapping[int, JSON]) -> None:
        """Mark the cell chosen by the seat to act; seats not to act are ignored.

        Raises:
            IllegalAction: the action is missing or illegal, or the game is over.
        """
        (seat,) = acting_seats(self, actions)
        cell = self.parse_action(seat, actions[seat])
        mark = seat + 1
        self.board[cell] = mark
        self.step += 1
        self.line = _winning_line(self.board, mark)
        self._outcome = board_outcome(self, seat, has_line=self.line is not None, is_full=EMPTY not in self.board)

    def outcome(self) -> Outcome | None:
        """The result once there is a line, a full board or no steps left, else ``None``."""
        return self._outcome

    def state(self) -> dict[str, JSON]:
        """Board, step, seats to act, the winner's seat and the winning line (cell indices)."""
        winner = self._outcome.winner if self._outcome is not None else None
        line = list(self.line) if self.line is not None else None
        return {
            "board": list(self.board),
            "step": self.step,
            "to_act": list(self.to_act()),
            "winner": winner,
            "line": line,
        }

    def render(self) -> str:
        """The board as three rows of X, O and ``.``, then whose turn it is or the result."""
        rows = [" ".join(SYMBOLS[c] for c in self.board[r * 3 : r * 3 + 3]) for r in range(3)]
        return "\n".join([*rows, _status_line(self)])


def _winning_line(board: list[int], mark: int) -> list[int] | None:
    for line in LINES:
        if all(board[cell] == mark for cell in line):
            return list(line)
    return None


def _status_line(game: TicTacToe) -> str:
    outcome = game.outcome()
    if outcome is None:
        seat = game.step % 2
        return f"step {game.step}: {SYMBOLS[seat + 1]} (seat {seat}) to move"
    if outcome.winner is not None:
        return f"step {game.step}: {SYMBOLS[outcome.winner + 1]} (seat {outcome.winner}) wins"
    return f"step {game.step}: draw ({outcome.termination.value})"
