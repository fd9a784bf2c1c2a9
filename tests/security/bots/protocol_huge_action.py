# category: protocol-abuse
# attack: answer a 4 MB move, past the reply size limit
# marker: PWNED-protocol_huge_action
# expect: INVALID
# (never printed: a reply the arena buffered whole would show as a DONE seat)


def agent(observation, configuration):
    return "9" * (4 << 20)
