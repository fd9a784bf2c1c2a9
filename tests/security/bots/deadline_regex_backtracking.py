# category: deadline-abuse
# attack: block inside a C call that no Python signal interrupts: catastrophic regex backtracking
# marker: PWNED-deadline_regex_backtracking
# expect: TIMEOUT|ERROR
import re


def agent(observation, configuration):
    re.match(r"(a+)+$", "a" * 64 + "!")
    print("PWN" + "ED-deadline_regex_backtracking", "the regex finished and the seat lived on")
    return observation.step % configuration.signs
