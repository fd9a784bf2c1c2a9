"""The ladder's unfinished matches as storage counts them for the scheduler, on both backends."""

from __future__ import annotations

import time

import pytest

from server.storage import LadderMatch, MatchStatus, NewSeat, SeatResult, open_storage

pytestmark = pytest.mark.both_backends


async def test_unfinished_ladder_matches_are_the_rated_pending_and_live_ones_with_their_agents(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a, b, c = [await storage.save_agent(user.id, name, "tictactoe", "x") for name in ("a", "b", "c")]
        r = await storage.save_agent(user.id, "r", "rps", "x")
        s = await storage.save_agent(user.id, "s", "rps", "x")
        assert await storage.unfinished_ladder_matches() == []

        def seats(*agents: int) -> list[NewSeat]:
            return [NewSeat(agent, 1) for agent in agents]

        pending = await storage.create_match("tictactoe", 1, {}, 1, seats(b.id, a.id), {"scheduled": True},
                                             rated=True)
        live = await storage.create_match("rps", 1, {}, 2, seats(r.id, s.id),
                                          {"scheduled": True, "featured": True}, rated=True)
        await storage.set_match_live(live.id, time.time())
        # Not the ladder's: a challenge, and a match of one agent against itself (never rated).
        await storage.create_match("tictactoe", 1, {}, 3, seats(a.id, c.id))
        await storage.create_match("tictactoe", 1, {}, 4, seats(c.id, c.id), {"scheduled": True}, rated=True)
        # Ended: finished, and aborted.
        ended = await storage.create_match("tictactoe", 1, {}, 5, seats(a.id, c.id), {"scheduled": True},
                                           rated=True)
        await storage.finish_match(ended.id, MatchStatus.FINISHED, None, [
            SeatResult(seat.agent_id, seat.agent_name, seat.owner, seat.version, "DONE", 0.0, None)
            for seat in ended.seats], time.time())
        assert await storage.unfinished_ladder_matches() == [
            LadderMatch(pending.id, "tictactoe", False, (b.id, a.id)),
            LadderMatch(live.id, "rps", True, (r.id, s.id)),
        ]
        assert await storage.abort_unfinished("stopped") == 4
        assert await storage.unfinished_ladder_matches() == []
