"""Soak: the server under steady mixed load for a set time, and what it looked like at the end.

``python -m scripts.soak --minutes 10`` (``--db URL`` for another database than a throwaway SQLite
file, ``--json`` for the report as JSON) starts the server as a subprocess (the real app under
uvicorn, as ``scripts/bench/_server.py`` serves it: ``websockets-sansio`` without deflate, as
``arena serve`` does, the ladder on with one rated slot per core, every recorded step stamped
with ``state.t`` for latency) and runs against it, all at once:

* the ladder, between instant bots the soak's users submit (one per game and user), and
  challenges (``POST /api/matches``) between those bots with a tight clock (``actTimeout``
  1 s, no overage bank) and between them and the remote agents (the default clocks);
* ``--spectators`` (1,000) spectator sockets that join live matches and leave, in a few client
  processes (``scripts/_soak_clients.py``) so that one Python process does not limit them;
* ``--remote-agents`` (20) remote agents on ``/ws/agent`` that answer every turn at once and
  disconnect and reconnect every few seconds (half of the time without a close frame);
* steady submissions: a new version of a user's bot every few seconds, within the per-user
  hourly limit.

The report: matches finished (and aborted, with why), moves per second (steps recorded after
each match's first; an rps step holds both seats' moves), seat timeouts the server caused
(every sandboxed bot here answers at once, so a sandboxed seat's ``TIMEOUT`` is the server's;
remote seats, whose clients drop on purpose, are counted apart), spectator latency p50/p99
from each event's stamp to its arrival, the server's RSS and open descriptors at the start
(idle, its agents stored) and at the end (idle again: the load stopped, the soak's bots disabled
so that the ladder starts nothing more, every match ended, the clients gone), and how many of its
child processes are left once it stopped (each recorded by pid and start time: 0).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import Process, TaskGroup

from scripts._soak_clients import percentile_of
from scripts.bench._common import ROOT, cpu_seconds_of, rss_kib_of
from scripts.bench._procs import bench_server
from scripts.proctree import Proc, alive, descendants, open_fds
from server.storage import MatchStatus, open_storage

__all__ = ["main", "soak"]

USERS = 5  # signups per address are limited (20 an hour); each user holds 4 remote agents at most
GAMES = ("connectx", "tictactoe", "rps")
REMOTE_GAMES = ("tictactoe", "rps", "connectx", "tictactoe")
SPECTATOR_PROCESSES = 4
SUBMIT_EVERY_S = 15.0  # per user: 4 a minute, within the default 60 submissions an hour for a 10-minute run
CHALLENGE_EVERY_S = 1.5  # per user, about 0.7 a user a second at most: within 600 matches an hour
TIGHT_CLOCK = {"actTimeout": 1.0, "remainingOverageTime": 0.0}
SAMPLE_EVERY_S = 2.0
SETTLE_S = 3.0  # before the start's reading, and after the last match ended before the end's
DRAIN_S = 120.0  # after the load, the matches it started end within this (or the report says they did not)

BOTS = {
    "connectx": "# version {n}\ndef agent(observation, configuration):\n"
                "    free = [c for c in range(configuration.columns) if observation.board[c] == 0]\n"
                "    return free[{n} % len(free)]\n",
    "tictactoe": "# version {n}\ndef agent(observation, configuration):\n"
                 "    free = [i for i, v in enumerate(observation.board) if v == 0]\n"
                 "    return free[{n} % len(free)]\n",
    "rps": "# version {n}\ndef agent(observation, configuration):\n"
           "    return (observation.step + {n}) % configuration.signs\n",
}


@dataclass
class User:
    name: str
    token: str
    agents: dict[str, int] = field(default_factory=dict)  # game -> its submitted bot
    remote: list[tuple[int, str]] = field(default_factory=list)  # (agent id, game)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Load:
    """What the soak's own requests got, and the server's readings."""

    answers: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, float]] = field(default_factory=list)
    seen: dict[tuple[int, int], Proc] = field(default_factory=dict)  # every descendant sampled, by pid and start
    versions: int = 0


# -- the server and its readings ----------------------------------------------------------------------


def reading(pid: int, load: Load) -> dict[str, float]:
    """RSS, descriptors and children of the server now (its descendants remembered for the end)."""
    tree = descendants(pid)
    for proc in tree:
        load.seen[(proc.pid, proc.start_ticks)] = proc
    return {"rss_kib": rss_kib_of(pid), "fds": open_fds(pid), "children": len(tree), "cpu_s": cpu_seconds_of(pid),
            "t": time.monotonic()}


async def sampling(pid: int, load: Load) -> None:
    while True:
        load.samples.append(reading(pid, load))
        await anyio.sleep(SAMPLE_EVERY_S)


class ClientProcess:
    """One ``scripts._soak_clients`` process: started with its arguments, told to stop by a line on
    its stdin, then its one JSON line of results read."""

    def __init__(self, process: Process) -> None:
        self.process, self.buf = process, b""

    @classmethod
    async def start(cls, args: dict[str, Any]) -> ClientProcess:
        process = await anyio.open_process([sys.executable, "-m", "scripts._soak_clients", json.dumps(args)],
                                           cwd=ROOT)
        return cls(process)

    async def line(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        with anyio.fail_after(timeout_s):
            while b"\n" not in self.buf:
                self.buf += await self.process.stdout.receive()
        line, self.buf = self.buf.split(b"\n", 1)
        value: dict[str, Any] = json.loads(line)
        return value

    async def stop(self) -> dict[str, Any]:
        """Its results, once it stopped (killed if it does not within a minute)."""
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(b"stop\n")
            return await self.line(60)
        finally:
            with anyio.move_on_after(10):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
            await self.process.aclose()


# -- the soak's users and their requests --------------------------------------------------------------


async def sign_up(api: httpx.AsyncClient, prefix: str, remote_agents: int) -> list[User]:
    users = []
    for i in range(USERS):
        response = await api.post("/api/users", json={"name": f"{prefix}-{i}"})
        response.raise_for_status()
        users.append(User(f"{prefix}-{i}", response.json()["token"]))
    for i in range(remote_agents):
        user, game = users[i % USERS], REMOTE_GAMES[i // USERS % len(REMOTE_GAMES)]
        response = await api.post("/api/agents", json={"name": f"remote-{i}", "game": game, "remote": True},
                                  headers=user.headers)
        response.raise_for_status()
        user.remote.append((response.json()["id"], game))
    return users


async def submit(api: httpx.AsyncClient, user: User, game: str, load: Load) -> None:
    code = BOTS[game].replace("{n}", str(load.versions))
    load.versions += 1
    try:
        response = await api.post("/api/agents", json={"name": f"bot-{game}", "game": game, "code": code},
                                  headers=user.headers)
    except httpx.TransportError:
        load.answers["submission: no answer"] += 1
        return
    load.answers[f"submission: {response.status_code}"] += 1
    if response.status_code == 201:
        user.agents[game] = response.json()["id"]


async def submitting(api: httpx.AsyncClient, user: User, load: Load, rng: random.Random) -> None:
    await anyio.sleep(rng.uniform(0, SUBMIT_EVERY_S))
    while True:
        await submit(api, user, rng.choice(GAMES), load)
        await anyio.sleep(SUBMIT_EVERY_S)


async def challenging(api: httpx.AsyncClient, user: User, users: list[User], load: Load, rng: random.Random) -> None:
    """Challenges by ``user``: its bot against another user's with the tight clock, or against a
    remote agent with the game's own clock."""
    await anyio.sleep(rng.uniform(0, CHALLENGE_EVERY_S))
    remote = [agent for u in users for agent in u.remote]
    while True:
        if remote and rng.random() < 0.5:
            agent_id, game = rng.choice(remote)
            body: dict[str, Any] = {"game": game, "agents": [agent_id, user.agents[game]]}
            kind = "remote"
        else:
            game = rng.choice(GAMES)
            body = {"game": game, "agents": [user.agents[game], rng.choice(users).agents[game]],
                    "config": TIGHT_CLOCK}
            kind = "tight clock"
        if game == "rps":
            body["config"] = {**body.get("config", {}), "episodeSteps": 200}
        try:
            response = await api.post("/api/matches", json=body, headers=user.headers)
            load.answers[f"challenge ({kind}): {response.status_code}"] += 1
        except httpx.TransportError:
            load.answers[f"challenge ({kind}): no answer"] += 1
        await anyio.sleep(CHALLENGE_EVERY_S)


def start_load(tg: TaskGroup, api: httpx.AsyncClient, users: list[User], load: Load, seed: int) -> None:
    rng = random.Random(seed)
    for user in users:
        tg.start_soon(submitting, api, user, load, random.Random(rng.random()))
        tg.start_soon(challenging, api, user, users, load, random.Random(rng.random()))


async def retire(api: httpx.AsyncClient, users: list[User]) -> float | None:
    """Disable the users' bots (the ladder then starts nothing) and wait until no match is live;
    how long that took (None: some still were after ``DRAIN_S``)."""
    started = time.monotonic()
    for user in users:
        for agent_id in set(user.agents.values()):
            response = await api.patch(f"/api/agents/{agent_id}", json={"disabled": True}, headers=user.headers)
            response.raise_for_status()
    with anyio.move_on_after(DRAIN_S):
        while True:
            for status in ("live", "pending"):
                if (await api.get("/api/matches", params={"status": status, "limit": 1})).json()["items"]:
                    break
            else:
                return round(time.monotonic() - started, 1)
            await anyio.sleep(0.2)
    return None


# -- the matches, read back from storage ---------------------------------------------------------------


async def tally(db: str, first_id: int, until: float, remote_ids: set[int]) -> dict[str, Any]:
    """Every match of the soak (id above ``first_id``) as stored: those that ended by ``until`` (the
    load's end, wall clock) by status, with their moves; and every seat fault, whenever it came."""
    statuses: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    moves = rated = 0
    async with open_storage(db) as storage:
        cursor: str | None = None
        while True:
            page, cursor = await storage.list_matches(cursor=cursor, limit=200)
            for match in page:
                if match.id <= first_id:
                    cursor = None
                    break
                if match.status not in (MatchStatus.FINISHED, MatchStatus.ABORTED):
                    statuses["unfinished"] += 1  # pending or live in storage once the server stopped
                elif match.finished_at is None or match.finished_at > until:
                    statuses["ended after the load"] += 1
                else:
                    statuses[match.status.value] += 1
                    rated += match.rated
                    moves += max(0, match.steps - 1)
                    if match.status is MatchStatus.ABORTED:
                        reasons[(match.reason or "")[:80]] += 1
                for seat in match.seats:
                    if seat.status in ("TIMEOUT", "ERROR", "INVALID"):
                        faults[f"{seat.status} {'remote' if seat.agent_id in remote_ids else 'sandboxed'}"] += 1
            if cursor is None:
                break
    return {"statuses": dict(statuses), "rated": rated, "moves": moves, "faults": dict(faults),
            "aborted_reasons": dict(reasons.most_common(5))}


# -- the soak ---------------------------------------------------------------------------------------


async def soak(minutes: float, db: str | None, spectators: int, remote_agents: int, seed: int) -> dict[str, Any]:
    """Run the soak; its report as a dict."""
    cores = max(1, len(os.sched_getaffinity(0)))
    load = Load()
    with tempfile.TemporaryDirectory(prefix="arena-soak-") as tmp:
        url = db or str(Path(tmp) / "arena.db")
        extra = ("--stamp-steps", "--db", url, "--per-client-limits")  # the served limits on every client
        async with bench_server("websockets-sansio", False, ladder_slots=cores, extra=extra) as server:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30,
                                         trust_env=False) as api:
                newest = (await api.get("/api/matches", params={"limit": 1})).json()["items"]
                first_id = newest[0]["id"] if newest else 0
                users = await sign_up(api, f"soak{seed % 100000}", remote_agents)
                for user in users:
                    for game in GAMES:
                        await submit(api, user, game, load)
                await anyio.sleep(SETTLE_S)
                start = reading(server.pid, load)
                started = time.monotonic()
                per_process = [spectators // SPECTATOR_PROCESSES + (i < spectators % SPECTATOR_PROCESSES)
                               for i in range(SPECTATOR_PROCESSES)]
                remote = [{"id": agent_id, "game": game, "token": u.token}
                          for u in users for agent_id, game in u.remote]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sampling, server.pid, load)
                    async with _clients(server.port, per_process, remote, seed) as results:
                        async with anyio.create_task_group() as requests:
                            start_load(requests, api, users, load, seed)
                            await anyio.sleep(minutes * 60)
                            seconds, until = time.monotonic() - started, time.time()
                            requests.cancel_scope.cancel()
                        # The clients (remote agents, spectators) stay until the last match ended.
                        drained_s = await retire(api, users)
                    tg.cancel_scope.cancel()
                await anyio.sleep(SETTLE_S)
                end = reading(server.pid, load)
        left = alive(list(load.seen.values()))
        matches = await tally(url, first_id, until, {agent_id for u in users for agent_id, _ in u.remote})
    result = report(minutes, url, seconds, cores, load, start, end, left, matches, results, spectators, remote_agents)
    result["matches"]["drained_s"] = drained_s
    return result


@asynccontextmanager
async def _clients(port: int, per_process: list[int], remote: list[dict[str, Any]],
                   seed: int) -> AsyncIterator[list[dict[str, Any]]]:
    """The spectator processes and the remote agents' process, running for the block and all told
    to stop at once at its end; their results in the list after."""
    args: list[dict[str, Any]] = [
        {"mode": "spectators", "port": port, "clients": n, "seed": seed + i, "dwell_s": [2.0, 20.0],
         "pause_s": [0.2, 2.0]} for i, n in enumerate(per_process) if n]
    if remote:
        args.append({"mode": "remotes", "port": port, "agents": remote, "seed": seed, "life_s": [3.0, 15.0],
                     "pause_s": [0.05, 0.3]})
    processes: list[ClientProcess] = []
    results: list[dict[str, Any]] = []

    async def stop(process: ClientProcess) -> None:
        results.append(await process.stop())

    try:
        for arg in args:
            processes.append(await ClientProcess.start(arg))
        for process in processes:
            await process.line(60)  # ready
        yield results
    finally:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for process in processes:
                    tg.start_soon(stop, process)


def report(minutes: float, db: str, seconds: float, cores: int, load: Load, start: dict[str, float],
           end: dict[str, float], left: list[Proc], matches: dict[str, Any], results: list[dict[str, Any]],
           spectators: int, remote_agents: int) -> dict[str, Any]:
    watchers = [r for r in results if r.get("mode") == "spectators"]
    remotes = next((r for r in results if r.get("mode") == "remotes"), {})
    histogram: Counter[float] = Counter()
    for r in watchers:
        histogram.update({float(k): v for k, v in r["latency_ms"]})
    faults = matches["faults"]
    return {
        "minutes": minutes, "seconds": round(seconds, 1), "cores": cores,
        "database": "postgresql" if db.startswith("postgres") else "sqlite",
        "matches": {"finished": matches["statuses"].get("finished", 0),
                    "aborted": matches["statuses"].get("aborted", 0),
                    "ended_after_load": matches["statuses"].get("ended after the load", 0),
                    "unfinished": matches["statuses"].get("unfinished", 0),
                    "rated": matches["rated"], "aborted_reasons": matches["aborted_reasons"]},
        "moves": matches["moves"], "moves_per_s": round(matches["moves"] / seconds, 1),
        "timeouts_server_caused": faults.get("TIMEOUT sandboxed", 0),
        "timeouts_remote": faults.get("TIMEOUT remote", 0),
        "faults": faults,
        "spectators": {
            "sockets": spectators, "joins": sum(r["joins"] for r in watchers),
            "refused": sum(r["refused"] for r in watchers),
            "peak_connected": sum(r["peak_connected"] for r in watchers),
            "events": sum(histogram.values()), "ends": sum(r["ends"] for r in watchers),
            "seq_gaps": sum(r["gaps"] for r in watchers),
            "latency_p50_ms": _round(percentile_of(histogram, 50)),
            "latency_p99_ms": _round(percentile_of(histogram, 99)),
            "latency_max_ms": _round(max(histogram, default=math.nan)),
        },
        "remote_agents": {"agents": remote_agents,
                          **{k: v for k, v in remotes.items() if k not in ("mode", "seconds")}},
        "requests": dict(load.answers),
        "server": {
            "rss_kib_start": start["rss_kib"], "rss_kib_end": end["rss_kib"],
            "rss_kib_peak": max(s["rss_kib"] for s in [start, end, *load.samples]),
            "fds_start": start["fds"], "fds_end": end["fds"],
            "fds_peak": max(s["fds"] for s in [start, end, *load.samples]),
            "children_start": start["children"], "children_end": end["children"],
            "children_peak": max(s["children"] for s in [start, end, *load.samples]),
            "children_seen": len(load.seen), "children_left": len(left),
            # its own CPU (not its seats'), as a share of one core over the load
            "cpu_share": round((end["cpu_s"] - start["cpu_s"]) / (end["t"] - start["t"]), 2),
            # resident memory about once a minute through the load
            "rss_kib_by_minute": [int(s["rss_kib"]) for s in load.samples[::int(60 / SAMPLE_EVERY_S)]],
            "left": [f"{p.pid} {p.command}" for p in left[:10]],
        },
    }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def text(r: dict[str, Any]) -> str:
    """The report for people."""
    m, s, sp, ra, srv = r["matches"], r["server"], r["spectators"], r["remote_agents"], r["server"]
    return "\n".join([
        f"soak: {r['seconds']:.0f} s on {r['database']}, {r['cores']} cores",
        f"matches: {m['finished']:,} finished ({m['rated']:,} rated), {m['aborted']:,} aborted"
        + (f" {m['aborted_reasons']}" if m["aborted_reasons"] else "")
        + f"; {m['ended_after_load']} more ended after the load stopped (the last "
        + (f"{m['drained_s']} s after)" if m["drained_s"] is not None else f"not within {DRAIN_S:.0f} s)")
        + f", {m['unfinished']} never",
        f"moves: {r['moves']:,} ({r['moves_per_s']:,.0f}/s)",
        f"seat timeouts the server caused: {r['timeouts_server_caused']} (remote seats: {r['timeouts_remote']}); "
        f"faults {r['faults'] or 'none'}",
        f"spectators: {sp['sockets']:,} sockets, {sp['joins']:,} joins ({sp['refused']} refused), peak "
        f"{sp['peak_connected']:,} connected, {sp['events']:,} events, latency p50 {sp['latency_p50_ms']} ms, "
        f"p99 {sp['latency_p99_ms']} ms, max {sp['latency_max_ms']} ms, {sp['seq_gaps']} seq gaps",
        f"remote agents: {ra['agents']}, {ra.get('connections', 0):,} connections ({ra.get('dropped', 0)} dropped "
        f"without a close), {ra.get('turns', 0):,} turns, {ra.get('match_ends', 0):,} matches",
        f"requests: {json.dumps(r['requests'], sort_keys=True)}",
        f"server: RSS {s['rss_kib_start'] / 1024:.1f} -> {s['rss_kib_end'] / 1024:.1f} MiB (peak "
        f"{s['rss_kib_peak'] / 1024:.1f}), fds {s['fds_start']} -> {s['fds_end']} (peak {s['fds_peak']}), "
        f"children {srv['children_start']} -> {srv['children_end']} (peak {srv['children_peak']}), "
        f"left after it stopped: {srv['children_left']} of {srv['children_seen']:,} seen; its CPU "
        f"{srv['cpu_share']:.0%} of a core; RSS by minute (MiB): "
        + " ".join(f"{kib / 1024:.0f}" for kib in srv["rss_kib_by_minute"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.soak", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--db", help="the database (default: a throwaway SQLite file)")
    parser.add_argument("--spectators", type=int, default=1000, help="spectator sockets (default 1000)")
    parser.add_argument("--remote-agents", type=int, default=20, help="remote agents (default 20, at most 20)")
    parser.add_argument("--seed", type=int, help="the load's random choices (default: a random seed, printed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if not 0 <= args.remote_agents <= USERS * len(REMOTE_GAMES):
        parser.error(f"--remote-agents must be within 0..{USERS * len(REMOTE_GAMES)}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    result = {"seed": seed, **anyio.run(soak, args.minutes, args.db, args.spectators, args.remote_agents, seed)}
    print(json.dumps(result, indent=2) if args.json else f"seed {seed}\n{text(result)}")


if __name__ == "__main__":
    main()
