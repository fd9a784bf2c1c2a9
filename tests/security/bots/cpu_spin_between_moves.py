# category: cpu-spin
# attack: arm interval timers whose signal handler spins the CPU between moves, while the runtime waits
# marker: PWNED-cpu_spin_between_moves
# expect: ERROR|DONE|TIMEOUT
import time

spun = 0.0


def spin(signum, frame):
    global spun
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        pass
    spun += 0.5
    if spun >= 2:
        print("PWN" + "ED-cpu_spin_between_moves", "spun", spun, "s between moves", flush=True)


try:
    import signal

    signal.signal(signal.SIGALRM, spin)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
except Exception as exc:
    print("timer failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
