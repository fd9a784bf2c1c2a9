# category: write-files
# attack: write into shared memory (/dev/shm, /run/shm) and /dev, where other processes could find it
# marker: PWNED-write_dev_shm
# expect: ERROR|DONE
MARK = "PWNED" + "-write_dev_shm"

for path in ["/dev/shm/arena-pwned-write_dev_shm", "/run/shm/arena-pwned-write_dev_shm", "/dev/arena-pwned-write_dev"]:
    try:
        with open(path, "wb") as file:
            file.write(b"x" * 4096)
        print(MARK, "wrote", path)
    except Exception as exc:
        print(path, "failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
