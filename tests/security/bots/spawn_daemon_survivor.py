# category: spawn-processes
# attack: double-fork a daemon in a new session that sleeps past the end of the match, to outlive it
# marker: PWNED-spawn_daemon_survivor
# expect: ERROR|DONE
MARK = "PWNED" + "-spawn_daemon_survivor"

try:
    import os
    import time

    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            print(MARK, "daemon alive", flush=True)
            time.sleep(120)
        os._exit(0)
    os.waitpid(pid, 0)
except Exception as exc:
    print("fork failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
