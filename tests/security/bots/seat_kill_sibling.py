# category: other-seat
# attack: find the other seat's runtime (and its sandbox) in /proc and SIGKILL it, to win by the opponent's crash
# marker: PWNED-seat_kill_sibling
# expect: ERROR|DONE
MARK = "PWNED" + "-seat_kill_sibling"

try:
    import os
    import signal

    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read()
        except Exception:
            continue
        if b"bot_runtime" in cmdline or b"bwrap" in cmdline:
            try:
                os.kill(int(entry), signal.SIGKILL)
                print(MARK, "killed", entry, cmdline[:60], flush=True)
            except Exception as exc:
                print("kill", entry, "failed:", repr(exc))
except Exception as exc:
    print("no os:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
