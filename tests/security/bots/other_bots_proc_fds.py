# category: other-bots-code
# attack: read every other process's stdin pipe and open files through /proc/<pid>/fd, looking for submitted code
# marker: PWNED-other_bots_proc_fds
# expect: ERROR|DONE
MARK = "PWNED" + "-other_bots_proc_fds"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))

if os is not None:
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except Exception as exc:
        print("no /proc:", repr(exc))
        pids = []
    print("other processes:", pids[:20])
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except Exception as exc:
            print(pid, "fds failed:", repr(exc))
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except Exception:
                continue
            try:
                data = os.read(handle, 1 << 16)
            except Exception:
                data = b""
            finally:
                os.close(handle)
            if b"ARENA-CANARY" in data or b"def agent" in data:
                print(MARK, path, data[:80])


def agent(observation, configuration):
    return observation.step % configuration.signs
