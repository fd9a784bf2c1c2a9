# category: deadline-abuse
# attack: answer the first move long after actTimeout and the bank are spent, then see whether the arena asks again
# marker: PWNED-deadline_late_answer
# expect: TIMEOUT
import time

moves = []


def agent(observation, configuration):
    moves.append(observation.step)
    if len(moves) > 1:
        print("PWN" + "ED-deadline_late_answer", "a late answer was taken and play went on")
    time.sleep(1.5)
    return observation.step % configuration.signs
