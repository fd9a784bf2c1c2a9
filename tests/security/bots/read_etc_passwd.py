# category: read-files
# attack: read /etc/passwd through open(), io.open and /proc/self/root, /proc/1/root and ../ paths
# marker: PWNED-read_etc_passwd
# expect: ERROR|DONE
MARK = "PWNED" + "-read_etc_passwd"
PATHS = ["/etc/passwd", "/proc/self/root/etc/passwd", "/proc/1/root/etc/passwd", "../../../../../../etc/passwd"]


def readers():
    found = [("open", lambda path: open(path).read())]
    try:
        import io

        found.append(("io.open", lambda path: io.open(path).read()))
    except Exception as exc:
        print("no io:", repr(exc))
    try:
        import pathlib

        found.append(("pathlib", lambda path: pathlib.Path(path).read_text()))
    except Exception as exc:
        print("no pathlib:", repr(exc))
    return found


for label, read in readers():
    for path in PATHS:
        try:
            text = read(path)
        except Exception as exc:
            print(label, path, "failed:", repr(exc))
            continue
        if "root:" in text:
            print(MARK, label, path, text[:60])


def agent(observation, configuration):
    return observation.step % configuration.signs
