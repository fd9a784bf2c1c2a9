# category: network
# attack: talk HTTP to the arena's own API from inside a seat: register a user and an agent, read /api/health
# marker: PWNED-net_arena_api
# expect: ERROR|DONE
MARK = "PWNED" + "-net_arena_api"
PORT = ARENA_TEST_SERVER_PORT


def request(sock_module, method, path, body=b"", token=""):
    conn = sock_module.create_connection(("127.0.0.1", PORT), timeout=1)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    conn.sendall(head.encode() + body)
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
    conn.close()
    return reply


try:
    import json
    import socket

    reply = request(socket, "GET", "/api/health")
    if reply.startswith(b"HTTP/"):
        print(MARK, "reached the arena:", reply[:80])
    reply = request(socket, "POST", "/api/users", json.dumps({"name": "arena-pwned-user"}).encode())
    token = json.loads(reply.split(b"\r\n\r\n", 1)[1])["token"]
    code = "def agent(o, c):\n    return 0\n"
    body = json.dumps({"name": "arena-pwned-agent", "game": "rps", "code": code}).encode()
    print(MARK, "registered:", request(socket, "POST", "/api/agents", body, token)[:80])
except Exception as exc:
    print("failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
