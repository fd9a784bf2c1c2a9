# category: network
# attack: send UDP datagrams to the test's listener and ask public DNS servers for a name
# marker: PWNED-net_udp_and_dns
# expect: ERROR|DONE
MARK = "PWNED" + "-net_udp_and_dns"
# A DNS query for example.com, type A.
QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"

try:
    import socket

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(0.5)
    try:
        udp.sendto(b"arena-pwned datagram", ("127.0.0.1", ARENA_TEST_LISTENER_PORT))
    except Exception as exc:
        print("sendto listener failed:", repr(exc))
    for server in ["8.8.8.8", "1.1.1.1", "127.0.0.53"]:
        try:
            udp.sendto(QUERY, (server, 53))
            answer, peer = udp.recvfrom(512)
        except Exception as exc:
            print("dns", server, "failed:", repr(exc))
            continue
        print(MARK, "DNS answer from", peer, answer[:40])
    try:
        print(MARK, "resolved", socket.gethostbyname("example.com"))
    except Exception as exc:
        print("gethostbyname failed:", repr(exc))
except Exception as exc:
    print("no udp:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
