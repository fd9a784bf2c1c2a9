# category: network
# attack: reach the internet (1.1.1.1:80, 8.8.8.8:53 over TCP) and list the host's network interfaces
# marker: PWNED-net_external_and_interfaces
# expect: ERROR|DONE
MARK = "PWNED" + "-net_external_and_interfaces"

try:
    import socket

    for address in [("1.1.1.1", 80), ("8.8.8.8", 53), ("93.184.215.14", 80)]:
        try:
            socket.create_connection(address, timeout=0.5).close()
            print(MARK, "connected to", address)
        except Exception as exc:
            print(address, "failed:", repr(exc))
    try:
        names = [name for _, name in socket.if_nameindex()]
        print("interfaces", names)
        if set(names) - {"lo"}:
            print(MARK, "sees host interfaces", names)
    except Exception as exc:
        print("if_nameindex failed:", repr(exc))
except Exception as exc:
    print("no socket:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
