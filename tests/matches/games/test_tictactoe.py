"""Tic-tac-toe rules: feed moves, check boards and results."""

from __future__ import annotations

import random

import pytest

from protocol.errors import IllegalAction
from server.matches.games import Outcome, Termination, TicTacToe, resolve_config


def new_game(**overrides: object) -> TicTacToe:
    return TicTacToe(resolve_config(TicTacToe, overrides), random.Random(0))


def play(game: TicTacToe, cells: list[int]) -> None:
    for cell in cells:
        (seat,) = game.to_act()
        game.apply({seat: game.parse_action(seat, cell)})


def test_start() -> None:
    game = new_game()
    assert game.to_act() == (0,)
    assert game.observation(0) == {"board": [0] * 9, "mark": 1, "step": 0}
    assert game.observation(1)["mark"] == 2
    assert game.outcome() is None


def test_marks_alternate_and_seat_0_plays_x() -> None:
    game = new_game()
    play(game, [4, 0])
    assert game.board == [2, 0, 0, 0, 1, 0, 0, 0, 0]
    assert game.step == 2
    assert game.to_act() == (0,)
    assert game.state()["to_act"] == [0]


@pytest.mark.parametrize(
    ("moves", "line"),
    [
        ([0, 3, 1, 4, 2], [0, 1, 2]),  # row
        ([0, 1, 3, 2, 6], [0, 3, 6]),  # column
        ([0, 1, 4, 2, 8], [0, 4, 8]),  # diagonal
        ([2, 0, 4, 1, 6], [2, 4, 6]),  # anti-diagonal
    ],
)
def test_first_player_wins(moves: list[int], line: list[int]) -> None:
    game = new_game()
    play(game, moves)
    assert game.outcome() == Outcome((1.0, -1.0), Termination.WIN, 0)
    assert game.state()["line"] == line
    assert game.state()["winner"] == 0
    assert game.to_act() == ()
    assert "X (seat 0) wins" in game.render()


def test_second_player_wins() -> None:
    game = new_game()
    play(game, [0, 3, 1, 4, 8, 5])
    assert game.outcome() == Outcome((-1.0, 1.0), Termination.WIN, 1)


def test_full_board_is_a_draw() -> None:
    game = new_game()
    play(game, [0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert game.outcome() == Outcome((0.0, 0.0), Termination.DRAW)
    assert game.render().splitlines()[:3] == ["X O X", "X O O", "O X X"]


def test_step_limit_is_a_draw() -> None:
    game = new_game(episodeSteps=4)  # Kaggle: episodeSteps - 1 moves
    play(game, [0, 1, 2])
    assert game.outcome() == Outcome((0.0, 0.0), Termination.STEPS)


@pytest.mark.parametrize("action", [9, -1, True, 4.0, "4", None, [4]])
def test_malformed_actions(action: object) -> None:
    with pytest.raises(IllegalAction, match=r"action must be an integer in 0\.\.8, got"):
        new_game().parse_action(0, action)


def test_taken_cell_and_turn_order() -> None:
    game = new_game()
    play(game, [4])
    with pytest.raises(IllegalAction, match="cell 4 is taken"):
        game.parse_action(1, 4)
    with pytest.raises(IllegalAction, match="seat 0 is not to act"):
        game.parse_action(0, 0)
    with pytest.raises(IllegalAction, match="cell 4 is taken"):
        game.apply({1: 4})


def test_no_moves_after_the_end() -> None:
    game = new_game()
    play(game, [0, 3, 1, 4, 2])
    with pytest.raises(IllegalAction, match="the game is over"):
        game.parse_action(1, 5)
    with pytest.raises(IllegalAction, match="the game is over"):
        game.apply({1: 5})


def test_render() -> None:
    game = new_game()
    play(game, [4])
    assert game.render() == ". . .\n. X .\n. . .\nstep 1: O (seat 1) to move"
