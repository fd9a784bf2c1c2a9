#!/usr/bin/env python3
"""Codec micro-benchmark: µs per call of the hot decodes and of the seat ``act`` encode.

Each case runs ``--number`` calls per timing, ``--repeats`` timings; prints the median and
min-max per call. Usage:

    .venv/bin/python scripts/bench_codec.py [--repeats 7] [--number 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import codec  # noqa: E402
from protocol.messages import Act  # noqa: E402

SEAT_LINE = b'{"type":"action","step":12,"action":3,"cpu_s":1.2e-05}'
AGENT_FRAME = b'{"type":"action","match_id":1234,"step":12,"action":3,"seat":0}'
# A connectx observation as the runner sends it: the board, the mark, the step, the bank.
ACT = Act(step=12, observation={"board": [0] * 42, "mark": 1, "step": 12, "remainingOverageTime": 59.5})
CASES: dict[str, Callable[[], object]] = {
    "decode_seat(action line)": lambda: codec.decode_seat(SEAT_LINE),
    "decode_agent_client(action frame)": lambda: codec.decode_agent_client(AGENT_FRAME),
    "encode(Act)": lambda: codec.encode(ACT),
}


def per_call_us(fn: Callable[[], object], number: int, repeats: int) -> list[float]:
    """Per-call times in µs, one per repeat."""
    return [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    width = max(map(len, CASES))
    print(f"{'case':<{width}}  {'median µs':>9}  min-max µs")
    for name, fn in CASES.items():
        times = per_call_us(fn, args.number, args.repeats)
        print(f"{name:<{width}}  {statistics.median(times):>9.3f}  {min(times):.3f}-{max(times):.3f}")


if __name__ == "__main__":
    main()
