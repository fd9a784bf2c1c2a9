# category: network
# attack: connect over TCP to 127.0.0.1 and ::1: the test's listener, the arena's own port, usual service ports
# marker: PWNED-net_tcp_localhost
# expect: ERROR|DONE
MARK = "PWNED" + "-net_tcp_localhost"
PORTS = [ARENA_TEST_LISTENER_PORT, ARENA_TEST_SERVER_PORT, 22, 80, 443, 5432, 6379, 8000, 8080]

try:
    import socket
except ImportError as exc:
    socket = None
    print("no socket:", repr(exc))

if socket is not None:
    for host in ["127.0.0.1", "::1", "localhost"]:
        for port in PORTS:
            try:
                conn = socket.create_connection((host, port), timeout=0.2)
            except Exception as exc:
                print(host, port, "failed:", repr(exc))
                continue
            conn.close()
            print(MARK, "connected to", host, port)


def agent(observation, configuration):
    return observation.step % configuration.signs
