"""The ladder and the whole path of a match, measured from outside through the public API.

Two measurements, each on a real server in a process of its own:

* **Ladder throughput**: a server on its default settings (examples seeded, the ladder on, a
  fresh database) runs for a warm-up, then ``window`` seconds: the ladder matches that finished
  in the window (``GET /api/matches``, tag ``scheduled``), extrapolated to an hour, all games and
  per game.
* **The full path**: ConnectX, random against random, ``total`` matches, ``in_flight`` at once,
  each created through ``POST /api/matches`` by a client on one keep-alive connection, its end
  read from ``/ws/lobby`` (storage, the feed, the lobby, the rating task included); and the same
  through the ladder's scheduler (the ladder on with ``in_flight`` rated slots and only the two
  random agents). Per match: the server's own CPU, its sandbox processes' (bwrap, the fork
  server, the seats: from ``/bench/stats``) and the machine's (``/proc/stat``, the client
  included); beside the bare runner's (``kaggle.arena_connectx``: the runner and the seats in
  this process, no HTTP, storage or lobby), measured in the same rounds.

With ``--baseline REF`` the code at that git revision runs both the same way, alternating with
this checkout in each round (the benchmark's own server and client are this checkout's): before
and after in one run. The full path needs a revision whose settings have ``ladder_slots`` (from
the ladder that rates at full speed on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import SocketStream
from websockets.asyncio.client import connect

from ._common import ROOT, Row, Section, ratios
from ._procs import bench_server
from .documents import baseline_tree
from .kaggle import RANDOM_BOT, _cpu_s, arena_connectx
from .startup import FORK_MODE, SEAT_MODES

__all__ = ["full_path", "ladder_per_hour", "run"]

JSON = Any

# Runs in a project tree (this checkout or a baseline's): its app on its default settings, on a
# free port, with a fresh database; prints the port; stops when stdin closes.
_DEFAULT_SERVER = r"""
import json, socket, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import anyio, uvicorn
from server.app import create_app
from server.config import Settings

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as _server.py: no 40 ms delayed ACKs
        server = uvicorn.Server(uvicorn.Config(create_app(Settings(db=Path(tmp) / "arena.db", port=0)),
                                               log_level="warning", lifespan="on"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:
                await anyio.sleep(0.01)
            print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)
            server.should_exit = True

anyio.run(main)
"""


class Api:
    """A client of the public HTTP API on one keep-alive connection (no extra dependency).

    The server closes a connection idle for its keep-alive timeout (uvicorn's 5 s: the ladder's
    run waits that long between calls): a request that finds it closed is sent once more on a
    new one.
    """

    def __init__(self, port: int, local_host: str | None = None) -> None:
        self.port = port
        self.local_host = local_host  # the address to call from (another of 127.0.0.0/8: another client)
        self.stream: SocketStream | None = None
        self.buffer = b""

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None

    async def call(self, method: str, path: str, body: JSON = None, token: str | None = None) -> tuple[int, JSON]:
        """``method path`` with a JSON body: the status and the JSON answer."""
        data = b"" if body is None else orjson.dumps(body)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json"
                   f"\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        for attempt in (1, 2):
            if self.stream is None:
                self.stream = await anyio.connect_tcp("127.0.0.1", self.port, local_host=self.local_host)
            try:
                return await self._exchange(self.stream, request)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                await self.aclose()
                if attempt == 2 or self.buffer:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, stream: SocketStream, request: bytes) -> tuple[int, JSON]:
        await stream.send(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await stream.receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(self.buffer) < length:
            self.buffer += await stream.receive()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split(" ", 2)[1]), orjson.loads(payload) if payload else None


@asynccontextmanager
async def api(port: int, local_host: str | None = None) -> AsyncIterator[Api]:
    client = Api(port, local_host)
    try:
        yield client
    finally:
        await client.aclose()


async def wait_ended(client: Api, match_id: int, every_s: float = 0.05) -> JSON:
    """Poll ``GET /api/matches/{id}`` until the match is finished or aborted; its document."""
    while True:
        status, doc = await client.call("GET", f"/api/matches/{match_id}")
        assert status == 200, doc
        if doc["status"] in ("finished", "aborted"):
            return doc
        await anyio.sleep(every_s)


async def _stats(client: Api) -> JSON:
    status, doc = await client.call("GET", "/bench/stats")
    assert status == 200, doc
    return doc


def _machine_busy_s() -> float:
    """Busy CPU seconds of all cores together so far (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


async def _two_random_agents(client: Api) -> tuple[str, list[int]]:
    status, user = await client.call("POST", "/api/users", {"name": f"bench{time.monotonic_ns() % 10**9}"})
    assert status == 201, user
    ids = []
    for name in ("random_a", "random_b"):
        status, agent = await client.call("POST", "/api/agents", {"name": name, "game": "connectx",
                                                                  "code": RANDOM_BOT}, user["token"])
        assert status == 201, agent
        ids.append(agent["id"])
    return user["token"], ids


async def full_path(port: int, total: int, in_flight: int, *, via_ladder: bool) -> dict[str, float]:
    """``total`` ConnectX matches through the public API (or the ladder), ends read from the lobby:
    matches/s and CPU per match (ms): the server's, its sandbox's, the machine's."""
    ended = 0
    done = anyio.Event()
    async with api(port) as client, connect(f"ws://127.0.0.1:{port}/ws/lobby", max_size=None) as lobby:
        token, agents = (None, []) if via_ladder else await _two_random_agents(client)
        limiter = anyio.Semaphore(in_flight)

        async def read_lobby() -> None:
            # Every match on this server is the benchmark's (no examples; the ladder, if on, pairs
            # its two agents only): each end frees a place, whether its POST has answered yet or not.
            nonlocal ended
            async for frame in lobby:
                msg = json.loads(frame)
                if msg["type"] == "match_ended":
                    ended += 1
                    if not via_ladder:
                        limiter.release()
                    if ended >= total:
                        done.set()
                        return

        before, machine0, started = await _stats(client), _machine_busy_s(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_lobby)
            if via_ladder:
                await _two_random_agents(client)  # the ladder pairs them as soon as they exist
            else:
                for _ in range(total):
                    await limiter.acquire()
                    status, match = await client.call("POST", "/api/matches",
                                                      {"game": "connectx", "agents": agents}, token)
                    assert status == 201, match
            with anyio.fail_after(300):
                await done.wait()
            tg.cancel_scope.cancel()
        elapsed, machine1, after = time.perf_counter() - started, _machine_busy_s(), await _stats(client)
    return {
        "matches_per_s": ended / elapsed,
        "server_ms": (after["cpu_s"] - before["cpu_s"]) / ended * 1e3,
        "sandbox_ms": (after["sandbox_cpu_s"] - before["sandbox_cpu_s"]) / ended * 1e3,
        "machine_ms": (machine1 - machine0) / ended * 1e3,
    }


@asynccontextmanager
async def _default_server(root: Path) -> AsyncIterator[int]:
    """The app of the project at ``root`` on its default settings, in a process of its own: its port."""
    with tempfile.TemporaryFile() as err:
        async with await anyio.open_process([sys.executable, "-c", _DEFAULT_SERVER, str(root)], cwd=root,
                                            stderr=err) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            line = b""
            with anyio.fail_after(120):
                while not line.endswith(b"\n"):
                    chunk = await proc.stdout.receive()
                    line += chunk
            try:
                yield int(json.loads(line)["port"])
            finally:
                with anyio.CancelScope(shield=True):
                    await proc.stdin.aclose()
                    with anyio.move_on_after(30):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()


async def ladder_per_hour(root: Path, warmup_s: float, window_s: float) -> dict[str, float]:
    """Ladder matches per hour of the project at ``root`` on its default settings: all games and per game."""
    async with _default_server(root) as port, api(port) as client:
        await anyio.sleep(warmup_s)
        start = time.time()
        await anyio.sleep(window_s)
        end = time.time()
        counts: dict[str, int] = {}
        cursor = None
        while True:
            query = "/api/matches?status=finished&limit=200" + (f"&cursor={cursor}" if cursor else "")
            status, page = await client.call("GET", query)
            assert status == 200, page
            for match in page["items"]:
                finished = match.get("finished_at") or 0
                if match["tags"].get("scheduled") and start <= finished < end:
                    counts[match["game"]] = counts.get(match["game"], 0) + 1
            oldest = min((m.get("finished_at") or 0 for m in page["items"]), default=0)
            cursor = page["next"]
            if cursor is None or oldest < start:
                break
    scale = 3600.0 / (end - start)
    return {"all": sum(counts.values()) * scale, **{game: n * scale for game, n in counts.items()}}


def _short_rev(ref: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or ref


async def run(quick: bool, baseline: str | None = None) -> Section:
    section = Section("Ladder and the full path of a match")
    rounds = 2 if quick else 3
    total, in_flight = (60, 8) if quick else (300, 16)
    warmup_s, window_s = (5.0, 15.0) if quick else (10.0, 45.0)
    with baseline_tree(baseline) if baseline else nullcontext() as base:
        trees = [("this checkout", ROOT)]
        if base is not None:
            trees.append((f"[{_short_rev(baseline or '')}]", base))
        await _full_paths(section, trees, rounds, total, in_flight)
        await _ladder_rates(section, trees, 1 if quick else 2, warmup_s, window_s)
    section.notes.append(f"full path: ConnectX random vs random, {total} matches per reading, {rounds} rounds; "
                         "the bare runner (this checkout) in the same rounds")
    section.notes.append(f"ladder: {warmup_s:g} s warm-up, then matches finished within {window_s:g} s, scaled to "
                         f"an hour; {os.cpu_count()} cores")
    return section


async def _full_paths(section: Section, trees: list[tuple[str, Path]], rounds: int, total: int,
                      in_flight: int) -> None:
    """The full path on each tree, through the API and through the ladder, beside the bare runner."""
    paths: dict[str, dict[str, list[float]]] = {}
    bare_ms: list[float] = []
    bare_rate: list[float] = []
    for _ in range(rounds):
        async with SEAT_MODES[FORK_MODE].session() as open_seat:
            await arena_connectx(open_seat, 2, 4)  # warm-up
            before = _cpu_s()
            bare_rate.append(await arena_connectx(open_seat, in_flight, total))
            after = _cpu_s()
        bare_ms.append((after[0] - before[0] + after[1] - before[1]) / total * 1e3)
        for tree, root in trees:
            for label, via_ladder in (("POST /api/matches", False), ("the ladder's scheduler", True)):
                slots = in_flight if via_ladder else 0
                async with bench_server("websockets-sansio", False, root=root, ladder_slots=slots) as server:
                    result = await full_path(server.port, total, in_flight, via_ladder=via_ladder)
                for key, value in result.items():
                    paths.setdefault(f"{label}, {tree}", {}).setdefault(key, []).append(value)
    section.add(Row(f"bare runner, {in_flight} in flight (runner + seats, no API)", "matches/s", bare_rate))
    section.add(Row("bare runner: CPU per match (server + sandbox)", "ms", bare_ms))
    for label, values in paths.items():
        section.add(Row(f"full path via {label}, {in_flight} in flight", "matches/s", values["matches_per_s"]))
        section.add(Row(f"full path via {label}: the server's CPU per match", "ms", values["server_ms"]))
        section.add(Row(f"full path via {label}: the sandbox's CPU per match", "ms", values["sandbox_ms"]))
        section.add(Row(f"full path via {label}: the machine's CPU per match (client included)", "ms",
                        values["machine_ms"]))
        whole = [s + b for s, b in zip(values["server_ms"], values["sandbox_ms"], strict=True)]
        section.add(Row(f"full path via {label} / bare runner: CPU per match (server + sandbox)", "x",
                        ratios(whole, bare_ms), "<= 1.25x", is_ratio=True))


async def _ladder_rates(section: Section, trees: list[tuple[str, Path]], rounds: int, warmup_s: float,
                        window_s: float) -> None:
    """Ladder matches per hour on default settings, each tree in turn, all games and per game."""
    per_hour: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, root in trees:
            result = await ladder_per_hour(root, warmup_s, window_s)
            for game, value in result.items():
                per_hour.setdefault(f"{label}|{game}", []).append(value)
    for key, hourly in per_hour.items():
        label, game = key.split("|")
        what = "all games" if game == "all" else game
        section.add(Row(f"ladder matches per hour, default settings, {what}: {label}", "/h", hourly))
    for label, _root in trees[1:]:
        mine, theirs = per_hour.get(f"{trees[0][0]}|all", []), per_hour.get(f"{label}|all", [])
        if mine and theirs:
            section.add(Row(f"ladder matches per hour: this checkout / {label}", "x", ratios(mine, theirs),
                            is_ratio=True))
