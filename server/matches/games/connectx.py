"""ConnectX, compatible with Kaggle's ``connectx`` environment.

Seats take turns dropping a checker into a column of a ``rows`` x ``columns`` grid; it
falls to the lowest empty cell. ``inarow`` checkers of one mark in a line (across, down
or diagonally) win; a full board is a draw. The board is a flat list, row-major with the
top row first, so ``board[c] != 0`` means column ``c`` is full (bots rely on that, as on
Kaggle). Seat 0 plays mark 1 and moves first.
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
    check_int_range,
    check_turn,
    is_int,
)
from server.matches.games.base import Game, Outcome
from server.matches.games.ranges import ConfigRange

__all__ = ["ConnectX"]

EMPTY = 0
MAX_SIDE = 64  # keeps the board (and each stored state) under 4096 cells
SYMBOLS = {EMPTY: ".", 1: "X", 2: "O"}
# (row step, column step) for the four line directions: down, across and both diagonals.
DIRECTIONS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (1, 1), (1, -1))


class ConnectX(Game):
    """Rules of ConnectX; observation ``board`` (flat, top row first), ``mark``, ``step``."""

    name: ClassVar[str] = "connectx"
    title: ClassVar[str] = "ConnectX"
    rules_version: ClassVar[int] = 1
    num_seats: ClassVar[int] = 2
    default_config: ClassVar[Mapping[str, JSON]] = {"rows": 6, "columns": 7, "inarow": 4}
    # inarow is also at most max(rows, columns): see check_config.
    config_ranges: ClassVar[Mapping[str, ConfigRange]] = {
        "rows": ConfigRange(1, MAX_SIDE), "columns": ConfigRange(1, MAX_SIDE), "inarow": ConfigRange(1, MAX_SIDE),
    }
    # Kaggle's ConnectX competition: 2 s per move and a 60 s overage bank.
    time_defaults: ClassVar[Mapping[str, float | int]] = {"actTimeout": 2.0, "remainingOverageTime": 60.0}

    def __init__(self, config: Mapping[str, JSON], rng: random.Random) -> None:
        super().__init__(config, rng)
        self.rows: int = self.config["rows"]
        self.columns: int = self.config["columns"]
        self.inarow: int = self.config["inarow"]
        self.board = [EMPTY] * (self.rows * self.columns)
        self.line: list[int] | None = None
        self._outcome: Outcome | None = None

    @classmethod
    def check_config(cls, config: Mapping[str, JSON]) -> None:
        """Accept rows and columns in 1..64, inarow in 1..max(rows, columns), episodeSteps >= 2.

        Raises:
            ConfigOutOfRange: naming the key, the accepted range and the value.
        """
        check_episode_steps(config)
        check_int_range(config, "rows", 1, MAX_SIDE)
        check_int_range(config, "columns", 1, MAX_SIDE)
        check_int_range(config, "inarow", 1, max(config["rows"], config["columns"]))

    def to_act(self) -> tuple[int, ...]:
        """The seat whose turn it is, or nobody once the game is over."""
        return () if self._outcome is not None else (self.step % 2,)

    def observation(self, seat: int) -> dict[str, JSON]:
        """The board, the seat's mark and the step, in Kaggle's naming."""
        return {"board": list(self.board), "mark": seat + 1, "step": self.step}

    def parse_action(self, seat: int, action: JSON) -> JSON:
        """Accept a column index (an ``int``, not a ``bool``) of a column that is not full.

        Raises:
            IllegalAction: out of turn, not an integer column, or a full column.
        """
        check_turn(self, seat)
        if not is_int(action) or not 0 <= action < self.columns:
            raise IllegalAction(f"action must be an integer in 0..{self.columns - 1}, got {action!r}")
        if self.board[action] != EMPTY:
            raise IllegalAction(f"column {action!r} is full")
        return action

    def apply(self, actions: Mapping[int, JSON]) -> None:
        """Drop the checker of the seat to act; seats not to act are ignored.

        Raises:
            IllegalAction: the action is missing or illegal, or the game is over.
        """
        (seat,) = acting_seats(self, actions)
        column = self.parse_action(seat, actions[seat])
        mark = seat + 1
        row = max(r for r in range(self.rows) if self.board[r * self.columns + column] == EMPTY)
        self.board[row * self.columns + column] = mark
        self.step += 1
        self.line = self._line_through(row, column, mark)
        self._outcome = board_outcome(self, seat, has_line=self.line is not None, is_full=EMPTY not in self.board)

    def outcome(self) -> Outcome | None:
        """The result once there is a line, a full board or no steps left, else ``None``."""
        return self._outcome

    def state(self) -> dict[str, JSON]:
        """Board, step, seats to act, the winner's seat and the winning line (cell indices)."""
        winner = self._outcome.winner if self._outcome is not None else None
        return {
            "board": list(self.board),
            "rows": self.rows,
            "columns": self.columns,
            "step": self.step,
            "to_act": list(self.to_act()),
            "winner": winner,
            "line": list(self.line) if self.line is not None else None,
        }

    def render(self) -> str:
        """The grid with column numbers on top, X for mark 1, O for mark 2, then the status."""
        width = len(str(self.columns - 1))
        header = " " + " ".join(str(c).rjust(width) for c in range(self.columns))
        lines = [header]
        for r in range(self.rows):
            cells = self.board[r * self.columns : (r + 1) * self.columns]
            lines.append("|" + " ".join(SYMBOLS[c].rjust(width) for c in cells) + "|")
        lines.append(self._status_line())
        return "\n".join(lines)

    def _line_through(self, row: int, column: int, mark: int) -> list[int] | None:
        """The cells of a run of at least ``inarow`` marks through (row, column), if any."""
        for d_row, d_col in DIRECTIONS:
            cells = [row * self.columns + column]
            for sign in (1, -1):
                r, c = row + sign * d_row, column + sign * d_col
                while (
                    0 <= r < self.rows and 0 <= c < self.columns and self.board[r * self.columns + c] == mark
                ):
                    cells.append(r * self.columns + c)
                    r, c = r + sign * d_row, c + sign * d_col
            if len(cells) >= self.inarow:
                return sorted(cells)
        return None

    def _status_line(self) -> str:
        outcome = self._outcome
        if outcome is None:
            seat = self.step % 2
            return f"step {self.step}: {SYMBOLS[seat + 1]} (seat {seat}) to move"
        if outcome.winner is not None:
            return f"step {self.step}: {SYMBOLS[outcome.winner + 1]} (seat {outcome.winner}) wins"
        return f"step {self.step}: draw ({outcome.termination.value})"
