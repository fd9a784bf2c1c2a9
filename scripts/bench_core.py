#!/usr/bin/env python3
"""Core benchmark: whole matches, server overhead per move, seat start-up, events stored.

Runs every measurement several times in one run and prints medians with min-max, so the
numbers can be compared side by side on a noisy machine. Usage:

    .venv/bin/python scripts/bench_core.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import codec  # noqa: E402
from protocol.messages import StepRecord  # noqa: E402
from server.matches.games import get_game, resolve_config  # noqa: E402
from server.matches.runner import MatchSpec, run_match  # noqa: E402
from server.matches.seats import SeatStart, open_process_seat  # noqa: E402
from server.sandbox import Limits  # noqa: E402
from server.storage import MatchStatus, NewSeat, SeatResult, open_sqlite  # noqa: E402

FIRST_FREE = "def agent(obs, config):\n    return obs.board.index(0)\n"
ROCK = "def agent(obs, config):\n    return 0\n"


class _Discard:
    async def record_step(self, record: StepRecord) -> None:
        pass


async def _match(game: str, code: str, config: dict[str, Any] | None = None) -> int:
    spec = MatchSpec(game, resolve_config(get_game(game), config), seed=1)
    async with AsyncExitStack() as stack:
        links = [await stack.enter_async_context(open_process_seat(code, Limits())) for _ in range(2)]
        result = await run_match(spec, links, _Discard())
    return result.steps


async def matches_per_second(in_flight: int, total: int) -> float:
    started = time.perf_counter()
    limiter = anyio.Semaphore(in_flight)

    async def one() -> None:
        async with limiter:
            await _match("tictactoe", FIRST_FREE)

    async with anyio.create_task_group() as tg:
        for _ in range(total):
            tg.start_soon(one)
    return total / (time.perf_counter() - started)


async def move_costs(steps: int = 1000) -> tuple[float, float]:
    """Server CPU per move and wall time per move, in µs, on rps between two instant bots."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    played = await _match("rps", ROCK, {"episodeSteps": steps + 1})
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    moves = played * 2
    return cpu / moves * 1e6, wall / played * 1e6


async def startup_ms() -> float:
    """From spawning a seat until its bot says ready."""
    config = resolve_config(get_game("tictactoe"), None)
    started = time.perf_counter()
    async with open_process_seat(FIRST_FREE, Limits()) as seat:
        await seat.start(SeatStart(seat=0, seed=1, configuration=config))
        ready = time.perf_counter()
    return (ready - started) * 1e3


async def events_per_second(total: int = 20_000, matches: int = 20) -> float:
    record = StepRecord(step=0, actions=[3, None], statuses=["ACTIVE", "INACTIVE"], rewards=[0.0, 0.0],
                        state={"board": [0] * 42, "to_act": [0]})
    with tempfile.TemporaryDirectory() as tmp:
        async with open_sqlite(Path(tmp) / "bench.db") as storage:
            user = await storage.create_user("bench", "x")
            agent = await storage.save_agent(user.id, "bot", "connectx", ROCK)
            ids = [
                (await storage.create_match("connectx", 1, {}, 1, [NewSeat(agent.id, 1)] * 2)).id
                for _ in range(matches)
            ]
            started = time.perf_counter()
            per_match = total // matches
            for step in range(per_match):
                for match_id in ids:
                    await storage.append_steps(match_id, [StepRecord(**{**_fields(record), "step": step})])
            seats = [SeatResult(agent.id, "bot", "bench", 1)] * 2
            for match_id in ids:
                await storage.finish_match(match_id, MatchStatus.FINISHED, None, seats, time.time())
            return per_match * matches / (time.perf_counter() - started)


def _fields(record: StepRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


async def _repeat(fn: Callable[[], Awaitable[float]], repeats: int) -> list[float]:
    return [await fn() for _ in range(repeats)]


def _row(name: str, unit: str, values: list[float]) -> dict[str, Any]:
    return {"name": name, "unit": unit, "median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(repeats: int) -> list[dict[str, Any]]:
    rows = [
        _row("tictactoe matches/s, 1 in flight", "matches/s", await _repeat(lambda: matches_per_second(1, 40), repeats)),
        _row("tictactoe matches/s, 4 in flight", "matches/s", await _repeat(lambda: matches_per_second(4, 80), repeats)),
    ]
    costs = [await move_costs() for _ in range(repeats)]
    rows.append(_row("server CPU per move", "µs", [c[0] for c in costs]))
    rows.append(_row("round trip per step (rps, 2 seats)", "µs", [c[1] for c in costs]))
    rows.append(_row("seat start-up to ready", "ms", [await startup_ms() for _ in range(max(repeats, 20))]))
    rows.append(_row("events stored", "events/s", await _repeat(events_per_second, repeats)))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    table = anyio.run(main, args.repeats)
    width = max(len(r["name"]) for r in table)
    print(f"{'benchmark':<{width}}  {'median':>12}  {'min-max':>21}  unit")
    for r in table:
        print(f"{r['name']:<{width}}  {r['median']:>12.1f}  {r['min']:>10.1f}-{r['max']:<10.1f}  {r['unit']}")
    if args.json:
        args.json.write_bytes(codec.encode_json(table, pretty=True))
