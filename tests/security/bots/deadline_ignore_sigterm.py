# category: deadline-abuse
# attack: ignore SIGTERM (and SIGINT, SIGHUP) and sleep through the deadline, to linger after the match
# marker: PWNED-deadline_ignore_sigterm
# expect: TIMEOUT
import time

try:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
except Exception as exc:
    print("signals failed:", repr(exc))


def agent(observation, configuration):
    time.sleep(3)
    print("PWN" + "ED-deadline_ignore_sigterm", "outlived the deadline", flush=True)
    return observation.step % configuration.signs
