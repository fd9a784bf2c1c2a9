# category: network
# attack: connect to Unix sockets of the host: the ones listed in /proc/net/unix (abstract ones too), docker, systemd, dbus
# marker: PWNED-net_unix_sockets
# expect: ERROR|DONE
MARK = "PWNED" + "-net_unix_sockets"
PATHS = ["/var/run/docker.sock", "/run/docker.sock", "/run/systemd/private", "/run/dbus/system_bus_socket",
         "/run/systemd/journal/stdout", "/var/run/nscd/socket"]

try:
    with open("/proc/net/unix") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8:
                PATHS.append(fields[7].replace("@", "\0", 1))
except Exception as exc:
    print("/proc/net/unix failed:", repr(exc))
try:
    import socket

    for path in PATHS[:200]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.2)
        try:
            sock.connect(path)
        except Exception as exc:
            print(repr(path), "failed:", repr(exc))
            continue
        finally:
            sock.close()
        print(MARK, "connected to", repr(path))
except Exception as exc:
    print("no unix sockets:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
