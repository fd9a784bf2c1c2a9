# category: cpu-spin
# attack: spin the CPU while the module loads, past the start-up deadline
# marker: PWNED-cpu_spin_at_load
# expect: TIMEOUT|ERROR
# config: {"agentTimeout": 1.0}
import time

started = time.monotonic()
while time.monotonic() - started < 4:
    pass
print("PWN" + "ED-cpu_spin_at_load", "spun 4 s at load unharmed")


def agent(observation, configuration):
    return observation.step % configuration.signs
