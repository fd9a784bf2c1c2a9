# category: write-files
# attack: write a file into /tmp and /var/tmp, through open() and os.open()
# marker: PWNED-write_tmp
# expect: ERROR|DONE
MARK = "PWNED" + "-write_tmp"
PATHS = ["/tmp/arena-pwned-write_tmp", "/var/tmp/arena-pwned-write_tmp"]

for path in PATHS:
    try:
        with open(path, "w") as file:
            file.write(MARK + "\n")
        print(MARK, "wrote", path)
    except Exception as exc:
        print(path, "open failed:", repr(exc))
try:
    import os

    for path in PATHS:
        try:
            fd = os.open(path + "-os", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x")
            os.close(fd)
            print(MARK, "os.open wrote", path)
        except Exception as exc:
            print(path, "os.open failed:", repr(exc))
except ImportError as exc:
    print("no os:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
