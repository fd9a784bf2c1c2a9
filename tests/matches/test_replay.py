"""The streamed replay document: equal to the whole document, built a page at a time from storage."""

from __future__ import annotations

from pathlib import Path

from protocol.codec import decode_json, encode_json
from server.matches.replay import replay_chunks, replay_document
from server.storage import MatchRecord, MatchStatus, Storage, open_sqlite
from tests.storage.test_storage import done_seats, make_step, two_agent_match


async def whole_document(storage: Storage, match: MatchRecord) -> bytes:
    """The document as the replay endpoint built it before it was streamed: every step decoded."""
    steps = await storage.get_steps(match.id)
    seats = [{"agent_id": s.agent_id, "name": s.agent_name, "owner": s.owner, "version": s.version,
              "status": s.status, "reward": s.reward, "reason": s.reason} for s in match.seats]
    return encode_json(replay_document(
        game=match.game, rules_version=match.rules_version, config=match.config, seed=match.seed, seats=seats,
        steps=steps, match_id=match.id, status=match.status.value, reason=match.reason,
    ))


async def test_the_streamed_replay_is_the_whole_document_byte_for_byte_in_bounded_chunks(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "arena.db") as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(i) for i in range(2345)])
        match = await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0)
        chunks = [chunk async for chunk in replay_chunks(storage, match, page_steps=100)]
        expected = await whole_document(storage, match)

        empty, _, _ = await two_agent_match(storage, "-2")  # no step stored yet
        empty_chunks = b"".join([chunk async for chunk in replay_chunks(storage, empty)])
        assert empty_chunks == await whole_document(storage, empty)

    assert b"".join(chunks) == expected
    assert len(chunks) == 2 + 24  # the head, a chunk per page of 100 steps, the closing bracket
    page = max(len(c) for c in chunks)
    assert page < 2 * len(expected) / 24  # each about one page: never the whole document at once


async def test_a_page_of_the_replay(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "arena.db") as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(i) for i in range(250)])
        whole = decode_json(await whole_document(storage, match))

        async def page(from_step: int, limit: int) -> dict[str, object]:
            body = b"".join([c async for c in replay_chunks(storage, match, from_step=from_step, limit=limit,
                                                            page_steps=7)])
            doc: dict[str, object] = decode_json(body)
            return doc

        first = await page(0, 100)
        assert first["steps"] == whole["steps"][:100] and first["next_step"] == 100
        assert first["seats"] == whole["seats"] and first["game"] == whole["game"]
        last = await page(200, 100)
        assert last["steps"] == whole["steps"][200:] and last["next_step"] is None
        exact = await page(150, 100)
        assert exact["steps"] == whole["steps"][150:] and exact["next_step"] is None
        assert (await page(400, 10))["steps"] == []
