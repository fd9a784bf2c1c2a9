# category: memory-bomb
# attack: reserve memory outside Python's allocator (mmap of 8 GB) and a list of a billion slots
# marker: PWNED-memory_mmap_and_lists
# expect: ERROR|DONE
MARK = "PWNED" + "-memory_mmap_and_lists"

try:
    import mmap

    area = mmap.mmap(-1, 8 << 30)
    area[-1] = 1
    print(MARK, "mapped", len(area))
except Exception as exc:
    print("mmap failed:", repr(exc))
try:
    slots = [0] * (10**9)
    print(MARK, "list of", len(slots))
except MemoryError as exc:
    print("list failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
