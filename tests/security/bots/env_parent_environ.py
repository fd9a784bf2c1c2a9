# category: env-secrets
# attack: read the secret from the parent's, PID 1's and every visible process's /proc/<pid>/environ
# marker: PWNED-env_parent_environ
# expect: ERROR|DONE
MARK = "PWNED" + "-env_parent_environ"
NAME = b"ARENA_TEST_SECRET"

try:
    import os

    pids = {os.getppid(), 1, *(int(p) for p in os.listdir("/proc") if p.isdigit())}
except Exception as exc:
    print("no os:", repr(exc))
    pids = {1}
for pid in sorted(pids):
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            data = file.read()
    except Exception as exc:
        print(pid, "failed:", repr(exc))
        continue
    for entry in data.split(b"\0"):
        if entry.startswith(NAME):
            print(MARK, pid, entry)


def agent(observation, configuration):
    return observation.step % configuration.signs
