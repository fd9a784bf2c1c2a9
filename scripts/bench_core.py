#!/usr/bin/env python3
"""Core benchmark: whole matches, server overhead per move, seat start-up, events stored.

A thin front for the suite's modules (``scripts/bench/``; ``scripts/bench/run`` runs them all).
Runs every measurement several times in one run and prints medians with min-max, so the
numbers can be compared side by side on a noisy machine. Usage:

    .venv/bin/python scripts/bench_core.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import codec  # noqa: E402
from scripts.bench.moves import cpu_per_move  # noqa: E402
from scripts.bench.moves import matches_per_second as _matches_per_second  # noqa: E402
from scripts.bench.startup import REFERENCE_MODE, SEAT_MODES, startup_ms  # noqa: E402
from scripts.bench.storage import events_per_second  # noqa: E402

FIRST_FREE = "def agent(obs, config):\n    return obs.board.index(0)\n"


async def matches_per_second(in_flight: int, total: int) -> float:
    """Whole tictactoe matches per second between two first-free-cell bots, all layers on."""
    async with SEAT_MODES[REFERENCE_MODE].session() as open_seat:
        return await _matches_per_second(open_seat, "tictactoe", [FIRST_FREE] * 2, in_flight, total)


async def move_costs(steps: int = 1000) -> tuple[float, float]:
    """Server CPU per move and wall time per step, in µs, on rps between two instant bots."""
    async with SEAT_MODES[REFERENCE_MODE].session() as open_seat:
        return await cpu_per_move(open_seat, steps)


async def _repeat(fn: Callable[[], Awaitable[float]], repeats: int) -> list[float]:
    return [await fn() for _ in range(repeats)]


def _row(name: str, unit: str, values: list[float]) -> dict[str, Any]:
    return {"name": name, "unit": unit, "median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(repeats: int) -> list[dict[str, Any]]:
    rows = [
        _row("tictactoe matches/s, 1 in flight", "matches/s",
             await _repeat(lambda: matches_per_second(1, 40), repeats)),
        _row("tictactoe matches/s, 4 in flight", "matches/s",
             await _repeat(lambda: matches_per_second(4, 80), repeats)),
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
