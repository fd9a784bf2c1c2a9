"""Moves started while every core is taken (``server/matches/cores.py``, ``runner.py``), with
real forked seats: a move that answers at once never waits for a core; one that thinks on is
paused where it is (its process stopped) until a core is handed to it, and the pause is charged
to nothing, not even past its ``actTimeout``."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from protocol.messages import StepRecord
from server.matches.cores import CoreGate
from server.matches.games import get_game, resolve_config
from server.matches.runner import PROVISIONAL_S, MatchResult, MatchSpec, run_match
from server.matches.seats import ProcessSeat, open_process_seat
from server.sandbox import Limits, SeatLauncher
from tests.server.test_fair_time import burner

INSTANT = "def agent(observation, configuration):\n    return 0\n"
BURN_S = 0.1
BURNER = burner(BURN_S)


class Steps:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def bot_state(pid: int) -> str:
    """The state of the process that runs the bot: the seat's own for a forked seat; for a fresh
    one, the innermost below bubblewrap (``pid``)."""
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            return state_of(pid)
        pid = int(children[0])


async def play_gated(
    launcher: SeatLauncher, code: str, config: dict[str, object], gate: CoreGate, *, release_after_s: float,
    on_links: list[ProcessSeat] | None = None,
) -> tuple[MatchResult, list[StepRecord]]:
    """An rps match between two seats of ``code`` under ``gate``, whose only place the test holds
    until ``release_after_s`` have passed."""
    spec = MatchSpec("rps", resolve_config(get_game("rps"), config), seed=3)
    steps = Steps()
    async with AsyncExitStack() as stack:
        links = [await stack.enter_async_context(open_process_seat(launcher, code, Limits())) for _ in range(2)]
        if on_links is not None:
            on_links += links
        async with anyio.create_task_group() as tg:

            async def release() -> None:
                await anyio.sleep(release_after_s)
                gate.release()

            tg.start_soon(release)
            with anyio.fail_after(30):
                result = await run_match(spec, links, steps, gate.share("test"))
            tg.cancel_scope.cancel()
    return result, steps.steps


@pytest.mark.parametrize("mode", ["auto", "fresh"])
async def test_a_move_that_thinks_on_is_paused_for_a_core_and_charged_nothing(
    launcher: SeatLauncher, mode: str,
) -> None:
    """In both seat modes: a forked seat is stopped through its pidfd, a fresh one through its
    sandbox's process group."""
    if mode == "fresh":
        launcher = SeatLauncher("fresh")
    gate = CoreGate(1)
    assert await gate.acquire() == 0.0  # every core taken, for 1.5 s: past the 1 s a move may take
    held_s = 1.5
    links: list[ProcessSeat] = []
    started = time.monotonic()

    states: list[str] = []

    async def watch() -> None:
        await anyio.sleep(0.8)  # the seats are up and into their first move, paused after 5 ms
        states.extend(bot_state(link.process.pid) for link in links)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        result, steps = await play_gated(
            launcher, BURNER, {"episodeSteps": 2, "actTimeout": 1, "remainingOverageTime": 0}, gate,
            release_after_s=held_s, on_links=links)
    assert states == ["T", "T"], states  # both stopped where they were, using no CPU
    assert [seat.status for seat in result.seats] == ["DONE", "DONE"], result
    [move] = steps[1:]
    assert move.timing is not None
    timings = [t for t in move.timing if t is not None]
    # Each waited out the held place (the second also the first's move), and was charged only its own CPU.
    assert all(t.wait_s is not None and t.wait_s >= held_s - 0.5 for t in timings), timings
    assert all(t.wall_s < 1.0 for t in timings), timings
    assert time.monotonic() - started >= held_s
    assert gate.busy == 0 and gate.waiting == 0


async def test_moves_that_answer_at_once_need_no_core(launcher: SeatLauncher) -> None:
    gate = CoreGate(1)
    await gate.acquire()  # held all through the match, unless it waits for it (then 5 s later)
    result, steps = await play_gated(launcher, INSTANT, {"episodeSteps": 40}, gate, release_after_s=5.0)
    assert [seat.status for seat in result.seats] == ["DONE", "DONE"], result
    timings = [t for step in steps[1:] for t in (step.timing or []) if t is not None]
    assert len(timings) == 2 * 39
    paused = [t for t in timings if t.wait_s]
    # Each answers in well under PROVISIONAL_S; a loaded machine may delay a few past it.
    assert len(paused) <= len(timings) // 4, (PROVISIONAL_S, paused)
