"""The storage, on both backends, and issue 10: standings count a match once per agent, only ladder matches are
rated, ids beyond 64 bits name nothing, users keep the address they signed up from."""

from __future__ import annotations

import time

import pytest

from protocol.errors import AgentNotFound, MatchNotFound, ProtocolError, UserNotFound
from server.storage import MAX_ROW_ID, MatchStatus, NewSeat, SeatResult, Storage, open_storage

pytestmark = pytest.mark.both_backends


async def play(storage: Storage, agents: list[int], rewards: list[float], statuses: list[str], *,
               rated: bool = False) -> int:
    match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a, 1) for a in agents], rated=rated)
    seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, status, reward, None)
             for s, reward, status in zip(match.seats, rewards, statuses, strict=True)]
    await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())
    return match.id


async def test_standings_count_each_match_once_per_agent(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a, b = [(await storage.save_agent(user.id, n, "tictactoe", "x")).id for n in ("a", "b")]
        await play(storage, [a, a], [1, -1], ["DONE", "DONE"])  # a beats itself: one draw
        await play(storage, [a, a], [0, 0], ["DONE", "DONE"])  # a ties itself: one draw
        await play(storage, [a, a], [1, -1], ["DONE", "TIMEOUT"])  # one draw, one fault
        ladder_match = await play(storage, [a, b], [1, -1], ["DONE", "DONE"], rated=True)  # a ladder win
        await play(storage, [b, a], [1, -1], ["DONE", "INVALID"])  # a challenge loss
        rows = {r["name"]: r for r in await storage.standings("tictactoe")}
        summary = {name: (r["matches"], r["wins"], r["draws"], r["losses"], r["faults"], r["points"])
                   for name, r in rows.items()}
        assert summary == {"a": (5, 1, 3, 1, 2, 2.5), "b": (2, 1, 0, 1, 0, 1.0)}
        ladder = {name: (r["rated_wins"], r["rated_draws"], r["rated_losses"]) for name, r in rows.items()}
        assert ladder == {"a": (1, 0, 0), "b": (0, 0, 1)}
        # The ladder match alone is rated (with its result); the mirrors and the challenge never are.
        assert await storage.rate_finished() == []
        ratings = await storage.get_ratings([a, b])
        assert ratings[a].matches == ratings[b].matches == 1 and ratings[a].last_match_id == ladder_match
        board = {r["name"]: r for r in await storage.leaderboard("tictactoe")}
        assert board["a"]["rated_matches"] == 1 and board["a"]["matches"] == 5


async def test_ids_beyond_64_bits_name_nothing(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h", created_from="203.0.113.5")
        assert (await storage.user_by_token_hash("h")) == user and user.created_from == "203.0.113.5"
        assert (await storage.get_user_by_name("alice")) == user
        agent = await storage.save_agent(user.id, "a", "tictactoe", "x")
        for huge in (MAX_ROW_ID + 1, 2**64, 10**30, -(2**63) - 1):
            with pytest.raises(AgentNotFound):
                await storage.get_agent(huge)
            with pytest.raises(AgentNotFound):
                await storage.get_agent_code(huge, 1)
            with pytest.raises(AgentNotFound):
                await storage.update_agent(huge, disabled=True)
            with pytest.raises(MatchNotFound):
                await storage.get_match(huge)
            with pytest.raises(MatchNotFound):
                await storage.get_steps(huge)
            with pytest.raises(UserNotFound):
                await storage.rotate_token(huge, "h2")
            with pytest.raises(AgentNotFound):
                await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(agent.id, 1), NewSeat(huge, 1)])
            assert await storage.list_matches(agent_id=huge) == ([], None)
            assert await storage.list_agents(user_id=huge) == ([], None)
            assert await storage.get_log(huge, 0) is None
            assert set(await storage.get_ratings([agent.id, huge])) == {agent.id}
            assert set(await storage.get_agents([agent.id, huge, agent.id])) == {agent.id}
        with pytest.raises(ProtocolError, match="cursor"):
            await storage.list_matches(cursor=str(MAX_ROW_ID + 1))
        # Any other integer too large for a column is refused, not an overflow of the driver.
        with pytest.raises(ProtocolError) as caught:
            await storage.create_match("tictactoe", 1, {}, 2**64, [NewSeat(agent.id, 1), NewSeat(agent.id, 1)])
        assert caught.value.code == "out_of_range"
        assert (await storage.get_agents([])) == {}
