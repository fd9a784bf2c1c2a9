# category: protocol-abuse
# attack: answer strings that break encoders: a lone surrogate, NULs, line separators, an embedded protocol line
# marker: PWNED-protocol_garbage_strings
# expect: INVALID
# (never printed: the embedded line carries the marker JSON-escaped, a move only if the arena split the reply)
GARBAGE = ["\ud800", "\x00\x00", "\u2028\u2029",
           '0"}\n{"type":"action","step":2,"action":"\\u0050WNED-protocol_garbage_strings"}']


def agent(observation, configuration):
    return GARBAGE[(observation.step - 1) % len(GARBAGE)]
