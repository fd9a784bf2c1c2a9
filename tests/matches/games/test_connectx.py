"""ConnectX rules: feed columns, check boards and results."""

from __future__ import annotations

import random

import pytest

from protocol.errors import ConfigError, IllegalAction
from server.matches.games import ConnectX, Outcome, Termination, resolve_config


def new_game(**overrides: object) -> ConnectX:
    return ConnectX(resolve_config(ConnectX, overrides), random.Random(0))


def play(game: ConnectX, columns: list[int]) -> None:
    for column in columns:
        assert game.outcome() is None
        (seat,) = game.to_act()
        game.apply({seat: game.parse_action(seat, column)})


def test_defaults_are_kaggles() -> None:
    config = resolve_config(ConnectX, None)
    assert (config["rows"], config["columns"], config["inarow"]) == (6, 7, 4)
    assert config["actTimeout"] == 2.0
    assert config["remainingOverageTime"] == 60.0


def test_checkers_fall_to_the_bottom_row_major_top_first() -> None:
    game = new_game()
    play(game, [3, 3, 0])
    board = game.observation(0)["board"]
    assert len(board) == 42
    assert board[5 * 7 + 3] == 1
    assert board[4 * 7 + 3] == 2
    assert board[5 * 7 + 0] == 1
    assert sum(1 for cell in board if cell) == 3
    assert game.observation(1) == {"board": board, "mark": 2, "step": 3}


def test_vertical_win() -> None:
    game = new_game()
    play(game, [0, 1, 0, 1, 0, 1, 0])
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)
    assert game.state()["line"] == [14, 21, 28, 35]


def test_horizontal_win_by_second_player() -> None:
    game = new_game()
    play(game, [0, 1, 0, 2, 0, 3, 6, 4])
    assert game.outcome() == Outcome((-1.0, 1.0), Termination.WIN, 1)
    assert game.state()["line"] == [36, 37, 38, 39]


def test_horizontal_win_completed_in_the_middle() -> None:
    game = new_game()
    play(game, [0, 0, 1, 1, 3, 3, 2])
    assert game.outcome() is not None and game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)


def test_rising_diagonal_win() -> None:
    game = new_game()
    # X at (5,0), (4,1), (3,2), (2,3): bottom left to top right.
    play(game, [0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3])
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)
    assert game.state()["line"] == [2 * 7 + 3, 3 * 7 + 2, 4 * 7 + 1, 5 * 7 + 0]


def test_falling_diagonal_win() -> None:
    game = new_game()
    # X at (5,6), (4,5), (3,4), (2,3): bottom right to top left.
    play(game, [6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3])
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)
    assert game.state()["line"] == [2 * 7 + 3, 3 * 7 + 4, 4 * 7 + 5, 5 * 7 + 6]


def test_custom_board() -> None:
    game = new_game(rows="3", columns="5", inarow="3")
    assert (game.rows, game.columns, game.inarow) == (3, 5, 3)
    assert len(game.board) == 15
    play(game, [0, 4, 1, 4, 2])
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)
    assert game.state()["line"] == [10, 11, 12]


def test_inarow_one_wins_at_once() -> None:
    game = new_game(inarow=1)
    play(game, [5])
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)


def test_full_column_and_bad_columns_are_illegal() -> None:
    game = new_game()
    play(game, [2] * 6)
    with pytest.raises(IllegalAction, match="column 2 is full"):
        game.parse_action(0, 2)
    with pytest.raises(IllegalAction, match="column 2 is full"):
        game.apply({0: 2})
    for action in (7, -1, True, 2.0, "3", None):
        with pytest.raises(IllegalAction, match=r"action must be an integer in 0\.\.6, got"):
            game.parse_action(0, action)
    with pytest.raises(IllegalAction, match="seat 1 is not to act"):
        game.parse_action(1, 0)


def test_full_board_is_a_draw() -> None:
    game = new_game(rows=2, columns=3, inarow=3)
    play(game, [0, 1, 2, 0, 1, 2])
    assert game.board == [2, 1, 2, 1, 2, 1]
    assert game.outcome() == Outcome((0.0, 0.0), Termination.DRAW)


def test_full_default_board_draw() -> None:
    game = new_game()
    # Columns in pairs give stacks of alternating colour, shifted so no four line up.
    order = [0, 1] * 3 + [1, 0] * 3 + [2, 3] * 3 + [3, 2] * 3 + [4, 5] * 3 + [5, 4] * 3 + [6] * 6
    play(game, order)
    assert game.outcome() == Outcome((0.0, 0.0), Termination.DRAW)
    assert game.step == 42


def test_step_limit_is_a_draw() -> None:
    game = new_game(episodeSteps=3)
    play(game, [0, 1])
    assert game.outcome() == Outcome((0.0, 0.0), Termination.STEPS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows": 0}, r"config rows must be in 1\.\.64, got 0"),
        ({"columns": 65}, r"config columns must be in 1\.\.64, got 65"),
        ({"inarow": 0}, r"config inarow must be in 1\.\.64, got 0"),
        ({"rows": 3, "columns": 4, "inarow": 5}, r"config inarow must be in 1\.\.4, got 5"),
        ({"episodeSteps": 1}, r"config episodeSteps must be in 2\.\.10000, got 1"),
    ],
)
def test_config_ranges(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(ConnectX, overrides)


def test_render_shows_column_numbers() -> None:
    game = new_game(rows=2, columns=3, inarow=2)
    play(game, [1])
    assert game.render() == " 0 1 2\n|. . .|\n|. X .|\nstep 1: O (seat 1) to move"
    wide = new_game(rows=1, columns=12, inarow=2)
    assert wide.render().splitlines()[0].endswith(" 9 10 11")
