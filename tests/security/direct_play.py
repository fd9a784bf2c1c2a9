"""Matches played straight through the match runner, below the HTTP API and its validator.

The layer-independence tests turn layers off with the test-only switches: the validator
(layer 1) is not on this path at all, ``Limits(restricted=False)`` turns the restricted runtime
(layer 2) off, and ``isolation_override`` chooses which of layers 6-8 wrap the seats (None: none
of them). Layers 3-5 are how a seat runs at all; a match's deadlines can only be made generous.

:func:`play_boxed` plays the same match inside an outer box of its own (``tests/sandbox_box.py``:
a PID namespace in cgroups capping processes and memory), for the attacks that would hurt the
machine should the layer under test fail: a fork, a 4 GB allocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from protocol.messages import StepRecord
from server.bots import example_bots
from server.matches.games import get_game, resolve_config
from server.matches.runner import MatchSpec, run_match
from server.matches.seats import ProcessSeat, open_process_seat
from server.sandbox import Limits, SeatLauncher, bot_python
from server.sandbox.isolation import build_isolation, isolation_override
from tests.sandbox_box import outer_box

__all__ = ["Layers", "Played", "play_boxed", "play_direct"]

JSON = Any
PROJECT = Path(__file__).resolve().parents[2]
OPPONENT = dict(example_bots()["rps"])["rps_random"]
MATCH_LIMIT_S = 60.0  # generous: these matches run on a loaded 2-core machine too
Layers = dict[str, bool]  # build_isolation's namespaces/seccomp/filesystem; None below: no bwrap at all


@dataclass(frozen=True)
class Played:
    """What one direct match left behind: seat 0 is the attacker, seat 1 a good example bot."""

    statuses: list[str]
    reasons: list[str | None]
    logs: list[str]
    actions: list[JSON]  # the attacker's, step by step
    exit_codes: list[int | None]  # each seat's process after the match (None: still running)
    pids: list[int]
    survivors: list[int]  # processes left in the seats' sessions after the match

    @property
    def attacker(self) -> tuple[str, str | None, str]:
        return self.statuses[0], self.reasons[0], self.logs[0]


class _Steps:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


def _sessions_members(leaders: set[int]) -> list[int]:
    """Live processes (not zombies) whose session is one of ``leaders``, the leaders excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in leaders:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) in leaders and fields[0] != "Z":
            found.append(int(entry.name))
    return found


async def play_direct(
    launcher: SeatLauncher, code: str, *, limits: Limits, layers: Layers | None, config: dict[str, JSON] | None = None,
    seed: int = 1,
) -> Played:
    """Play rock-paper-scissors: ``code`` (under ``limits``) against a good bot, both seats wrapped in
    ``layers`` (fresh seats, opened by ``launcher``)."""
    isolation = None if layers is None else build_isolation(python=bot_python(), **layers)
    spec = MatchSpec("rps", resolve_config(get_game("rps"), {"episodeSteps": 3, **(config or {})}), seed=seed)
    recorder = _Steps()
    seats: list[ProcessSeat] = []
    with isolation_override(isolation), anyio.fail_after(MATCH_LIMIT_S):
        async with AsyncExitStack() as stack:
            for source, seat_limits in ((code, limits), (OPPONENT, Limits())):
                seats.append(await stack.enter_async_context(open_process_seat(launcher, source, seat_limits)))
            result = await run_match(spec, seats, recorder)
    pids = [seat.process.pid for seat in seats]
    return Played(
        statuses=[s.status for s in result.seats], reasons=[s.reason for s in result.seats],
        logs=[seat.log_text() for seat in seats],
        actions=[step.actions[0] for step in recorder.steps[1:] if step.actions[0] is not None],
        exit_codes=[seat.process.exit_status for seat in seats], pids=pids,
        survivors=_sessions_members(set(pids)),
    )


# Runs in the box: one direct match, its outcome as JSON on the last line of stdout.
_BOXED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import anyio
from server.sandbox import Limits, SeatLauncher
from tests.security.direct_play import play_direct
from dataclasses import asdict

args = json.loads(sys.stdin.read())
# Fresh seats: the layers under test choose them (the fork server runs seats with every layer only).
played = anyio.run(lambda: play_direct(SeatLauncher("fresh"), args["code"], limits=Limits(**args["limits"]),
                                       layers=args["layers"], config=args["config"]))
print(json.dumps(asdict(played)))
"""


def play_boxed(
    code: str, *, limits: Limits, layers: Layers | None, config: dict[str, JSON] | None = None,
    memory_bytes: int = 2 << 30,
) -> Played:
    """:func:`play_direct` in an outer box: at most 64 processes and ``memory_bytes`` for all of it."""
    payload = json.dumps({"code": code, "limits": asdict(limits), "layers": layers, "config": config})
    with outer_box(max_pids=64, memory_bytes=memory_bytes) as box:
        done = subprocess.run(
            box.wrap([sys.executable, "-c", _BOXED, str(PROJECT)]), input=payload, capture_output=True, text=True,
            timeout=MATCH_LIMIT_S + 30, cwd=PROJECT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert done.returncode == 0, done.stderr[-4000:]
    return Played(**json.loads(done.stdout.splitlines()[-1]))
