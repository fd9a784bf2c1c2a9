"""The event log a page at a time, as stored text; and reasons stored short, whoever built them."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from protocol.codec import encode
from protocol.errors import MAX_REASON_CHARS, MatchNotFound
from protocol.messages import SeatTiming, StepRecord
from server.storage import MatchStatus, SeatResult, open_storage
from tests.storage.raw import query
from tests.storage.test_storage import done_seats, make_step, two_agent_match

pytestmark = pytest.mark.both_backends


async def test_pages_of_the_event_log_are_the_stored_text_in_step_order(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        steps = [make_step(i) for i in range(1200)]
        await storage.append_steps(match.id, steps[:700])
        await storage.append_steps(match.id, steps[700:])  # still queued: pages include them
        texts = [encode(s).decode() for s in steps]

        page = await storage.get_step_texts(match.id, 0, 500)
        assert page == [(i, texts[i]) for i in range(500)]
        assert await storage.get_step_texts(match.id, 1150, 500) == [(i, texts[i]) for i in range(1150, 1200)]
        assert await storage.get_step_texts(match.id, 1200, 10) == []
        assert await storage.get_last_step_texts(match.id, 3) == [(i, texts[i]) for i in (1197, 1198, 1199)]
        assert await storage.get_last_step_texts(match.id, 5000) == list(enumerate(texts))
        with pytest.raises(MatchNotFound):
            await storage.get_step_texts(match.id + 1, 0, 10)
        with pytest.raises(MatchNotFound):
            await storage.get_last_step_texts(10**30, 10)  # beyond SQLite's integers: no such match


async def test_an_old_row_comes_out_as_this_version_encodes_it(db_url: str) -> None:
    """Rows stored before ``SeatTiming.allowance_s`` existed come out with it (as null)."""
    old = ('{"step":1,"actions":[0,null],"statuses":["ACTIVE","INACTIVE"],"rewards":[0.0,0.0],"state":{},'
           '"timing":[{"wall_s":0.01,"cpu_s":0.002,"bank_s":9.5},null]}')
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(0)])
        await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0)
    query(db_url, "INSERT INTO match_steps (match_id, step, record) VALUES (?, 1, ?)", match.id, old)
    async with open_storage(db_url) as storage:
        [(step, text)] = await storage.get_step_texts(match.id, 1, 10)
    expected = StepRecord(step=1, actions=[0, None], statuses=["ACTIVE", "INACTIVE"], rewards=[0.0, 0.0], state={},
                          timing=[SeatTiming(wall_s=0.01, cpu_s=0.002, bank_s=9.5, allowance_s=None), None])
    assert step == 1 and text == encode(expected).decode()


async def test_every_stored_reason_is_a_short_prefix(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        move = "x" * 1_000_000
        seats = [
            SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "INVALID", -1.0, f"illegal action: {move!r}")
            if i == 0 else SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", 1.0, None)
            for i, s in enumerate(match.seats)
        ]
        final = await storage.finish_match(match.id, MatchStatus.ABORTED, f"aborted: {move}", seats, 1.0)
        for record in (final, await storage.get_match(match.id)):
            reason = record.seats[0].reason
            assert reason is not None and reason.startswith("illegal action: 'xxx") and reason.endswith("…")
            assert len(reason) == MAX_REASON_CHARS + 1
            assert record.reason is not None and len(record.reason) == MAX_REASON_CHARS + 1
            assert record.seats[1].reason is None


async def test_reads_and_writes_cancelled_at_any_point_leave_the_storage_working(db_url: str) -> None:
    """A request cancelled half-way (its client left while a replay page was being read, a
    health probe timed out) must not leave a connection inside a transaction."""
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(i) for i in range(50)])
        for ticks in range(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(storage.get_step_texts, match.id, 0, 50)
                tg.start_soon(storage.save_log, match.id, 0, f"log {ticks}")
                for _ in range(ticks):
                    await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
        assert len(await storage.get_step_texts(match.id, 0, 100)) == 50
        await storage.save_log(match.id, 1, "still writable")
        assert await storage.get_log(match.id, 1) == "still writable"
