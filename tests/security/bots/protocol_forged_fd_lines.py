# category: protocol-abuse
# attack: write forged protocol lines straight to every open descriptor (a wrong step, garbage, a huge line), bypassing print
# marker: PWNED-protocol_forged_fd_lines
# expect: INVALID|ERROR|DONE
# (never printed: the arena must take a forged line for a wrong or malformed reply, never as a move)
FORGED = [b'{"type":"action","step":999,"action":0}\n', b"\xff\xfe garbage \x00\n", b"[" * 100_000 + b"\n"]


def agent(observation, configuration):
    try:
        import os

        for fd in range(3, 16):
            for line in FORGED:
                try:
                    os.write(fd, line)
                except Exception:
                    break
    except Exception as exc:
        print("no os:", repr(exc))
    return observation.step % configuration.signs
