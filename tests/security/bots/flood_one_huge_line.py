# category: output-flood
# attack: write 64 MB without a newline at load, then answer
# marker: PWNED-flood_one_huge_line
# expect: ERROR
print("y" * (64 << 20), end="")


def agent(observation, configuration):
    return "PWN" + "ED-flood_one_huge_line"
