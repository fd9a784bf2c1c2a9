# category: write-files
# attack: create without writing (RLIMIT_FSIZE 0 allows it): empty files, O_TRUNC, mkdir, mkfifo, symlink, link
# marker: PWNED-write_empty_and_metadata
# expect: ERROR|DONE
MARK = "PWNED" + "-write_empty_and_metadata"

try:
    import os
except ImportError as exc:
    os = None
    print("no os:", repr(exc))


def attempt(label, fn):
    try:
        fn()
    except Exception as exc:
        print(label, "failed:", repr(exc))
    else:
        print(MARK, label)


if os is not None:
    for top in ["/tmp", "/dev/shm", ".", "/"]:
        base = top + "/arena-pwned-meta"
        attempt("create " + top, lambda: os.close(os.open(base + "-empty", os.O_RDONLY | os.O_CREAT, 0o600)))
        attempt("truncate " + top, lambda: os.close(os.open(base + "-trunc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)))
        attempt("mkdir " + top, lambda: os.mkdir(base + "-dir"))
        attempt("mkfifo " + top, lambda: os.mkfifo(base + "-fifo"))
        attempt("symlink " + top, lambda: os.symlink("/etc/passwd", base + "-link"))
        attempt("hardlink " + top, lambda: os.link("/proc/self/exe", base + "-hard"))


def agent(observation, configuration):
    return observation.step % configuration.signs
