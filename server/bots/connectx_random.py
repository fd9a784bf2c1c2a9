"""ConnectX: drops a checker into a random column that is not full."""

import random


def agent(observation, configuration):
    open_columns = [c for c in range(configuration.columns) if observation.board[c] == 0]
    return random.choice(open_columns)
