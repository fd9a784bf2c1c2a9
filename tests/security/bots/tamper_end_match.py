# category: tamper-results
# attack: try to end the match with a win: answer a result document, a winner, an out-of-range sign
# marker: PWNED-tamper_end_match
# expect: INVALID
# (never printed: a win by these answers would show as a DONE seat with reward 1)
ANSWERS = [{"winner": 0, "rewards": [1, -1], "status": "DONE"}, "win", 3, -1, True]


def agent(observation, configuration):
    return ANSWERS[observation.step % len(ANSWERS)]
