# category: memory-bomb
# attack: allocate 4 GB at once in a move
# marker: PWNED-memory_bytearray_4g
# expect: ERROR


def agent(observation, configuration):
    block = bytearray(4 << 30)
    print("PWN" + "ED-memory_bytearray_4g", len(block))
    return observation.step % configuration.signs
