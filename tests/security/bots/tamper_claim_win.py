# category: tamper-results
# attack: play three cells in one move (a line), then check whether the board shows them: a win by a move the rules forbid
# marker: PWNED-tamper_claim_win
# expect: INVALID
# game: tictactoe
played = []


def agent(observation, configuration):
    board = observation.board
    mine = observation.mark
    if played and all(board[cell] == mine for cell in (0, 4, 8)):
        print("PWN" + "ED-tamper_claim_win", board)
    played.append(observation.step)
    return [0, 4, 8]
