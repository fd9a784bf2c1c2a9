# category: read-files
# attack: list ., .., /proc/self/cwd, the parent's cwd and root and /, looking for the server's files
# marker: PWNED-read_cwd_and_parents
# expect: ERROR|DONE
MARK = "PWNED" + "-read_cwd_and_parents"
# Not in a seat's view: the project, the database, a host's usual top-level directories.
TELLTALES = {"arena.db", "pyproject.toml", ".venv", "server", "etc", "home", "root", "tmp", "var", "work"}

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))

if os is not None:
    places = [".", "..", "../..", "/", "/proc/self/cwd", "/proc/self/root", "/work", "/work/main", "/root", "/home"]
    try:
        ppid = os.getppid()
        places += [f"/proc/{ppid}/cwd", f"/proc/{ppid}/root"]
    except Exception as exc:
        print("getppid failed:", repr(exc))
    for place in places:
        try:
            names = set(os.listdir(place))
        except Exception as exc:
            print(place, "failed:", repr(exc))
            continue
        print(place, sorted(names)[:20])
        if names & TELLTALES:
            print(MARK, place, sorted(names & TELLTALES))


def agent(observation, configuration):
    return observation.step % configuration.signs
