"""The soak's client processes: spectators that come and go, and remote agents that reconnect.

``python -m scripts._soak_clients '{"mode": ..., "port": ..., ...}'`` runs until a line arrives
on its stdin, then prints one JSON line with what it saw. ``scripts/soak.py`` starts a few of
them, so that one Python process does not limit the load (the server's is what is measured).

* ``spectators``: ``clients`` slots, each watching a live match (a raw RFC 6455 socket, as the
  benchmarks' clients are: ``scripts/bench/_clients.py``) from its snapshot to its end or for a
  while (``dwell_s``), then leaving and, after ``pause_s``, joining another. Each event's latency
  is now minus its ``state.t`` (the server stamps every step it records, ``--stamp-steps``; the
  clock is the machine's monotonic one), kept in a histogram of 1% buckets; each socket's
  ``seq`` must run on by one from its snapshot.
* ``remotes``: one ``/ws/agent`` connection per agent of ``agents`` (id, game, the owner's
  token), answering every turn at once; each connection lives ``life_s``, then drops (half of
  the time without a close frame) and is opened again after ``pause_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections import Counter
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from scripts.bench._clients import RawSpectator
from scripts.bench._http import request

__all__ = ["bucket", "main", "percentile_of"]

_EVENT_END = b'"type":"event"}'
_STAMP = b'"t":'


def bucket(ms: float) -> float:
    """``ms`` rounded to two significant digits (a 1% histogram bucket, about)."""
    if ms <= 0:
        return 0.0
    digits = 1 - math.floor(math.log10(ms))
    return round(ms, digits)


def percentile_of(histogram: dict[float, int], q: float) -> float:
    """The ``q``-th percentile (0-100) of a histogram of bucketed values (NaN when empty)."""
    total = sum(histogram.values())
    if not total:
        return math.nan
    rank, seen = q / 100 * (total - 1), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen > rank:
            return value
    return max(histogram)


class _Spectator(RawSpectator):
    """A raw spectator that reads each event's ``seq`` and stamp without decoding the whole frame."""

    def __init__(self, path: str, totals: _Totals) -> None:
        super().__init__(path, deflate=False, latencies=[])
        self.totals = totals
        self.seq: int | None = None
        self.ended = False

    def _measure(self, payload: bytes, *, is_compressed: bool) -> None:
        totals = self.totals
        totals.frames += 1
        if payload.endswith(_EVENT_END) and payload.startswith(b'{"seq":'):
            seq = int(payload[7:payload.index(b",", 7)])
            at = payload.rfind(_STAMP)
            if at >= 0:
                end = at + len(_STAMP)
                while payload[end] not in b",}":
                    end += 1
                totals.latency[bucket((self._now - float(payload[at + len(_STAMP):end])) * 1e3)] += 1
        else:
            frame = orjson.loads(payload)
            seq = frame.get("seq")
            if frame.get("type") == "snapshot":
                self.seq = seq
                return
            if frame.get("type") != "end" or not isinstance(seq, int):
                return
            self.ended = True
            totals.ends += 1
        if self.seq is not None and seq != self.seq + 1:
            totals.gaps += 1
        self.seq = seq


class _Totals:
    def __init__(self) -> None:
        self.frames = 0
        self.ends = 0
        self.gaps = 0
        self.joins = 0
        self.refused = 0
        self.connected = 0
        self.peak = 0
        self.latency: Counter[float] = Counter()


async def _live_matches(port: int, live: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError, RuntimeError):
            live[:] = [m["id"] for m in (await request(port, "GET", "/api/matches?status=live&limit=100"))["items"]]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _spectator_slot(args: dict[str, Any], live: list[int], totals: _Totals, rng: random.Random,
                          stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if not live:
            await asyncio.sleep(0.2)
            continue
        client = _Spectator(f"/ws/matches/{rng.choice(live)}", totals)
        try:
            await asyncio.wait_for(loop.create_connection(lambda c=client: c, "127.0.0.1", args["port"]), 10)
            await asyncio.wait_for(client.upgraded, 10)
        except (OSError, RuntimeError, ConnectionError, TimeoutError):
            totals.refused += 1
            client.close()
            await asyncio.sleep(rng.uniform(*args["pause_s"]))
            continue
        totals.joins += 1
        totals.connected += 1
        totals.peak = max(totals.peak, totals.connected)
        try:
            dwell = asyncio.ensure_future(stop.wait())
            await asyncio.wait([dwell, client.closed], timeout=rng.uniform(*args["dwell_s"]),
                               return_when=asyncio.FIRST_COMPLETED)
            dwell.cancel()
        finally:
            totals.connected -= 1
            client.close()
        await asyncio.sleep(rng.uniform(*args["pause_s"]))


async def spectators(args: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    totals, live = _Totals(), list[int]()
    rng = random.Random(args["seed"])
    tasks = [asyncio.create_task(_live_matches(args["port"], live, stop))]
    tasks += [asyncio.create_task(_spectator_slot(args, live, totals, random.Random(rng.random()), stop))
              for _ in range(args["clients"])]
    await stop.wait()
    await asyncio.wait(tasks, timeout=15)
    for task in tasks:
        task.cancel()
    return {"joins": totals.joins, "refused": totals.refused, "peak_connected": totals.peak,
            "frames": totals.frames, "ends": totals.ends, "gaps": totals.gaps,
            "latency_ms": sorted(totals.latency.items())}


def _move(game: str, configuration: dict[str, Any], observation: dict[str, Any]) -> Any:
    """An instant, legal move: the first free cell or column, or rps's cycle."""
    if game == "rps":
        return observation["step"] % configuration.get("signs", 3)
    board = observation["board"]
    if game == "connectx":
        return next(c for c in range(configuration["columns"]) if board[c] == 0)
    return board.index(0)


async def _play(ws: ClientConnection, agent: dict[str, Any], counts: Counter[str]) -> None:
    configurations: dict[int, dict[str, Any]] = {}
    async for raw in ws:
        frame = orjson.loads(raw)
        kind = frame["type"]
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong", "nonce": frame["nonce"]}))
        elif kind == "match_start":
            configurations[frame["match_id"]] = frame["configuration"]
        elif kind == "turn":
            move = _move(agent["game"], configurations.get(frame["match_id"], {"columns": 7}), frame["observation"])
            await ws.send(json.dumps({"type": "action", "match_id": frame["match_id"], "step": frame["step"],
                                      "seat": frame["seat"], "action": move}))
            counts["turns"] += 1
        elif kind == "match_end":
            configurations.pop(frame["match_id"], None)
            counts["match_ends"] += 1
        elif kind == "error":
            counts[f"error {frame.get('code')}"] += 1


async def _remote_agent(args: dict[str, Any], agent: dict[str, Any], counts: Counter[str], rng: random.Random,
                        stop: asyncio.Event) -> None:
    url = f"ws://127.0.0.1:{args['port']}/ws/agent"
    while not stop.is_set():
        try:
            async with connect(url, proxy=None, open_timeout=10, close_timeout=2, max_size=None) as ws:
                await ws.send(json.dumps({"type": "hello", "protocol_version": 1, "token": agent["token"],
                                          "agents": [agent["id"]]}))
                counts["connections"] += 1
                play = asyncio.ensure_future(_play(ws, agent, counts))
                ending = asyncio.ensure_future(stop.wait())
                await asyncio.wait([play, ending], timeout=rng.uniform(*args["life_s"]),
                                   return_when=asyncio.FIRST_COMPLETED)
                ending.cancel()
                play.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, WebSocketException):
                    await play
                if rng.random() < 0.5 and not stop.is_set():
                    ws.transport.abort()  # dropped, as a lost network does: no close frame
                    counts["dropped"] += 1
        except (OSError, TimeoutError, WebSocketException):
            counts["failed"] += 1
        await asyncio.sleep(rng.uniform(*args["pause_s"]))


async def remotes(args: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    rng = random.Random(args["seed"])
    tasks = [asyncio.create_task(_remote_agent(args, agent, counts, random.Random(rng.random()), stop))
             for agent in args["agents"]]
    await stop.wait()
    await asyncio.wait(tasks, timeout=15)
    for task in tasks:
        task.cancel()
    return dict(counts)


async def _main(args: dict[str, Any]) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    mode = {"spectators": spectators, "remotes": remotes}[args["mode"]]
    work = asyncio.create_task(mode(args, stop))
    print(json.dumps({"ready": True}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()
    result = await work
    return {"mode": args["mode"], "seconds": time.monotonic() - started, **result}


def main() -> None:
    print(json.dumps(asyncio.run(_main(json.loads(sys.argv[1])))), flush=True)


if __name__ == "__main__":
    main()
