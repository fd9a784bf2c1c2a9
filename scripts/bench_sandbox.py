#!/usr/bin/env python3
"""Sandbox benchmark: seat start-up and per-move latency with all layers against none.

"All layers" is every isolation layer this machine supports with the restricted runtime
(layer 2) on; "no layers" runs the bare runtime with neither (``Limits(restricted=False)``),
so the ratio prices the whole sandbox. Seat start-up is from spawning the process until the
bot answers ``ready``; a move is one ``act`` round trip to a bot that answers at once. The two
configurations alternate within each round, so a noisy machine slows both alike; medians (and
min-max) are printed side by side with their ratio. Usage:

    .venv/bin/python scripts/bench_sandbox.py [--rounds 40] [--moves 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.matches.seats import SeatStart, open_process_seat  # noqa: E402
from server.sandbox import Limits, SeatLauncher  # noqa: E402
from server.sandbox.isolation import Isolation, default_isolation, isolation_override  # noqa: E402
from server.sandbox.process import bot_python  # noqa: E402
from server.sandbox.view import RUNTIME_PATH  # noqa: E402

BOT = "def agent(obs, config):\n    return 0\n"


async def one_seat(launcher: SeatLauncher, isolation: Isolation | None, moves: int) -> tuple[float, list[float]]:
    """Start one seat under ``isolation``: seconds until ready, then the round trip of each move.

    Layer 2 is on with isolation and off without: no isolation means no layer at all.
    """
    limits = Limits(restricted=isolation is not None)
    with isolation_override(isolation):
        started = time.perf_counter()
        async with open_process_seat(launcher, BOT, limits) as seat:
            await seat.start(SeatStart(seat=0, seed=1, configuration={}))
            ready_s = time.perf_counter() - started
            round_trips = []
            for step in range(1, moves + 1):
                sent = time.perf_counter()
                await seat.act(step, {"step": step})
                round_trips.append(time.perf_counter() - sent)
    return ready_s, round_trips


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def bench(rounds: int, moves: int) -> dict[str, dict[str, dict[str, float]]]:
    isolation = default_isolation(bot_python(), RUNTIME_PATH)  # probed here, outside the timings
    if isolation is None:
        raise SystemExit("no isolation layer is available on this machine: see `arena doctor`")
    configs: dict[str, Isolation | None] = {"all layers": isolation, "no layers": None}
    fresh = SeatLauncher("fresh")  # a fresh process per seat, wrapped in each configuration's layers
    starts: dict[str, list[float]] = {name: [] for name in configs}
    acts: dict[str, list[float]] = {name: [] for name in configs}
    for config in configs.values():  # warm-up: page cache, the first filter copy
        await one_seat(fresh, config, 5)
    for _ in range(rounds):
        for name, config in configs.items():
            ready_s, round_trips = await one_seat(fresh, config, moves)
            starts[name].append(ready_s)
            acts[name].append(statistics.median(round_trips))
    return {name: {"startup_s": summary(starts[name]), "move_s": summary(acts[name])} for name in configs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40, help="seats started per configuration")
    parser.add_argument("--moves", type=int, default=200, help="moves asked of each seat")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = anyio.run(bench, args.rounds, args.moves)
    on, off = results["all layers"], results["no layers"]
    print(f"{'':28}{'all layers':>22}{'no layers':>22}{'ratio':>8}")
    for key, label, unit, scale in (("startup_s", "seat start-up until ready", "ms", 1e3),
                                    ("move_s", "move round trip", "us", 1e6)):
        cells = [f"{r[key]['median'] * scale:8.2f} {unit} ({r[key]['min'] * scale:.1f}-{r[key]['max'] * scale:.1f})"
                 for r in (on, off)]
        print(f"{label:28}{cells[0]:>22}{cells[1]:>22}{on[key]['median'] / off[key]['median']:7.2f}x")
    print(f"(medians, min-max; {args.rounds} seats per configuration, {args.moves} moves each)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
