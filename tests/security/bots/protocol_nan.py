# category: protocol-abuse
# attack: answer NaN and Infinity, which Python's json writes but JSON does not allow
# marker: PWNED-protocol_nan
# expect: INVALID
# (never printed: a NaN the referee accepted would show as a move in the replay)
values = [float("nan"), float("inf"), -float("inf")]


def agent(observation, configuration):
    return values[observation.step % 3]
