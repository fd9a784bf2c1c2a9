# category: fork-bomb
# attack: the classic fork bomb: every process forks forever (capped here, should every layer fail)
# marker: PWNED-forkbomb_classic
# expect: ERROR|DONE
MARK = "PWNED" + "-forkbomb_classic"

try:
    import os

    forked = 0
    for _ in range(200):
        try:
            if os.fork() == 0:
                forked = 0  # a child: go on forking
            else:
                forked += 1
        except OSError as exc:
            print("fork failed:", repr(exc))
            break
    if forked:
        print(MARK, "forked", forked, flush=True)
except ImportError as exc:
    print("no os:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
