# category: protocol-abuse
# attack: answer a list nested 100 000 deep (the serializer's recursion) and, if that passes, 5 000 deep (the decoder's)
# marker: PWNED-protocol_deep_nesting
# expect: INVALID
# (never printed: a nested move the arena decoded would show in the replay)


def nest(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def agent(observation, configuration):
    return nest(100_000 if observation.step % 2 else 5_000)
