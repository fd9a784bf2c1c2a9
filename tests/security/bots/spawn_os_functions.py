# category: spawn-processes
# attack: start processes with os.system, os.popen, os.posix_spawn, os.spawnv and os.fork + exec
# marker: PWNED-spawn_os_functions
# expect: ERROR|DONE
MARK = "PWNED" + "-spawn_os_functions"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))


def attempt(label, fn):
    try:
        result = fn()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return
    if result not in (None, -1, 127, 32512, ""):
        print(MARK, label, repr(result)[:80])


if os is not None:
    attempt("system", lambda: os.system("true"))
    attempt("popen", lambda: os.popen("id").read())
    attempt("posix_spawn", lambda: os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0))
    attempt("spawnv", lambda: os.spawnv(os.P_WAIT, "/bin/true", ["true"]) == 0 or None)
    attempt("fork", lambda: os.fork() or os.getpid())


def agent(observation, configuration):
    return observation.step % configuration.signs
