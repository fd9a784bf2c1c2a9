# category: write-files
# attack: write files into the working directory, its parent, /, the runtime's directory and /usr
# marker: PWNED-write_cwd_and_root
# expect: ERROR|DONE
MARK = "PWNED" + "-write_cwd_and_root"
PATHS = ["arena-pwned-write_cwd", "../arena-pwned-write_cwd", "/arena-pwned-write_root",
         "/arena/arena-pwned-write_runtime_dir", "/usr/arena-pwned-write_usr", "/proc/self/cwd/arena-pwned-write_cwd2"]

for path in PATHS:
    try:
        with open(path, "x") as file:
            file.write("x")
        print(MARK, "wrote", path)
    except Exception as exc:
        print(path, "failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
