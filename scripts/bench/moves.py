"""The move path: server CPU per move, one bot's round trip, and moves/s across many matches.

* Server CPU per move: the benchmark process's CPU time (``time.process_time``: every thread,
  not the bots' processes) from the first step's record to the last, over the moves made in
  between, in a rock-paper-scissors match between two instant bots. Seat start-up is outside
  the window. Once with a recorder that discards steps (the runner and the pipes alone), once
  with the server's own recording (batched SQLite writer plus a live hub feed, no spectator).
* Round trip: one seat, ``act`` after ``act``; p50 and p99 of each repeat's calls.
* Throughput: 100 rps matches of ``episodeSteps`` 200 at once. Every seat waits at its first
  move until all 200 are ready (a gate), so the window, from the gate's opening until the last
  match returns, has every match moving at the same time rather than measuring start-up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from protocol.messages import StepRecord
from server.matches.games import get_game, resolve_config
from server.matches.hub import Hub, MatchFeed
from server.matches.runner import MatchResult, MatchSpec, Recorder, run_match
from server.matches.seats import AgentLink, Reply, SeatStart
from server.storage import EncodedStep, MatchStatus, NewSeat, SeatResult, Storage, open_sqlite

from ._common import Row, Section, percentile
from .startup import INSTANT_BOT, REFERENCE_MODE, SEAT_MODES, SeatOpener

__all__ = [
    "DiscardRecorder",
    "concurrent_moves",
    "cpu_per_move",
    "matches_per_second",
    "play_match",
    "round_trips_us",
    "run",
]

JSON = Any
# Generous deadlines: seats wait at the gate, and 200 seats starting at once on 2 cores take seconds.
_PATIENT = {"actTimeout": 60.0, "agentTimeout": 60.0}


class DiscardRecorder:
    """A recorder that stores nothing: the runner and the pipes alone."""

    async def record_step(self, record: StepRecord) -> None:
        pass


async def play_match(
    open_seat: SeatOpener, game: str, codes: Sequence[str], config: dict[str, JSON] | None = None,
    recorder: Recorder | None = None, seed: int = 1,
) -> MatchResult:
    """One whole match, seats opened one after another as the match manager does."""
    spec = MatchSpec(game, resolve_config(get_game(game), config), seed)
    async with AsyncExitStack() as stack:
        links = [await stack.enter_async_context(open_seat(code)) for code in codes]
        return await run_match(spec, links, recorder or DiscardRecorder())


async def matches_per_second(
    open_seat: SeatOpener, game: str, codes: Sequence[str], in_flight: int, total: int,
    config: dict[str, JSON] | None = None,
) -> float:
    """Whole matches per second (seat start-up and teardown included), ``in_flight`` at a time."""
    limiter = anyio.Semaphore(in_flight)

    async def one(seed: int) -> None:
        async with limiter:
            await play_match(open_seat, game, codes, config, seed=seed)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for seed in range(total):
            tg.start_soon(one, seed)
    return total / (time.perf_counter() - started)


class _CpuWindow:
    """Wraps a recorder; notes CPU and wall time at step 1 and at every later step."""

    def __init__(self, inner: Recorder) -> None:
        self.inner = inner
        self.cpu0 = self.wall0 = self.cpu1 = self.wall1 = 0.0
        self.moves = 0
        self.steps = 0

    async def record_step(self, record: StepRecord) -> None:
        await self.inner.record_step(record)
        if record.step == 1:
            self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        elif record.step > 1:
            self.moves += sum(a is not None for a in record.actions)
            self.steps += 1
            self.cpu1, self.wall1 = time.process_time(), time.perf_counter()


class _ServerRecorder:
    """What the match manager records with: the batched storage writer, then the live feed."""

    def __init__(self, storage: Storage, match_id: int, feed: MatchFeed) -> None:
        self.storage, self.match_id, self.feed = storage, match_id, feed

    async def record_step(self, record: StepRecord) -> None:
        step = EncodedStep.of(record)  # encoded once, for storage and the feed, as the manager does
        await self.storage.append_steps(self.match_id, [step])
        self.feed.publish_step(step)


async def cpu_per_move(open_seat: SeatOpener, steps: int = 1000, *, with_storage: bool = False) -> tuple[float, float]:
    """Server CPU per move (µs) and wall time per step (µs), rps between two instant bots."""
    config = {"episodeSteps": steps + 1}
    if not with_storage:
        window = _CpuWindow(DiscardRecorder())
        await play_match(open_seat, "rps", [INSTANT_BOT] * 2, config, window)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_sqlite(Path(tmp) / "bench.db") as storage:
                user = await storage.create_user("bench", "x")
                agent = await storage.save_agent(user.id, "rock", "rps", INSTANT_BOT)
                match = await storage.create_match("rps", 1, {}, 1, [NewSeat(agent.id, 1)] * 2)
                with Hub().open_feed(match.id, {"id": match.id}) as feed:
                    window = _CpuWindow(_ServerRecorder(storage, match.id, feed))
                    await play_match(open_seat, "rps", [INSTANT_BOT] * 2, config, window)
                seats = [SeatResult(agent.id, "rock", "bench", 1)] * 2
                await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())
    return (window.cpu1 - window.cpu0) / window.moves * 1e6, (window.wall1 - window.wall0) / window.steps * 1e6


async def round_trips_us(open_seat: SeatOpener, moves: int) -> list[float]:
    """Each ``act`` round trip to one instant bot, in µs."""
    config = resolve_config(get_game("rps"), None)
    samples = []
    async with open_seat(INSTANT_BOT) as seat:
        await seat.start(SeatStart(seat=0, seed=1, configuration=config))
        for step in range(1, moves + 1):
            observation = {"step": step, "lastOpponentAction": 1, "reward": 0, "remainingOverageTime": 10.0}
            sent = time.perf_counter()
            await seat.act(step, observation)
            samples.append((time.perf_counter() - sent) * 1e6)
    return samples


class _Gate:
    """Opens when ``expected`` seats have arrived; notes CPU and wall time at that moment."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.opened = anyio.Event()
        self.cpu0 = self.wall0 = 0.0

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived == self.expected:
            self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
            self.opened.set()
        with anyio.fail_after(300):  # a seat that never starts would hold every other one here
            await self.opened.wait()


class _GatedLink:
    """A seat that waits at its first move until every seat of the benchmark is ready."""

    def __init__(self, link: AgentLink, gate: _Gate) -> None:
        self.link, self.gate = link, gate
        self.passed = False

    async def start(self, start: SeatStart) -> None:
        await self.link.start(start)

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        if not self.passed:
            self.passed = True
            await self.gate.arrive()
        return await self.link.act(step, observation)

    def stop(self, reason: str) -> None:
        self.link.stop(reason)

    def log_text(self) -> str:
        return self.link.log_text()


async def concurrent_moves(open_seat: SeatOpener, matches: int, steps: int) -> tuple[float, float]:
    """Moves per second in total, and server CPU per move (µs), with ``matches`` rps matches at once."""
    gate = _Gate(2 * matches)
    spec = MatchSpec("rps", resolve_config(get_game("rps"), {"episodeSteps": steps, **_PATIENT}), 1)
    moves = 0
    last_wall = last_cpu = 0.0

    async def one() -> None:
        nonlocal moves, last_wall, last_cpu
        async with AsyncExitStack() as stack:
            links = [_GatedLink(await stack.enter_async_context(open_seat(INSTANT_BOT)), gate) for _ in range(2)]
            result = await run_match(spec, links, DiscardRecorder())
            last_wall, last_cpu = time.perf_counter(), time.process_time()
            moves += 2 * result.steps
            if any(s.status != "DONE" for s in result.seats):
                raise RuntimeError(f"a benchmark match ended in a fault: {result.to_json()}")

    async with anyio.create_task_group() as tg:
        for _ in range(matches):
            tg.start_soon(one)
    return moves / (last_wall - gate.wall0), (last_cpu - gate.cpu0) / moves * 1e6


async def run(quick: bool) -> Section:
    """Every metric of the move path, with seats of the reference mode (the full sandbox)."""
    repeats = 3 if quick else 7
    steps = 300 if quick else 1000
    acts = 1000 if quick else 3000
    n_matches = 100
    section = Section("Move path")
    mode = SEAT_MODES[REFERENCE_MODE]
    cpu, cpu_stored, wall, p50, p99, mps, cpu_conc = [], [], [], [], [], [], []
    async with mode.session() as open_seat:
        await cpu_per_move(open_seat, 50)  # warm-up
        for _ in range(repeats):  # the two recorders alternate
            c, w = await cpu_per_move(open_seat, steps)
            cpu.append(c)
            wall.append(w)
            cpu_stored.append((await cpu_per_move(open_seat, steps, with_storage=True))[0])
            samples = await round_trips_us(open_seat, acts)
            p50.append(percentile(samples, 50))
            p99.append(percentile(samples, 99))
        for _ in range(1 if quick else 3):
            rate, c = await concurrent_moves(open_seat, n_matches, 200)
            mps.append(rate)
            cpu_conc.append(c)
    section.add(Row("server CPU per move (runner + pipes, rps, 1 match)", "µs", cpu, "<= 60 µs"))
    section.add(Row("server CPU per move, with storage + live feed", "µs", cpu_stored))
    section.add(Row("round trip, one instant bot, p50", "µs", p50, "<= 120 µs"))
    section.add(Row("round trip, one instant bot, p99", "µs", p99))
    section.add(Row("wall per step, rps (2 seats asked at once)", "µs", wall))
    section.add(Row(f"moves/s in total, {n_matches} concurrent rps matches", "moves/s", mps, ">= 10,000"))
    section.add(Row(f"server CPU per move, {n_matches} concurrent matches", "µs", cpu_conc))
    section.notes.append(f"seats: '{REFERENCE_MODE}'; {steps} steps per CPU measurement, {acts} act calls per "
                         f"round-trip repeat; {n_matches} matches x 2 seats, episodeSteps 200")
    return section
