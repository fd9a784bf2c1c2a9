"""Rock-paper-scissors: plays what beats the opponent's most frequent sign so far."""

import random

# Opponent's sign -> times played; module globals last for the whole match.
counts = {}


def beats(left, right):
    """True when sign `left` beats sign `right` (Kaggle's rule for any number of signs)."""
    delta = right - left if (left + right) % 2 == 0 else left - right
    return delta > 0


def agent(observation, configuration):
    signs = configuration.signs
    if observation.step == 0:
        counts.clear()
    elif observation.lastOpponentAction is not None:
        last = observation.lastOpponentAction
        counts[last] = counts.get(last, 0) + 1
    if not counts:
        return random.randrange(signs)
    most = max(counts.values())
    favourite = random.choice([sign for sign in sorted(counts) if counts[sign] == most])
    return random.choice([sign for sign in range(signs) if beats(sign, favourite)])
