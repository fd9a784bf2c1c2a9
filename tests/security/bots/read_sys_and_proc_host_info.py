# category: read-files
# attack: read host facts outside the seat's view: /sys network interfaces, /proc/net/tcp (the server's sockets), /etc/hostname
# marker: PWNED-read_sys_and_proc_host_info
# expect: ERROR|DONE
MARK = "PWNED" + "-read_sys_and_proc_host_info"
PORT = ARENA_TEST_SERVER_PORT


def read(path):
    try:
        with open(path) as file:
            return file.read()
    except Exception as exc:
        print(path, "failed:", repr(exc))
        return ""


hostname = read("/etc/hostname")
if hostname:
    print(MARK, "hostname", hostname[:40])
# A listening socket of the server shows in the table of its network namespace, port in hex.
tcp = read("/proc/net/tcp") + read("/proc/net/tcp6")
if (":%04X " % PORT) in tcp:
    print(MARK, "sees the arena's listening socket in /proc/net/tcp")
try:
    import os

    names = os.listdir("/sys/class/net")
    print("interfaces", names)
    if set(names) - {"lo"}:
        print(MARK, "host interfaces", names)
except Exception as exc:
    print("interfaces failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
