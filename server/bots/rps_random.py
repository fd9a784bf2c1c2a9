"""Rock-paper-scissors: plays a random sign every step."""

import random


def agent(observation, configuration):
    return random.randrange(configuration.signs)
