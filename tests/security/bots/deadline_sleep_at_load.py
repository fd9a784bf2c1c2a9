# category: deadline-abuse
# attack: sleep through the start-up deadline, hoping the opponent's clock runs instead
# marker: PWNED-deadline_sleep_at_load
# expect: TIMEOUT
# config: {"agentTimeout": 1.0}
import time

time.sleep(5)
print("PWN" + "ED-deadline_sleep_at_load", "slept 5 s at load and was not stopped", flush=True)


def agent(observation, configuration):
    return observation.step % configuration.signs
