# category: memory-bomb
# attack: grow memory 64 MB at a time, touching every page, up to 6 GB, at load
# marker: PWNED-memory_gradual_growth
# expect: ERROR
# config: {"agentTimeout": 15.0}
# Touching the first GB of pages takes seconds on a loaded machine: a long start-up deadline
# leaves the memory limit, not the clock, to stop it.
chunks = []
for _ in range(96):
    chunks.append(b"\1" * (64 << 20))
print("PWN" + "ED-memory_gradual_growth", len(chunks) * 64, "MB")


def agent(observation, configuration):
    return observation.step % configuration.signs
