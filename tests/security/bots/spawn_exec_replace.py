# category: spawn-processes
# attack: replace the bot's process with execve: /bin/sh, id, then a fresh interpreter that tries what the runtime forbids
# marker: PWNED-spawn_exec_replace
# expect: ERROR|DONE
# A fresh interpreter exec'd in place of the runtime prints the marker only if it then gets a
# file of the host, a socket, a process or a signal to another process.
PAYLOAD = """
import os, socket
def worked(what, fn):
    try:
        fn()
    except Exception as exc:
        print("exec'd interpreter:", what, "failed:", repr(exc), flush=True)
    else:
        print("PWN" + "ED-spawn_exec_replace", what, flush=True)
worked("/etc/passwd", lambda: open("/etc/passwd").read())
worked("socket", lambda: socket.socket())
worked("fork", lambda: os.fork() or os._exit(0))
worked("kill parent", lambda: os.kill(os.getppid(), 0))
"""

try:
    import os
    import sys

    for argv in (["/bin/sh", "-c", 'echo PWN"ED-spawn_exec_replace via sh"'], ["/usr/bin/id"]):
        try:
            os.execv(argv[0], argv)
        except Exception as exc:
            print(argv[0], "failed:", repr(exc))
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", PAYLOAD])
except Exception as exc:
    print("exec failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
