"""The step writer stores an encoded step's text as is: the same row as encoding the step there."""

from __future__ import annotations

import pytest

from protocol.codec import encode
from protocol.errors import StorageError
from protocol.messages import SeatTiming, StepRecord
from server.storage import EncodedStep, MatchStatus, is_postgres_url, open_storage
from tests.storage.raw import query
from tests.storage.test_storage import done_seats, make_step, two_agent_match

pytestmark = pytest.mark.both_backends


def rows(url: str, match_id: int) -> list[tuple[object, ...]]:
    """The match's steps as stored: step, the column's type (text, not a blob or jsonb), text."""
    kind = "pg_typeof(record)::text" if is_postgres_url(url) else "typeof(record)"
    return query(url, f"SELECT step, {kind}, record FROM match_steps WHERE match_id = ? ORDER BY step", match_id)


async def test_encoded_and_plain_steps_are_stored_alike(db_url: str) -> None:
    steps = [make_step(i) for i in range(6)]
    steps.append(StepRecord(step=6, actions=["é ✓ \u2028"], statuses=["DONE"], rewards=[1.0], state={"x": None},
                            timing=[SeatTiming(wall_s=0.5, cpu_s=0.25, bank_s=9.0, allowance_s=0.1)]))
    async with open_storage(db_url) as storage:
        plain, _, _ = await two_agent_match(storage, "-plain")
        await storage.append_steps(plain.id, steps[:3])
        await storage.append_steps(plain.id, steps[3:])
        await storage.finish_match(plain.id, MatchStatus.FINISHED, None, done_seats(plain), 1.0)
        encoded, _, _ = await two_agent_match(storage, "-encoded")
        await storage.append_steps(encoded.id, [EncodedStep.of(s) for s in steps[:3]])
        await storage.append_steps(encoded.id, [steps[3], EncodedStep.of(steps[4]), *map(EncodedStep.of, steps[5:])])
        final = await storage.finish_match(encoded.id, MatchStatus.FINISHED, None, done_seats(encoded), 1.0)
        assert final.steps == len(steps)
        assert await storage.get_steps(encoded.id) == steps

    stored = rows(db_url, encoded.id)
    assert stored == rows(db_url, plain.id)
    assert stored == [(s.step, "text", encode(s).decode()) for s in steps]  # the stored format, unchanged


async def test_a_failed_batch_is_rolled_back_whole_and_the_others_stored(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        good, _, _ = await two_agent_match(storage, "-good")
        bad, _, _ = await two_agent_match(storage, "-bad")
        await storage.append_steps(bad.id, [EncodedStep.of(make_step(0))])
        await storage.flush()
        # one batch: a duplicate step of `bad` among new steps of both matches
        await storage.append_steps(good.id, [EncodedStep.of(make_step(i)) for i in range(3)])
        await storage.append_steps(bad.id, [EncodedStep.of(make_step(1)), EncodedStep.of(make_step(0))])
        with pytest.raises(StorageError, match=f"match {bad.id}"):
            await storage.flush()
        with pytest.raises(StorageError, match=f"match {bad.id}"):
            await storage.finish_match(bad.id, MatchStatus.FINISHED, None, done_seats(bad), 1.0)
        await storage.finish_match(good.id, MatchStatus.FINISHED, None, done_seats(good), 1.0)
        assert [s.step for s in await storage.get_steps(good.id)] == [0, 1, 2]
        assert [s.step for s in await storage.get_steps(bad.id)] == [0]  # its failed rows left nothing
        assert (await storage.get_match(bad.id)).steps == 1
