# category: other-seat
# attack: find the other seat's runtime in /proc and read its environ, cwd, maps and memory
# marker: PWNED-seat_proc_snoop
# expect: ERROR|DONE
MARK = "PWNED" + "-seat_proc_snoop"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))


def others():
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                argv = file.read().split(b"\0")
        except Exception:
            continue
        # The seat's own bubblewrap reaper names the runtime in its argv too: not another seat.
        if argv[0].rsplit(b"/", 1)[-1] != b"bwrap" and any(b"bot_runtime" in arg for arg in argv):
            yield int(entry)


if os is not None:
    try:
        seats = list(others())
    except Exception as exc:
        print("scan failed:", repr(exc))
        seats = []
    print("other seats:", seats)
    for pid in seats:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                print(MARK, pid, "environ", file.read()[:100])
        except Exception as exc:
            print(pid, "environ failed:", repr(exc))
        try:
            print(MARK, pid, "cwd", os.listdir(f"/proc/{pid}/cwd")[:10])
        except Exception as exc:
            print(pid, "cwd failed:", repr(exc))
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
                start = int(maps.readline().split("-")[0], 16)
                mem.seek(start)
                print(MARK, pid, "memory", mem.read(16))
        except Exception as exc:
            print(pid, "memory failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
