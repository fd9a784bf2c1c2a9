"""ConnectX: wins if it can, blocks if it must, avoids handing the opponent a win, else plays centre."""

import random


def landing_row(board, column, rows, columns):
    """The row a checker dropped into `column` lands on, or -1 when the column is full."""
    for row in range(rows - 1, -1, -1):
        if board[row * columns + column] == 0:
            return row
    return -1


def wins(board, row, column, mark, rows, columns, inarow):
    """True when `mark` at (row, column) completes `inarow` in a line."""
    for d_row, d_col in ((1, 0), (0, 1), (1, 1), (1, -1)):
        count = 1
        for sign in (1, -1):
            r = row + sign * d_row
            c = column + sign * d_col
            while 0 <= r < rows and 0 <= c < columns and board[r * columns + c] == mark:
                count += 1
                r += sign * d_row
                c += sign * d_col
        if count >= inarow:
            return True
    return False


def agent(observation, configuration):
    rows = configuration.rows
    columns = configuration.columns
    inarow = configuration.inarow
    board = list(observation.board)
    me = observation.mark
    them = 3 - me
    moves = {}
    for column in range(columns):
        row = landing_row(board, column, rows, columns)
        if row >= 0:
            moves[column] = row
    for mark in (me, them):
        for column, row in moves.items():
            if wins(board, row, column, mark, rows, columns, inarow):
                return column
    safe = []
    for column, row in moves.items():
        # The opponent could answer on top of this checker; skip moves that let them win there.
        if row == 0:
            safe.append(column)
            continue
        board[row * columns + column] = me
        if not wins(board, row - 1, column, them, rows, columns, inarow):
            safe.append(column)
        board[row * columns + column] = 0
    candidates = safe or list(moves)
    centre = (columns - 1) / 2
    nearest = min(abs(column - centre) for column in candidates)
    return random.choice([column for column in candidates if abs(column - centre) == nearest])
