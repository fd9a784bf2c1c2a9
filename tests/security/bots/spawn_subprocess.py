# category: spawn-processes
# attack: run programs with subprocess: id, a shell, and the interpreter itself
# marker: PWNED-spawn_subprocess
# expect: ERROR|DONE
MARK = "PWNED" + "-spawn_subprocess"

try:
    import subprocess
    import sys

    for argv in (["id"], ["/bin/sh", "-c", "id"], [sys.executable, "-c", "print(6 * 7)"]):
        try:
            done = subprocess.run(argv, capture_output=True, timeout=2)
        except Exception as exc:
            print(argv, "failed:", repr(exc))
            continue
        print(MARK, argv, done.returncode, done.stdout[:80])
except Exception as exc:
    print("no subprocess:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
