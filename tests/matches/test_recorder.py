"""The one way a match is assembled: ``open_links`` opens its seats, ``StepLog`` records its steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel

from protocol.messages import StepRecord
from server.matches.games import get_game, resolve_config
from server.matches.recorder import StepLog
from server.matches.repro import ScriptedSeat
from server.matches.runner import MatchSpec, run_match
from server.matches.seats import AgentLink, ProcessSeat, open_links
from server.sandbox import Limits, SeatLauncher

FIRST_FREE = "def agent(obs, config):\n    print('thinking')\n    return obs.board.index(0)\n"


def step(i: int, time: float | None = 1733600000.5) -> StepRecord:
    return StepRecord(step=i, actions=[i, None], statuses=["INACTIVE", "ACTIVE"], rewards=[0.0, 0.0], state={},
                      time=time)


async def test_the_log_keeps_every_step_and_hands_each_to_its_hooks_in_order() -> None:
    seen: list[tuple[str, int]] = []

    async def first(record: StepRecord) -> None:
        seen.append(("first", record.step))

    async def second(record: StepRecord) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(("second", record.step))

    log = StepLog(first, second)
    for i in range(3):
        await log.record_step(step(i))
    assert [s.step for s in log.steps] == [0, 1, 2] and log.steps[0].time == 1733600000.5
    assert seen == [("first", 0), ("second", 0), ("first", 1), ("second", 1), ("first", 2), ("second", 2)]


async def test_a_log_may_keep_nothing_or_drop_the_wall_clock() -> None:
    hooked: list[StepRecord] = []

    async def hook(record: StepRecord) -> None:
        hooked.append(record)

    streaming = StepLog(hook, keep=False)
    await streaming.record_step(step(0))
    assert streaming.steps == [] and [r.step for r in hooked] == [0]

    local = StepLog(hook, keep_time=False)
    await local.record_step(step(1))
    assert local.steps[0].time is None and hooked[-1].time is None
    assert local.steps[0] == step(1, time=None)


async def test_open_links_opens_every_kind_of_seat_in_order_and_closes_them(launcher: SeatLauncher) -> None:
    events: list[str] = []

    @contextmanager
    def remote_like(seat: int) -> Iterator[AgentLink]:
        events.append(f"open {seat}")
        try:
            yield ScriptedSeat(seat, {})
        finally:
            events.append(f"close {seat}")

    scripted = ScriptedSeat(2, {})
    with anyio.fail_after(20):
        async with open_links(launcher, [FIRST_FREE, remote_like(1), scripted], Limits(), label="match 9") as links:
            assert isinstance(links[0], ProcessSeat) and links[0].process.label == "match 9 seat 0"
            assert isinstance(links[1], ScriptedSeat) and links[1].seat == 1 and links[2] is scripted
            assert events == ["open 1"]
            process = links[0].process
            assert process.exit_status is None
    assert events == ["open 1", "close 1"]
    assert process.exit_status is not None  # killed and reaped with the block


async def test_a_match_assembled_by_open_links_plays_and_logs(launcher: SeatLauncher) -> None:
    config = resolve_config(get_game("tictactoe"), {})
    log = StepLog(keep_time=False)
    with anyio.fail_after(20):
        async with open_links(launcher, [FIRST_FREE, FIRST_FREE], Limits()) as links:
            result = await run_match(MatchSpec("tictactoe", config, 5), links, log)
            logs = [link.log_text() for link in links]
    assert result.termination == "win" and result.winner == 0
    assert [s.step for s in log.steps] == list(range(result.steps + 1))
    assert all(s.time is None for s in log.steps) and "thinking" in logs[0]
