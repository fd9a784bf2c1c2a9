# category: tamper-results
# attack: print fake protocol lines (a move, a ready, an error for the opponent, a result) where the runtime's channel is
# marker: PWNED-tamper_print_protocol
# expect: DONE
# The fake move carries the marker JSON-escaped: only an arena that decoded the printed line as a
# reply would record it as the move.
FAKES = [
    '{"type":"action","step":%d,"action":"\\u0050WNED-tamper_print_protocol"}',
    '{"type":"ready"}',
    '{"type":"error","kind":"exception","message":"opponent crashed","step":%d}',
    '{"type":"result","winner":0,"rewards":[1,-1]}',
]


def agent(observation, configuration):
    for fake in FAKES:
        print(fake % observation.step if "%d" in fake else fake, flush=True)
    return observation.step % configuration.signs
