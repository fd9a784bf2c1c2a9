# category: cpu-spin
# attack: spin the CPU inside a move; boast if nothing stopped it within 3 seconds
# marker: PWNED-cpu_spin_in_move
# expect: TIMEOUT|ERROR
import time


def agent(observation, configuration):
    started = time.monotonic()
    while time.monotonic() - started < 3:
        pass
    print("PWN" + "ED-cpu_spin_in_move", "spun 3 s unharmed")
    return observation.step % configuration.signs
