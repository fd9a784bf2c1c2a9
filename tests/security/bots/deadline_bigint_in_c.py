# category: deadline-abuse
# attack: block in a long C computation (a huge power) inside a move
# marker: PWNED-deadline_bigint_in_c
# expect: TIMEOUT|ERROR


def agent(observation, configuration):
    huge = 7 ** (10**8)
    print("PWN" + "ED-deadline_bigint_in_c", "computed", huge.bit_length(), "bits past the deadline")
    return observation.step % configuration.signs
