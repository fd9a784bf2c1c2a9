"""Tic-tac-toe: perfect play by minimax; wins as fast as it can and loses as late as it can."""

import random

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]

# (board, mark to move) -> (score for that mark, best cells); kept for the whole match.
memo = {}


def has_line(board, mark):
    for a, b, c in LINES:
        if board[a] == mark and board[b] == mark and board[c] == mark:
            return True
    return False


def negamax(board, mark):
    """Score of the position for `mark` to move (more empty cells left = a faster win) and its best cells."""
    key = (board, mark)
    if key in memo:
        return memo[key]
    empty = [cell for cell in range(9) if board[cell] == 0]
    best_score = None
    best_cells = []
    for cell in empty:
        child = board[:cell] + (mark,) + board[cell + 1:]
        if has_line(child, mark):
            score = len(empty)
        elif len(empty) == 1:
            score = 0
        else:
            score = -negamax(child, 3 - mark)[0]
        if best_score is None or score > best_score:
            best_score = score
            best_cells = [cell]
        elif score == best_score:
            best_cells.append(cell)
    memo[key] = (best_score or 0, best_cells)
    return memo[key]


def agent(observation, configuration):
    board = tuple(observation.board)
    cells = negamax(board, observation.mark)[1]
    if not cells:
        return [cell for cell in range(9) if board[cell] == 0][0]
    return random.choice(cells)
