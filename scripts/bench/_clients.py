"""The benchmarks' spectator clients, in a process of their own so they never share the server's loop.

``python -m scripts.bench._clients '{"mode": ..., "port": ..., ...}'`` prints one JSON line
with its results. Modes:

* ``throughput``: ``clients`` raw spectators of a synthetic feed of ``events`` steps published
  all at once; delivered messages per second from the start command until every client has
  its ``end``, the server's CPU per delivered message and the bytes on the wire per message.
* ``latency``: ``clients`` raw spectators of a feed at ``rate`` events a second; the latency
  of each event from its publishing (``state.t``) to the arrival of its bytes here.
* ``watch``: ``clients`` raw spectators of a real match (``match``) until its ``end``: the latency
  of each event from its recording (``state.t``, stamped by a worker started with
  ``--stamp-steps``) to the arrival of its bytes here, and whether each spectator's ``seq`` ran on
  by one from its snapshot to ``end``.
* ``hold``: ``clients`` raw spectators of ``path``; prints ``{"ready": ...}`` once all are
  connected (and, on a match, have their snapshot), reads on (counting frames) until a line
  arrives on stdin, then prints what they received and closes them.

Every mode uses a raw RFC 6455 client (an asyncio protocol that counts frames and
answers pings, a few µs a message) so that the clients' process, which has only the second of
the machine's two cores, outruns the server and the server is what gets measured (a library
client spends tens of µs a message, which showed up as latency of its own). With
per-message-deflate it negotiates the extension; it inflates frames only to read latencies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import zlib
from typing import Any

import orjson

from ._common import percentile
from ._http import request

__all__ = ["RawSpectator", "main"]

_CONNECT_BATCH = 100  # connections opened at once, well inside the listen backlog


class RawSpectator(asyncio.Protocol):
    """A WebSocket client that counts complete messages; it sends nothing but pongs and a close."""

    def __init__(self, path: str, deflate: bool, latencies: list[float] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.path, self.deflate = path, deflate
        # When given, every event is decoded and its latency (now - state.t, seconds) appended here.
        self.latencies = latencies
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._now = 0.0
        self.upgraded = loop.create_future()
        self.first_message = loop.create_future()
        self.closed = loop.create_future()
        self.messages = 0
        self.bytes = 0
        self.target = 0  # messages after which ``reached`` completes (0: never)
        self.reached = loop.create_future()
        self.extensions = ""
        self._buf = bytearray()
        self._is_upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if self.deflate else ""
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"{ext}\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self._now = time.monotonic()
        self.bytes += len(data)
        self._buf += data
        if not self._is_upgraded:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[:end + 4]
            if not head.startswith("HTTP/1.1 101"):
                self._fail(RuntimeError(f"handshake refused: {head.splitlines()[0]!r}"))
                return
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-extensions":
                    self.extensions = value.strip()
            self._is_upgraded = True
            self.upgraded.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf, pos, size = self._buf, 0, len(self._buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if size - pos < head + length:
                break
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2) and b0 & 0x80:  # the last frame of a message (none is fragmented here)
                self.messages += 1
                if self.latencies is not None:
                    self._measure(bytes(buf[pos + head:pos + head + length]), is_compressed=bool(b0 & 0x40))
                if not self.first_message.done():
                    self.first_message.set_result(None)
                if self.messages == self.target and not self.reached.done():
                    self.reached.set_result(None)
            elif opcode == 9:  # ping: answer with a masked pong carrying the same payload
                self._send(0xA, bytes(buf[pos + head:pos + head + length]))
            elif opcode == 8:  # close: we are done; the server closes the TCP connection
                self._send(0x8, bytes(buf[pos + head:pos + head + min(length, 2)]))
            pos += head + length
        del buf[:pos]

    def _measure(self, payload: bytes, *, is_compressed: bool) -> None:
        assert self.latencies is not None
        if is_compressed:  # per-message-deflate: one inflate stream per connection (context takeover)
            payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
        frame = orjson.loads(payload)
        if frame.get("type") == "event":
            self.latencies.append(self._now - frame["state"]["t"])

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _fail(self, exc: Exception) -> None:
        for fut in (self.upgraded, self.first_message, self.reached):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: not every future is awaited
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        """Leave as a browser tab does: a close frame (1000), then the TCP connection."""
        if self.transport is not None and not self.transport.is_closing():
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


class _Watcher(RawSpectator):
    """A spectator of a real match: latencies of stamped events, and its ``seq`` checked."""

    def __init__(self, path: str, deflate: bool, latencies: list[float]) -> None:
        super().__init__(path, deflate, latencies)
        self.seq: int | None = None
        self.gaps = 0
        self.ended = asyncio.get_running_loop().create_future()

    def _measure(self, payload: bytes, *, is_compressed: bool) -> None:
        if is_compressed:
            payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
        frame = orjson.loads(payload)
        t = frame.get("state", {}).get("t") if frame.get("type") == "event" else None
        if t is not None and self.latencies is not None:
            self.latencies.append(self._now - t)
        seq = frame.get("seq")
        if isinstance(seq, int):
            if self.seq is not None and frame.get("type") != "snapshot" and seq != self.seq + 1:
                self.gaps += 1
            self.seq = seq
        if frame.get("type") == "end" and not self.ended.done():
            self.ended.set_result(None)


async def connect_raw(
    port: int, path: str, n: int, deflate: bool, latencies: list[float] | None = None
) -> list[RawSpectator]:
    """``n`` upgraded raw spectators of ``path``, opened ``_CONNECT_BATCH`` at a time."""
    loop = asyncio.get_running_loop()
    clients: list[RawSpectator] = []
    for first in range(0, n, _CONNECT_BATCH):
        batch = [RawSpectator(path, deflate, latencies) for _ in range(min(_CONNECT_BATCH, n - first))]
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, "127.0.0.1", port) for c in batch))
        await asyncio.gather(*(c.upgraded for c in batch))
        clients += batch
    return clients


def _machine_busy_idle() -> tuple[int, int]:
    """Busy and idle clock ticks of all cores together, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, idle


async def throughput(args: dict[str, Any]) -> dict[str, Any]:
    port, feed, n, events = args["port"], args["feed"], args["clients"], args["events"]
    await request(port, "POST", f"/bench/feeds/{feed}?events={events}&rate=0")
    clients = await connect_raw(port, f"/ws/matches/{feed}", n, args["deflate"])
    await asyncio.gather(*(c.first_message for c in clients))  # the snapshot
    for c in clients:
        c.target = events + 2  # snapshot, events, end
    bytes0 = sum(c.bytes for c in clients)
    before = await request(port, "GET", "/bench/stats")
    started, cpu0, machine0 = time.monotonic(), time.process_time(), _machine_busy_idle()
    await request(port, "POST", f"/bench/feeds/{feed}/start")
    await asyncio.wait_for(asyncio.gather(*(asyncio.shield(c.reached) for c in clients), return_exceptions=True),
                           args.get("timeout_s", 120))
    elapsed, client_cpu = time.monotonic() - started, time.process_time() - cpu0
    machine1 = _machine_busy_idle()
    busy, idle = machine1[0] - machine0[0], machine1[1] - machine0[1]
    after = await request(port, "GET", "/bench/stats")
    delivered = sum(min(c.messages, events + 2) - 1 for c in clients)  # events and end, not the snapshot
    for c in clients:
        c.close()
    return {
        "delivered": delivered,
        "expected": n * (events + 1),
        "seconds": elapsed,
        "msgs_per_s": delivered / elapsed,
        "server_cpu_us_per_msg": (after["cpu_s"] - before["cpu_s"]) / delivered * 1e6 if delivered else None,
        "wire_bytes_per_msg": (sum(c.bytes for c in clients) - bytes0) / delivered if delivered else None,
        "client_cpu_share": client_cpu / elapsed,  # near 1.0: the clients, not the server, were the limit
        "machine_busy_share": busy / (busy + idle) if busy + idle else None,  # of all cores, kernel included
        "extensions": clients[0].extensions,
    }


async def latency(args: dict[str, Any]) -> dict[str, Any]:
    port, feed, n, events, rate = args["port"], args["feed"], args["clients"], args["events"], args["rate"]
    await request(port, "POST", f"/bench/feeds/{feed}?events={events}&rate={rate}")
    latencies: list[float] = []
    clients = await connect_raw(port, f"/ws/matches/{feed}", n, args["deflate"], latencies)
    await asyncio.gather(*(c.first_message for c in clients))  # the snapshot
    for c in clients:
        c.target = events + 2
    await request(port, "POST", f"/bench/feeds/{feed}/start")
    await asyncio.wait_for(asyncio.gather(*(asyncio.shield(c.reached) for c in clients), return_exceptions=True),
                           events / rate + 60)
    for c in clients:
        c.close()
    ms = [x * 1e3 for x in latencies]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
            "delivered": len(ms), "expected": n * events}


async def watch(args: dict[str, Any]) -> dict[str, Any]:
    port, n, match_id = args["port"], args["clients"], args["match"]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    clients: list[_Watcher] = []
    path = f"/ws/matches/{match_id}"
    for first in range(0, n, _CONNECT_BATCH):
        batch = [_Watcher(path, args["deflate"], latencies) for _ in range(min(_CONNECT_BATCH, n - first))]
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, "127.0.0.1", port) for c in batch))
        await asyncio.gather(*(c.upgraded for c in batch))
        clients += batch
    print(json.dumps({"ready": True, "connected": len(clients)}), flush=True)
    done, _ = await asyncio.wait([c.ended for c in clients], timeout=args.get("timeout_s", 120))
    for c in clients:
        c.close()
    ms = [x * 1e3 for x in latencies]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
            "delivered": len(ms), "ended": len(done), "clients": n, "gaps": sum(c.gaps for c in clients)}


async def hold(args: dict[str, Any]) -> dict[str, Any]:
    port, n, path = args["port"], args["clients"], args["path"]
    started = time.monotonic()
    clients = await connect_raw(port, path, n, args["deflate"])
    if path.startswith("/ws/matches/"):
        await asyncio.gather(*(c.first_message for c in clients))
    print(json.dumps({"ready": True, "connected": len(clients), "seconds": time.monotonic() - started}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    result = {"messages": sum(c.messages for c in clients), "closed_by_server": sum(c.closed.done() for c in clients)}
    for c in clients:
        c.close()
    return result


def main() -> None:
    args = json.loads(sys.argv[1])
    mode = {"throughput": throughput, "latency": latency, "watch": watch, "hold": hold}[args["mode"]]
    print(json.dumps(asyncio.run(mode(args))), flush=True)


if __name__ == "__main__":
    main()
