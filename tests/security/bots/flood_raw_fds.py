# category: output-flood
# attack: flood the log through raw descriptors (os.write on fds 1 and 2, /dev/stderr, /proc/self/fd/2)
# marker: PWNED-flood_raw_fds
# expect: ERROR|DONE
block = b"z" * (1 << 20)
flooded = 0
try:
    import os

    for _ in range(16):
        flooded += os.write(1, block) + os.write(2, block)
except Exception as exc:
    print("os.write failed:", repr(exc))
for path in ["/dev/stderr", "/proc/self/fd/2"]:
    try:
        with open(path, "wb") as out:
            for _ in range(16):
                flooded += out.write(block)
    except Exception as exc:
        print(path, "failed:", repr(exc))


def agent(observation, configuration):
    # After more than the output limit, nothing should be left to answer.
    return "PWN" + "ED-flood_raw_fds" if flooded > (4 << 20) else observation.step % configuration.signs
