# category: write-files
# attack: append to the project's runtime, an example bot, the sandbox's runtime copy, the interpreter's stdlib and the database
# marker: PWNED-write_project_append
# expect: ERROR|DONE
MARK = "PWNED" + "-write_project_append"
LINE = "\n# arena-pwned: appended by an attack bot\n"
TARGETS = ["/work/main/server/sandbox/seat/bot_runtime.py", "/work/main/server/bots/rps_random.py",
           "/arena/bot_runtime.py", "/arena/restricted.py", "/usr/lib/python3.11/json/__init__.py",
           "/proc/self/cwd/arena.db"]

try:
    import os

    TARGETS.append(f"/proc/{os.getppid()}/cwd/arena.db")
except Exception as exc:
    print("no os:", repr(exc))
for path in TARGETS:
    try:
        with open(path, "a") as file:
            file.write(LINE)
        print(MARK, "appended to", path)
    except Exception as exc:
        print(path, "failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
