"""Cluster mode (issue 13): one process on SQLite, one on PostgreSQL, a front with two workers.

Everything runs on a private PostgreSQL 15 started as the tests start theirs
(``tests/postgres.py``: initdb into a temporary folder, a free port of 127.0.0.1, as the
``postgres`` user when run as root), then switched to PostgreSQL's durable defaults (``fsync``,
``synchronous_commit`` and ``full_page_writes`` on; the tests turn them off), so the figures
are a deployment's. Each reading gets a fresh database (a copy of the migrated template).

* **ConnectX matches per second**, random against random, ``total`` matches, ``in_flight`` at once,
  each created through ``POST /api/matches`` and its end read from ``/ws/lobby``
  (``ladder.full_path``) with (a) one process on SQLite, (b) one process of role ``all`` on
  PostgreSQL, (c) one front and two workers on PostgreSQL (the matches created and watched
  through the front, claimed and run by the workers); in each round a, b and c in turn, each on
  fresh processes; the ratios are per round. CPU per match: the arena processes' own and their
  sandboxes' (``/bench/stats`` of each), PostgreSQL's (the postmaster and its backends, from
  ``/proc``), and the machine's (every core, the client included).
* **Events stored per second** across 20 live matches, as ``storage.events_per_second`` times
  SQLite: ConnectX-sized steps appended turn by turn until every match is finished (stored),
  through the PostgreSQL storage, each match held under a lease as a worker holds it (its
  writes fenced by its attempt); SQLite's figure beside it, in the same rounds.
* **A spectator on the other front**: two fronts (A, B) and two workers; an RPS match between
  two bots that sleep 50 ms a move (about 20 steps a second) is created through front A, and
  ``spectators`` raw clients (``_clients.py``, mode ``watch``) watch it on front B until its
  ``end``. The workers stamp each step with the machine's monotonic clock when they record it
  (``_server.py --stamp-steps``); the latency of an event is its arrival at a client minus that
  stamp: the worker's batched step writer, the commit with its ``NOTIFY``, front B's relay and
  its fan-out.
* **The remote-agent relay**: a remote agent on the front answers every turn at once, against
  an instant sandboxed bot; its cycle per move (its action to the next turn) with one process on
  SQLite, one process on PostgreSQL (which relays through the database too) and a front with
  two workers; the difference to SQLite is what the relay adds to a move, and the workers' own
  measure of it (in the seat's log) is listed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import asyncpg
import orjson
from websockets.asyncio.client import connect

from server.storage import Lease, open_postgres

from ._common import Row, Section, ratios, unavailable
from ._procs import BenchServer, bench_server, run_clients
from .ladder import api, full_path, wait_ended
from .storage import _record, appended_per_second, bench_matches
from .storage import events_per_second as sqlite_events_per_second

__all__ = ["CONFIGS", "run"]

WS = "websockets-sansio"  # what `arena serve` runs (deflate off)
SQLITE, PG_ALL, PG_CLUSTER = "SQLite, one process", "PostgreSQL, one process (all)", "PostgreSQL, front + 2 workers"
FAST_POLL_S = 0.02
PG_CLUSTER_FAST = f"PostgreSQL, front + 2 workers, claim poll {FAST_POLL_S * 1e3:g} ms"
CONFIGS = (SQLITE, PG_ALL, PG_CLUSTER, PG_CLUSTER_FAST)

SLOW_RPS = """
from time import sleep

def agent(observation, configuration):
    sleep(0.05)
    return observation.step % configuration.signs
"""


def _tests_postgres() -> Any:
    """``tests/postgres.py`` (it imports asyncpg and the storage, not pytest)."""
    from tests import postgres

    return postgres


class _Postgres:
    """The private server, its durable settings and a fresh database per reading."""

    def __init__(self, server: Any) -> None:
        self.server = server

    @classmethod
    @asynccontextmanager
    async def started(cls) -> AsyncIterator[_Postgres]:
        pg = _tests_postgres()
        binaries = pg.find_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql-15)")
        server = await anyio.to_thread.run_sync(pg.PostgresServer.start, binaries)
        try:
            conn = await asyncpg.connect(server.url("postgres"))
            try:  # PostgreSQL's own defaults, as a deployment runs it (the tests turn them off)
                for key in ("fsync", "synchronous_commit", "full_page_writes"):
                    await conn.execute(f"ALTER SYSTEM SET {key} = on")
                await conn.execute("SELECT pg_reload_conf()")
                await anyio.sleep(0.2)
                settings = {key: await conn.fetchval(f"SHOW {key}") for key in ("fsync", "synchronous_commit")}
            finally:
                await conn.close()
            if set(settings.values()) != {"on"}:
                raise RuntimeError(f"PostgreSQL kept {settings}")
            yield cls(server)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.stop)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh database with the current schema: its URL; dropped on the way out."""
        name = await anyio.to_thread.run_sync(self.server.create_database)
        try:
            yield self.server.url(name)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.server.drop_database, name)

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster, the backends it reaped and those still running."""
        try:
            postmaster = int((self.server.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == postmaster or int(fields[1]) == postmaster:
                total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        return total / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def _arena(config: str, pg: _Postgres, *, fronts: int = 1, stamp: bool = False
                 ) -> AsyncIterator[list[BenchServer]]:
    """The arena processes of ``config``, fronts first (the first is where matches are created)."""
    async with AsyncExitStack() as stack:
        if config == SQLITE:
            yield [await stack.enter_async_context(bench_server(WS, False))]
            return
        url = await stack.enter_async_context(pg.database())
        if config == PG_ALL:
            yield [await stack.enter_async_context(
                bench_server(WS, False, extra=("--db", url, "--role", "all", "--worker-name", "bench-all")))]
            return
        servers = []
        for i in range(fronts):
            servers.append(await stack.enter_async_context(
                bench_server(WS, False, extra=("--db", url, "--role", "front", "--worker-name", f"front-{i}"))))
        for i in (1, 2):
            extra: tuple[str, ...] = ("--db", url, "--role", "worker", "--worker-name", f"worker-{i}")
            if config == PG_CLUSTER_FAST:
                extra += ("--claim-poll-s", str(FAST_POLL_S))
            servers.append(await stack.enter_async_context(
                bench_server(WS, False, extra=extra + (("--stamp-steps",) if stamp else ()))))
        yield servers


async def _arena_cpu_s(servers: list[BenchServer]) -> float:
    total = 0.0
    for server in servers:
        async with api(server.port) as client:
            status, doc = await client.call("GET", "/bench/stats")
            assert status == 200, doc
            total += doc["cpu_s"] + doc["sandbox_cpu_s"]
    return total


async def _matches_per_second(section: Section, pg: _Postgres, rounds: int, total: int, in_flight: int) -> None:
    figures: dict[str, dict[str, list[float]]] = {c: {} for c in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            async with _arena(config, pg) as servers:
                arena0, pg0 = await _arena_cpu_s(servers), pg.cpu_s()
                result = await full_path(servers[0].port, total, in_flight, via_ladder=False)
                arena1, pg1 = await _arena_cpu_s(servers), pg.cpu_s()
            for key, value in (("rate", result["matches_per_s"]), ("arena_ms", (arena1 - arena0) / total * 1e3),
                               ("pg_ms", (pg1 - pg0) / total * 1e3), ("machine_ms", result["machine_ms"])):
                figures[config].setdefault(key, []).append(value)
    for config in CONFIGS:
        section.add(Row(f"ConnectX matches/s, {config}, {in_flight} in flight", "matches/s",
                        figures[config]["rate"]))
    section.add(Row(f"({PG_ALL}) / ({SQLITE}): matches/s", "x",
                    ratios(figures[PG_ALL]["rate"], figures[SQLITE]["rate"]), is_ratio=True))
    section.add(Row(f"({PG_CLUSTER}) / ({PG_ALL}): matches/s", "x",
                    ratios(figures[PG_CLUSTER]["rate"], figures[PG_ALL]["rate"]), ">= 0.85x (cost <= 15%)",
                    is_ratio=True))
    section.add(Row(f"({PG_CLUSTER_FAST}) / ({PG_ALL}): matches/s", "x",
                    ratios(figures[PG_CLUSTER_FAST]["rate"], figures[PG_ALL]["rate"]), is_ratio=True))
    for config in CONFIGS:
        f = figures[config]
        section.add(Row(f"CPU per match, {config}: arena processes + sandboxes", "ms", f["arena_ms"]))
        if config != SQLITE:
            section.add(Row(f"CPU per match, {config}: PostgreSQL", "ms", f["pg_ms"]))
        section.add(Row(f"CPU per match, {config}: the machine (client included)", "ms", f["machine_ms"]))


async def pg_events_per_second(url: str, total: int = 20_000, matches: int = 20) -> float:
    """``storage.events_per_second`` on PostgreSQL: steps appended turn by turn across ``matches``
    matches held under a lease (writes fenced), until all are finished (stored)."""
    records = [_record(step) for step in range(total // matches)]
    async with open_postgres(url) as storage:
        ids, seats = await bench_matches(storage, matches, Lease("bench-writer", 600.0))
        return await appended_per_second(storage, ids, seats, records)


async def _events_per_second(section: Section, pg: _Postgres, repeats: int, total: int) -> None:
    on_pg: list[float] = []
    on_sqlite: list[float] = []
    async with pg.database() as url:
        await pg_events_per_second(url, 2_000)  # warm-up
    for _ in range(repeats):
        async with pg.database() as url:
            on_pg.append(await pg_events_per_second(url, total))
        on_sqlite.append(await sqlite_events_per_second(total))
    section.add(Row("events stored, PostgreSQL (batched writer, 20 live matches)", "events/s", on_pg, ">= 20,000"))
    section.add(Row("events stored, SQLite (same rounds)", "events/s", on_sqlite))


async def _spectator_latency(section: Section, pg: _Postgres, spectators: int, rounds: int, steps: int) -> None:
    p50: list[float] = []
    p99: list[float] = []
    notes = []
    async with _arena(PG_CLUSTER, pg, fronts=2, stamp=True) as servers:
        front_a, front_b = servers[0], servers[1]
        async with api(front_a.port) as client:
            status, user = await client.call("POST", "/api/users", {"name": f"watch{time.monotonic_ns() % 10**9}"})
            assert status == 201, user
            agents = []
            for name in ("slow_a", "slow_b"):
                status, agent = await client.call("POST", "/api/agents", {"name": name, "game": "rps",
                                                                          "code": SLOW_RPS}, user["token"])
                assert status == 201, agent
                agents.append(agent["id"])
            for _ in range(rounds):
                status, match = await client.call(
                    "POST", "/api/matches", {"game": "rps", "agents": agents, "config": {"episodeSteps": steps}},
                    user["token"])
                assert status == 201, match
                result = await run_clients({"mode": "watch", "port": front_b.port, "match": match["id"],
                                            "clients": spectators, "deflate": False,
                                            "timeout_s": steps * 0.05 * 3 + 60})
                status, doc = await client.call("GET", f"/api/matches/{match['id']}")
                if result["ended"] != spectators or result["gaps"] or not result["delivered"]:
                    notes.append(f"match {match['id']}: {result['ended']}/{spectators} spectators saw its end, "
                                 f"{result['gaps']} seq gaps, {result['delivered']} events timed")
                if result["delivered"]:
                    p50.append(result["p50_ms"])
                    p99.append(result["p99_ms"])
                notes.append(f"match {match['id']} ({doc.get('status')}, run by {doc.get('worker')}): "
                             f"{result['delivered']:,} events timed, max {result['max_ms'] or 0:.1f} ms")
    what = f"{spectators} spectators on front B, match created on front A"
    section.add(Row(f"spectator latency p50, {what}", "ms", p50))
    section.add(Row(f"spectator latency p99, {what}", "ms", p99, "< 50 ms"))
    section.notes.extend(f"latency: {note}" for note in notes)


INSTANT_RPS = """
def agent(observation, configuration):
    return 0
"""


async def _remote_cycles(port: int, steps: int, rounds: int) -> tuple[list[float], list[str]]:
    """A remote agent's cycle per move on the arena at ``port``: from its action for one step to
    the next step's turn, against an instant sandboxed bot (the server's work per step, and in
    a cluster the relay's round trip); each match's median, and its seat logs' relay figures."""
    medians: list[float] = []
    relays: list[str] = []
    async with api(port) as client:
        status, user = await client.call("POST", "/api/users", {"name": f"remote{time.monotonic_ns() % 10**9}"})
        assert status == 201, user
        token = user["token"]
        status, remote = await client.call("POST", "/api/agents", {"name": "far", "game": "rps", "remote": True},
                                           token)
        assert status == 201, remote
        status, bot = await client.call("POST", "/api/agents", {"name": "rock", "game": "rps", "code": INSTANT_RPS},
                                        token)
        assert status == 201, bot
        async with connect(f"ws://127.0.0.1:{port}/ws/agent", additional_headers={"Authorization": f"Bearer {token}"},
                           proxy=None, max_size=None) as ws:
            for _ in range(rounds):
                status, match = await client.call("POST", "/api/matches", {
                    "game": "rps", "agents": [remote["id"], bot["id"]], "config": {"episodeSteps": steps}}, token)
                assert status == 201, match
                cycles: list[float] = []
                sent_at: float | None = None
                with anyio.fail_after(steps + 60):
                    while True:
                        frame = orjson.loads(await ws.recv())
                        if frame["type"] == "ping":
                            await ws.send(orjson.dumps({"type": "pong", "nonce": frame["nonce"]}).decode())
                        elif frame["type"] == "turn" and frame["match_id"] == match["id"]:
                            if sent_at is not None:
                                cycles.append(time.perf_counter() - sent_at)
                            sent_at = time.perf_counter()
                            await ws.send(orjson.dumps({"type": "action", "match_id": match["id"],
                                                        "step": frame["step"], "action": 1}).decode())
                        elif frame["type"] == "match_end" and frame["match_id"] == match["id"]:
                            break
                medians.append(statistics.median(cycles) * 1e3)
                with anyio.fail_after(30):  # the agent hears the end before the match is stored
                    await wait_ended(client, match["id"])
                status, logs = await client.call("GET", f"/api/agents/{remote['id']}/logs?match={match['id']}", None,
                                                 token)
                relays += [line for line in str(logs.get("log", "")).splitlines() if "relay round trip" in line]
    return medians, relays


async def _relay_round_trip(section: Section, pg: _Postgres, rounds: int, steps: int) -> None:
    cycles: dict[str, list[float]] = {SQLITE: [], PG_ALL: [], PG_CLUSTER: []}
    relays: list[str] = []
    for _ in range(rounds):
        for config in cycles:
            async with _arena(config, pg) as servers:
                medians, lines = await _remote_cycles(servers[0].port, steps, 1)
            cycles[config] += medians
            relays += [f"{config}: {line.removeprefix('[arena] ')}" for line in lines]
    for config, values in cycles.items():
        section.add(Row(f"remote agent's cycle per move, {config}", "ms", values))
    added = [c - s for c, s in zip(cycles[PG_CLUSTER], cycles[SQLITE], strict=True)]
    section.add(Row(f"relay's added round trip per move: ({PG_CLUSTER}) - ({SQLITE})", "ms", added))
    section.notes.append(f"relay: a remote agent on the (first) front answers at once, against an instant sandboxed "
                         f"RPS bot, {steps} steps a match, {rounds} rounds of {', '.join(cycles)}; the cycle is from "
                         "its action to the next turn; as the workers measured the relay themselves (seat logs): "
                         + "; ".join(relays))


async def run(quick: bool) -> Section:
    section = Section("Cluster mode (PostgreSQL)")
    rounds = 2 if quick else 3
    total, in_flight = (60, 16) if quick else (240, 16)
    events_total = 10_000 if quick else 40_000
    spectators, latency_rounds, steps = (100, 1, 100) if quick else (100, 3, 200)
    try:
        async with _Postgres.started() as pg:
            await _matches_per_second(section, pg, rounds, total, in_flight)
            await _events_per_second(section, pg, rounds, events_total)
            await _relay_round_trip(section, pg, rounds, 100 if quick else 300)
            try:
                await _spectator_latency(section, pg, spectators, latency_rounds, steps)
            except Exception as exc:  # the other figures stand without it
                section.add(unavailable(f"spectator latency p99, {spectators} spectators on the other front", "ms",
                                        f"{type(exc).__name__}: {exc}", "< 50 ms"))
    except RuntimeError as exc:
        if section.rows:
            raise
        section.add(unavailable("ConnectX matches/s, PostgreSQL", "matches/s", str(exc)))
        return section
    section.notes.append(f"matches/s: ConnectX random vs random through POST /api/matches, ends from /ws/lobby, "
                         f"{total} matches per reading, {in_flight} in flight, {rounds} rounds of "
                         f"{', '.join(CONFIGS)} in turn, fresh processes and database per reading; workers on "
                         "their defaults (4 matches per CPU each, claim poll 0.25 s) but in the last configuration, "
                         "a diagnosis: a full or idle worker looks for a match every claim_poll_s, "
                         f"{FAST_POLL_S:g} s there")
    section.notes.append(f"events/s: {events_total:,} events per repeat, {rounds} repeats, PostgreSQL and SQLite "
                         "alternating")
    section.notes.append(f"PostgreSQL {_pg_version()}: private server (tests/postgres.py) with fsync, "
                         "synchronous_commit and full_page_writes on (PostgreSQL's defaults); "
                         f"{os.cpu_count()} cores shared by PostgreSQL, the arena processes and the clients")
    return section


def _pg_version() -> str:
    binaries = _tests_postgres().find_binaries()
    return binaries.parent.name if binaries is not None else "?"
