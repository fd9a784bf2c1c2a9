# category: signals
# attack: kill(-1, SIGKILL): every process the bot may signal (run only in the outer box)
# marker: PWNED-signal_kill_all
# expect: ERROR|DONE
MARK = "PWNED" + "-signal_kill_all"

try:
    import os
    import signal

    os.kill(-1, signal.SIGKILL)
    print(MARK, "kill(-1) went through", flush=True)
except Exception as exc:
    print("kill(-1) failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
