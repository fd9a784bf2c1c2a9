"""Storage: events stored per second through the batching writer, and its CPU share at 1,000 events/s.

* Events stored/s: steps of 20 live matches appended turn by turn (as their recorders would)
  until every match is finished, which waits for its rows: appends and commits together.
* CPU share: this process's CPU time (every thread: the writer task and the database threads)
  over wall time while appending at a fixed 1,000 events/s (10 matches, a step each every
  10 ms), minus the same loop's share without appending (the idle baseline), in % of one core.
  Idle and busy windows alternate.

Steps are appended as a match's recorder appends them: encoded once (``EncodedStep``), the
text the hub also frames for spectators. That encoding is counted here, in both figures.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from protocol.messages import SeatTiming, StepRecord
from server.storage import EncodedStep, Lease, MatchStatus, NewSeat, SeatResult, SqliteStorage, Storage, open_sqlite

from ._common import Row, Section

__all__ = ["events_per_second", "run", "writer_cpu_percent"]

BOT = "def agent(obs, config):\n    return 0\n"


def _record(step: int) -> StepRecord:
    """A ConnectX-sized step, as the runner records it."""
    board = [0] * 42
    for i in range(step % 42):
        board[41 - i] = 1 + i % 2
    return StepRecord(step=step, actions=[step % 7, None], statuses=["INACTIVE", "ACTIVE"], rewards=[0.0, 0.0],
                      state={"board": board, "mark": 1 + step % 2},
                      timing=[SeatTiming(wall_s=0.000123, cpu_s=0.000101, bank_s=60.0), None])


async def bench_matches(
    storage: Storage, n: int, lease: Lease | None = None,
) -> tuple[list[int], list[SeatResult]]:
    """``n`` ConnectX matches to append steps to (held under ``lease``, if given), and their seats' results."""
    user = await storage.create_user(f"bench{time.monotonic_ns()}", "x")
    agent = await storage.save_agent(user.id, "bot", "connectx", BOT)
    ids = [(await storage.create_match("connectx", 1, {}, 1, [NewSeat(agent.id, 1)] * 2, lease=lease)).id
           for _ in range(n)]
    return ids, [SeatResult(agent.id, "bot", "bench", 1)] * 2


async def appended_per_second(
    storage: Storage, ids: list[int], seats: list[SeatResult], records: list[StepRecord],
) -> float:
    """``records`` appended turn by turn to every match of ``ids``, then each finished (stored): events a second."""
    started = time.perf_counter()
    for record in records:
        for match_id in ids:
            await storage.append_steps(match_id, [EncodedStep.of(record)])
    for match_id in ids:
        await storage.finish_match(match_id, MatchStatus.FINISHED, None, seats, time.time())
    return len(records) * len(ids) / (time.perf_counter() - started)


async def events_per_second(total: int = 20_000, matches: int = 20) -> float:
    """Steps appended turn by turn across ``matches`` matches, until all are finished (stored)."""
    records = [_record(step) for step in range(total // matches)]
    with tempfile.TemporaryDirectory() as tmp:
        async with open_sqlite(Path(tmp) / "bench.db") as storage:
            ids, seats = await bench_matches(storage, matches)
            return await appended_per_second(storage, ids, seats, records)


class _Appender:
    """Appends the next steps of ``ids`` (each match's steps numbered on from the last)."""

    def __init__(self, storage: SqliteStorage, ids: list[int]) -> None:
        self.storage, self.ids = storage, ids
        self.step = 0

    async def append(self, per_match: int) -> None:
        records = [_record(self.step + i) for i in range(1, per_match + 1)]
        self.step += per_match
        for match_id in self.ids:
            await self.storage.append_steps(match_id, [EncodedStep.of(record) for record in records])


async def _paced_share(appender: _Appender | None, rate: float, seconds: float, matches: int) -> float:
    """CPU share (of a core) of this process while appending ``rate`` events/s (none without an appender)."""
    tick_s = 0.01
    per_tick = max(1, round(rate * tick_s / matches))
    cpu0, started = time.process_time(), anyio.current_time()
    for tick in range(1, int(seconds / tick_s) + 1):
        if appender is not None:
            await appender.append(per_tick)
        await anyio.sleep_until(started + tick * tick_s)
    return (time.process_time() - cpu0) / (anyio.current_time() - started)


async def writer_cpu_percent(rate: float, seconds: float, idle_s: float, rounds: int) -> list[float]:
    """Per round: the CPU share at ``rate`` events/s minus the idle loop's, in % of one core."""
    shares = []
    with tempfile.TemporaryDirectory() as tmp:
        async with open_sqlite(Path(tmp) / "bench.db") as storage:
            ids, seats = await bench_matches(storage, 10)
            appender = _Appender(storage, ids)
            await _paced_share(appender, rate, 0.3, len(ids))  # warm-up
            for _ in range(rounds):
                idle = await _paced_share(None, rate, idle_s, len(ids))
                busy = await _paced_share(appender, rate, seconds, len(ids))
                shares.append((busy - idle) * 100)
            for match_id in ids:
                await storage.finish_match(match_id, MatchStatus.FINISHED, None, seats, time.time())
    return shares


async def run(quick: bool) -> Section:
    repeats = 3 if quick else 5
    total = 20_000 if quick else 50_000
    section = Section("Storage")
    await events_per_second(2_000)  # warm-up
    section.add(Row("events stored (batched writer, 20 live matches)", "events/s",
                    [await events_per_second(total) for _ in range(repeats)], ">= 50,000"))
    rounds, seconds, idle_s = (2, 2.0, 1.0) if quick else (3, 5.0, 3.0)
    section.add(Row("writer CPU at 1,000 events/s (minus the idle loop)", "% of a core",
                    await writer_cpu_percent(1000, seconds, idle_s, rounds), "< 5%"))
    section.notes.append(f"{total:,} events per events/s repeat; CPU share over {seconds:g} s windows at 1,000 "
                         f"events/s (10 matches, every 10 ms), idle baseline {idle_s:g} s, {rounds} rounds")
    return section
