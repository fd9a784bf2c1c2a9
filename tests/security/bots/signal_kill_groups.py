# category: signals
# attack: signal the parent's process group and session, then probe pids 1-4096 and SIGTERM every one it may signal
# marker: PWNED-signal_kill_groups
# expect: ERROR|DONE
MARK = "PWNED" + "-signal_kill_groups"

try:
    import os
    import signal

    me = os.getpid()
    try:
        group = os.getpgid(os.getppid())
        if group != os.getpgid(0):
            os.killpg(group, signal.SIGTERM)
            print(MARK, "signalled the parent's group", group, flush=True)
    except Exception as exc:
        print("killpg failed:", repr(exc))
    hits = []
    for pid in range(1, 4097):
        if pid == me:
            continue
        try:
            os.kill(pid, 0)
        except Exception:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            hits.append(pid)
        except Exception:
            pass
    if hits:
        print(MARK, "signalled", hits[:20], flush=True)
except Exception as exc:
    print("no signals:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
