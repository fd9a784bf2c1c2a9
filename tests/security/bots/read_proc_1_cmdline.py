# category: read-files
# attack: read /proc/1/cmdline, /proc/1/environ and /proc/1/status to learn what runs the host (or the server)
# marker: PWNED-read_proc_1_cmdline
# expect: ERROR|DONE
MARK = "PWNED" + "-read_proc_1_cmdline"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))


def read(path):
    try:
        with open(path, "rb") as file:
            return file.read()
    except Exception as exc:
        print(path, "failed:", repr(exc))
        return b""


raw = read("/proc/1/cmdline")
cmdline = raw.replace(b"\0", b" ")
print("pid 1 is", cmdline[:100])
# In a seat's own PID namespace, PID 1 is bubblewrap's reaper (its argv[0] is bwrap's path)
# or the bot itself: nothing to learn about the host or the server.
is_reaper = raw.split(b"\0")[0].rsplit(b"/", 1)[-1] == b"bwrap"
mine = os is not None and os.getpid() == 1
if cmdline and not is_reaper and not mine:
    print(MARK, "host PID 1:", cmdline[:200], read("/proc/1/environ")[:200])


def agent(observation, configuration):
    return observation.step % configuration.signs
