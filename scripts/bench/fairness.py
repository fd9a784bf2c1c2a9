"""Fair time under load (issue 14, ``server/matches/cores.py``): what the core gate costs, and
what it makes turns wait.

* **Instant bots, matches per second**: ConnectX random against random through ``POST
  /api/matches``, ends read from ``/ws/lobby`` (``ladder.full_path``), with the core gate as
  served (one thinking seat per core) and without it (``--thinking-seats`` far above any load),
  on fresh processes, in alternating rounds; the ratio per round (target: at most 5% fewer).
* **Time waited for a core per move**, p50 and p99, against the number of live matches: RPS
  matches between bots that burn ``BURN_S`` of CPU a move, ``n`` of them started at once
  (1, 2, 4, 8, 16), each move's ``wait_s`` read from the stored replays, and the moves that
  timed out (target: none; ``actTimeout`` is three times the burn, with no bank).
* **Another user's match start under a flood** (fair admission between users): one user keeps
  ``FLOODERS`` requests for burner matches in flight without pause (up to the concurrent limit
  started, the rest refused), while another user starts small matches of instant bots one after
  another; their start latency, from the POST to the first move stored (its replay's step time),
  median against the same on an idle server in the same run (target: at most 2x).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import anyio
import httpx

from ._common import Row, Section, percentile, ratios
from ._procs import bench_server
from .ladder import api, full_path, wait_ended

__all__ = ["run"]

WS = "websockets-sansio"
UNGATED = 100_000  # thinking seats: no turn ever waits
BURN_S = 0.05
BURNER = f"""
import time

def agent(observation, configuration):
    end = time.process_time() + {BURN_S}
    while time.process_time() < end:
        pass
    return observation.step % 3
"""
CONFIG = {"actTimeout": 3 * BURN_S, "remainingOverageTime": 0}
INSTANT = """
def agent(observation, configuration):
    return 0
"""
FLOODERS = 32  # the flooding user's requests in flight at once
FLOOD_ADDRESS = "127.0.0.2"  # the flooding user's client address (the server listens on 127.0.0.1)


async def _instant_rate(section: Section, rounds: int, total: int, in_flight: int) -> None:
    rates: dict[str, list[float]] = {"gated": [], "ungated": []}
    for _ in range(rounds):
        for kind, extra in (("gated", ()), ("ungated", ("--thinking-seats", str(UNGATED)))):
            async with bench_server(WS, False, extra=extra) as server:
                result = await full_path(server.port, total, in_flight, via_ladder=False)
            rates[kind].append(result["matches_per_s"])
    section.add(Row(f"ConnectX matches/s, instant bots, core gate ({os.cpu_count()} places)", "matches/s",
                    rates["gated"]))
    section.add(Row("ConnectX matches/s, instant bots, no core gate", "matches/s", rates["ungated"]))
    section.add(Row("core gate / no core gate: matches/s", "x", ratios(rates["gated"], rates["ungated"]),
                    ">= 0.95x", is_ratio=True))


async def _waits(port: int, live: int, steps: int) -> dict[str, Any]:
    """``live`` burner matches at once; every move's wait and how many timed out."""
    async with api(port) as client, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                                     trust_env=False) as http:
        status, user = await client.call("POST", "/api/users", {"name": f"burn{time.monotonic_ns() % 10**9}"})
        assert status == 201, user
        agents = []
        for name in ("burn-a", "burn-b"):
            status, agent = await client.call("POST", "/api/agents", {"name": name, "game": "rps", "code": BURNER},
                                              user["token"])
            assert status == 201, agent
            agents.append(agent["id"])
        ids = []
        for _ in range(live):
            status, match = await client.call("POST", "/api/matches", {
                "game": "rps", "agents": agents, "config": {**CONFIG, "episodeSteps": steps}}, user["token"])
            assert status == 201, match
            ids.append(match["id"])
        waits: list[float] = []
        lost: list[float] = []
        timeouts = 0
        with anyio.fail_after(60 + steps * live * BURN_S * 4):
            for match_id in ids:
                await wait_ended(client, match_id, 0.1)
                response = await http.get(f"/api/matches/{match_id}/replay")  # streamed: not for the raw client
                assert response.status_code == 200, response.text
                replay = response.json()
                for step in replay["steps"]:
                    moves = [t for t in step["timing"] if t is not None and t.get("wait_s") is not None]
                    waits += [t["wait_s"] for t in moves]
                    # What a thinking seat lost to everything else on the machine: its wall time beyond its CPU time.
                    lost += [t["wall_s"] - t["cpu_s"] for t in moves if t["cpu_s"] is not None]
                    timeouts += sum(s == "TIMEOUT" for s in step["statuses"])
    return {"waits": waits, "lost": lost, "timeouts": timeouts}


async def _wait_per_move(section: Section, lives: tuple[int, ...], rounds: int, steps: int) -> None:
    for live in lives:
        p50: list[float] = []
        p99: list[float] = []
        lost_p50: list[float] = []
        lost_p99: list[float] = []
        timeouts = 0
        for _ in range(rounds):
            async with bench_server(WS, False) as server:
                result = await _waits(server.port, live, steps)
            p50.append(percentile(result["waits"], 50) * 1e3)
            p99.append(percentile(result["waits"], 99) * 1e3)
            lost_p50.append(percentile(result["lost"], 50) * 1e3)
            lost_p99.append(percentile(result["lost"], 99) * 1e3)
            timeouts += result["timeouts"]
        section.add(Row(f"wait for a core per move, p50, {live} live matches", "ms", p50))
        section.add(Row(f"wait for a core per move, p99, {live} live matches", "ms", p99))
        section.add(Row(f"a move's wall time beyond its CPU time, p50, {live} live matches", "ms", lost_p50))
        section.add(Row(f"a move's wall time beyond its CPU time, p99, {live} live matches", "ms", lost_p99))
        section.add(Row(f"seats timed out, {live} live matches (all rounds)", "seats", [float(timeouts)], "0"))


async def _user(client: Any, name: str, code: str) -> tuple[str, list[int]]:
    """A new user with two rps agents of ``code``: its token and the agents' ids."""
    status, user = await client.call("POST", "/api/users", {"name": f"{name}{time.monotonic_ns() % 10**9}"})
    assert status == 201, user
    agents = []
    for i in range(2):
        status, agent = await client.call("POST", "/api/agents", {"name": f"{name}-{i}", "game": "rps", "code": code},
                                          user["token"])
        assert status == 201, agent
        agents.append(agent["id"])
    return user["token"], agents


async def _start_latencies(port: int, matches: int) -> tuple[list[float], list[float]]:
    """A user's ``matches`` small matches of instant bots, one after another: from each POST to
    its start (its initial state stored, its seats up) and to its first move, in seconds."""
    async with api(port) as client, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                                     trust_env=False) as http:
        token, agents = await _user(client, "bob", INSTANT)
        starts, moves = [], []
        for _ in range(matches):
            posted = time.time()
            status, match = await client.call("POST", "/api/matches", {
                "game": "rps", "agents": agents, "config": {"episodeSteps": 3}}, token)
            assert status == 201, match
            await wait_ended(client, match["id"], 0.01)
            replay = (await http.get(f"/api/matches/{match['id']}/replay")).json()
            starts.append(replay["steps"][0]["time"] - posted)
            moves.append(replay["steps"][1]["time"] - posted)
        return starts, moves


async def _flood(port: int, started: list[int], refused: list[int]) -> None:
    """One user's requests for slow matches, ``FLOODERS`` in flight at all times, until cancelled;
    from an address of its own (its live seats count against it, not against the other user's)."""
    async with api(port, FLOOD_ADDRESS) as client:
        token, agents = await _user(client, "flood", BURNER)
        body = {"game": "rps", "agents": agents, "config": {**CONFIG, "episodeSteps": 50}}

        async def requester() -> None:
            async with api(port, FLOOD_ADDRESS) as own:  # a connection of its own: one request at a time on each
                while True:
                    status, _ = await own.call("POST", "/api/matches", body, token)
                    (started if status == 201 else refused).append(status)

        async with anyio.create_task_group() as tg:
            for _ in range(FLOODERS):
                tg.start_soon(requester)


async def _flood_latency(section: Section, rounds: int, matches: int) -> None:
    readings: dict[str, list[float]] = {"idle start": [], "flood start": [], "idle move": [], "flood move": []}
    counts = {"started": 0, "refused": 0}

    async def measure(port: int, kind: str) -> None:
        starts, moves = await _start_latencies(port, matches)
        readings[f"{kind} start"].append(statistics.median(starts) * 1e3)
        readings[f"{kind} move"].append(statistics.median(moves) * 1e3)

    for _ in range(rounds):
        async with bench_server(WS, False, extra=("--per-client-limits",)) as server:
            await measure(server.port, "idle")
            started: list[int] = []
            refused: list[int] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(_flood, server.port, started, refused)
                await anyio.sleep(3.0)  # the flood is under way: its user at the concurrent limit
                await measure(server.port, "flood")
                tg.cancel_scope.cancel()
            counts["started"] += len(started)
            counts["refused"] += len(refused)
    flood = f"one user flooding ({FLOODERS} requests in flight)"
    section.add(Row("another user's match start (POST to its initial state), p50, idle server", "ms",
                    readings["idle start"]))
    section.add(Row(f"another user's match start, p50, {flood}", "ms", readings["flood start"]))
    section.add(Row("match start under a flood / idle", "x", ratios(readings["flood start"], readings["idle start"]),
                    "<= 2x", is_ratio=True))
    section.add(Row("another user's first move (POST to it), p50, idle server", "ms", readings["idle move"]))
    section.add(Row(f"another user's first move, p50, {flood}", "ms", readings["flood move"]))
    section.notes.append(f"flood: {counts['started']} of the flooding user's matches started and {counts['refused']} "
                         f"requests refused over {rounds} rounds; {matches} small matches of instant bots per reading, "
                         "idle and flooded on the same server; a first move under the flood waits its turn for a "
                         f"core behind the flooding user's bots (each burns {BURN_S * 1e3:g} ms a move)")


async def run(quick: bool) -> Section:
    section = Section("Fair time under load (core gate)")
    rounds = 2 if quick else 3
    total, in_flight = (60, 16) if quick else (200, 16)
    lives = (1, 4, 8) if quick else (1, 2, 4, 8, 16)
    steps = 10 if quick else 20
    await _instant_rate(section, rounds, total, in_flight)
    await _wait_per_move(section, lives, 1 if quick else 2, steps)
    await _flood_latency(section, 1 if quick else 3, 10 if quick else 20)
    section.notes.append(f"instant bots: {total} ConnectX matches per reading, {in_flight} in flight, {rounds} rounds "
                         f"gated and ungated in turn, fresh processes per reading; {os.cpu_count()} cores")
    section.notes.append(f"waits: RPS between two bots burning {BURN_S * 1e3:g} ms of CPU a move (both think at once), "
                         f"{steps} steps a match, actTimeout {CONFIG['actTimeout']:g} s and no bank; the matches of a "
                         "reading start together; wait_s of every move from the stored replays")
    return section
