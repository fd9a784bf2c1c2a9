# category: signals
# attack: send SIGKILL, SIGTERM and SIGSTOP to the parent process (the server, or the sandbox's launcher)
# marker: PWNED-signal_kill_parent
# expect: ERROR|DONE
MARK = "PWNED" + "-signal_kill_parent"

try:
    import os
    import signal

    parent = os.getppid()
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(parent, sig)
        except Exception as exc:
            print("kill", parent, sig, "failed:", repr(exc))
            continue
        print(MARK, "signalled", parent, sig, flush=True)
except Exception as exc:
    print("no signals:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
