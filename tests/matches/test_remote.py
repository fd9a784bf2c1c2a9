"""Which remote seat a frame about a match is for, or the typed refusal that says why none is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from server.matches.remote import AgentConnection, Refusal, RefusalCode, RemoteAgents, RemoteSeat
from server.storage import AgentRecord


def remote_agent(agent_id: int, user_id: int) -> AgentRecord:
    return AgentRecord(id=agent_id, user_id=user_id, owner=f"user{user_id}", name=f"agent{agent_id}",
                       game="tictactoe", version=1, remote=True, code=None, created_at=0.0, updated_at=0.0)


@contextmanager
def connection(user_id: int, agents: frozenset[int] | None = None) -> Iterator[AgentConnection]:
    """A user's agent connection for the block (its outbox closed at the end)."""
    conn = AgentConnection(user_id, agents)
    try:
        yield conn
    finally:
        conn.close()


async def test_a_frame_finds_its_seat_or_a_refusal_with_its_code() -> None:
    remotes = RemoteAgents()
    # bob's second connection plays another of his agents only
    with connection(1) as alice, connection(2) as bob, connection(2, frozenset({99})) as narrowed:
        unknown = remotes.agent_seat(alice, 5, None, 1)
        assert unknown == Refusal(RefusalCode.UNKNOWN_MATCH, "no live match 5 has a remote seat")
        with remotes.open_seat(5, 0, remote_agent(10, 1)) as mine, remotes.open_seat(5, 1, remote_agent(20, 2)):
            assert remotes.agent_seat(alice, 5, None, 1) is mine
            assert remotes.agent_seat(alice, 5, 0, 1) is mine
            assert remotes.agent_seat(alice, 5, 1, 1) == Refusal(
                RefusalCode.NOT_YOUR_SEAT, "this connection does not play seat 1 of match 5")
            refused = remotes.agent_seat(narrowed, 5, None, 1)
            assert isinstance(refused, Refusal) and refused.code is RefusalCode.NOT_YOUR_SEAT
            theirs = remotes.agent_seat(bob, 5, None, 1)
            assert isinstance(theirs, RemoteSeat) and theirs.seat == 1
        over = remotes.agent_seat(alice, 5, None, 1)
    assert over == Refusal(RefusalCode.MATCH_OVER, "match 5 is over")
    assert over.code == "match_over"  # the error frame's code, as the wire spells it


async def test_one_connection_playing_two_seats_must_name_one() -> None:
    remotes = RemoteAgents()
    with connection(1) as alice, remotes.open_seat(6, 0, remote_agent(10, 1)) as first, \
            remotes.open_seat(6, 1, remote_agent(11, 1)):
        refused = remotes.agent_seat(alice, 6, None, 1)
        assert refused == Refusal(RefusalCode.SEAT_REQUIRED, "you play several seats of match 6: name the seat")
        assert remotes.agent_seat(alice, 6, 0, 1) is first
