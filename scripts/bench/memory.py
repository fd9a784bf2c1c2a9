"""Server memory: per idle spectator socket (on a live match, on the lobby) and per live match.

The server runs in a process of its own (``_server``) and its resident memory is read from
``/proc/<pid>/status`` (``VmRSS``), so neither the clients nor the bots (processes of their
own) are counted. Each figure is an RSS delta divided by the count:

* idle sockets: 1,000 spectators connect to a live match feed that publishes nothing (each
  gets its snapshot) or to the lobby, after a warm-up of a few connections (so one-time
  imports and buffers are not charged to the sockets);
* live matches: 50 real paced rps matches (seats sandboxed, storage, a hub feed each), after
  one warm-up match, read once all are live and have played a few seconds (a live feed keeps
  its latest frames, a window of 512 by default, so the figure grows with the match's length
  until then: it is given at that age).
"""

from __future__ import annotations

import itertools

import anyio

from ._common import Row, Section, rss_kib_of
from ._http import request
from ._procs import BenchServer, bench_server, holding_clients, wait_ended, wait_live

__all__ = ["idle_socket_kib", "live_match_kib", "run"]

# Synthetic feeds live in the hub only: ids far from the database's match ids, a new one per reading.
_feed_ids = itertools.count(900_000)


async def idle_socket_kib(server: BenchServer, n: int, *, lobby: bool = False, warm: int = 20) -> float:
    """Server RSS growth per idle spectator socket, in KiB (a fresh idle feed, or the lobby)."""
    if lobby:
        path = "/ws/lobby"
    else:
        feed_id = next(_feed_ids)
        await request(server.port, "POST", f"/bench/feeds/{feed_id}")  # opened, never started
        path = f"/ws/matches/{feed_id}"
    async with holding_clients(server, path, warm):
        pass
    await anyio.sleep(0.3)
    before = rss_kib_of(server.pid)
    async with holding_clients(server, path, n) as (_, summary):
        await anyio.sleep(0.5)
        after = rss_kib_of(server.pid)
    if summary.get("closed_by_server"):
        raise RuntimeError(f"{summary['closed_by_server']} of {n} idle spectators were closed by the server")
    return (after - before) / n


async def live_match_kib(server: BenchServer, n: int, live_s: float) -> float:
    """Server RSS growth per live paced match (bots excluded: they are processes of their own), in KiB."""
    warm = (await request(server.port, "POST", "/bench/matches?n=1&pace=0.01&steps=20"))["ids"]
    await wait_ended(server, warm[0], 60)
    await anyio.sleep(0.3)
    before = rss_kib_of(server.pid)
    steps = int((live_s + 60) / 0.05)  # outlives the measurement
    ids = (await request(server.port, "POST", f"/bench/matches?n={n}&pace=0.05&steps={steps}"))["ids"]
    await wait_live(server, ids, 3, 120)
    await anyio.sleep(live_s)
    after = rss_kib_of(server.pid)
    return (after - before) / n


async def run(quick: bool, configs: list[tuple[str, bool]]) -> Section:
    """Idle sockets for each (ws implementation, deflate) in ``configs``; live matches once."""
    n_sockets = 300 if quick else 1000
    n_matches = 10 if quick else 50
    live_s = 2.0 if quick else 3.0
    section = Section("Memory (server process RSS)")
    for ws, deflate in configs:
        label = f"{ws}, deflate {'on' if deflate else 'off'}"
        for lobby in (False, True):
            where = "lobby" if lobby else "live match"
            values = []
            for _ in range(1 if quick else 2):
                async with bench_server(ws, deflate) as server:
                    values.append(await idle_socket_kib(server, n_sockets, lobby=lobby))
            section.add(Row(f"per idle spectator socket ({where}), {label}", "KiB", values, "<= 64 KiB"))
    values = []
    for _ in range(1 if quick else 2):
        async with bench_server(*configs[0]) as server:
            values.append(await live_match_kib(server, n_matches, live_s))
    section.add(Row(f"per live match ({n_matches} paced rps matches, bots excluded)", "KiB", values, "<= 2048 KiB"))
    section.notes.append(f"{n_sockets} idle sockets per reading; live matches read after {live_s:g} s at 20 steps/s "
                         "(a live feed keeps its latest frames, up to 512, about 0.4 KiB a step)")
    return section
