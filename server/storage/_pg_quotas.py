"""The limits of ``quotas.py`` on PostgreSQL: each counted in the transaction that adds the row
it bounds, after a transaction-level advisory lock on what it counts.

At READ COMMITTED two transactions that count, then insert, could each count before the other
inserts, and both pass a limit that had room for one. So each first takes
``pg_advisory_xact_lock`` on what it counts: the address of a signup, the user of a submission,
and for a challenge its user and its holder's address (in one statement, so in the same order
for every challenge: two never wait on each other in a circle). A transaction that waited for
a lock counts after the commit of the one that held it, and so counts its row. The locks go
with their short transactions; a hash that two keys share only makes their requests take
turns. The SQL is ``_quotas.py``'s, with PostgreSQL's placeholders; the bodies of the inserts
are ``_pg_accounts.py``'s and ``_pg_queue.py``'s.
"""

from __future__ import annotations

from typing import Any

from . import _pg_accounts, _pg_queue
from ._pg_schema import Conn
from ._quotas import CHALLENGE_COUNTS, MARK_CHALLENGE, SIGNUP_COUNT, SUBMISSION_COUNT
from .base import AgentRecord, MatchRecord, UserRecord
from .quotas import HOUR_S, SIGNUPS, SUBMISSIONS, ChallengeQuota, rate_limited

__all__: list[str] = []

# pg_advisory_xact_lock(key1, key2) class: the arena's quotas ("arnq"); the two-key form is a
# space of its own, apart from the one-key locks of migrations, ratings and the leader.
_QUOTA_LOCK = 0x61726E71


async def _lock(conn: Conn, *keys: str) -> None:
    """Take the locks of ``keys`` in one statement, in the same order whoever takes them. The
    counts come in a statement of their own after it: at READ COMMITTED a statement sees what
    was committed when it began, and this one began before its wait."""
    locks = ", ".join(f"pg_advisory_xact_lock($1, hashtext(${n}))" for n in range(2, len(keys) + 2))
    await conn.execute(f"SELECT {locks}", _QUOTA_LOCK, *keys)


async def create_user(conn: Conn, max_per_hour: int, name: str, token_hash: str, created_from: str,
                      now: float) -> UserRecord:
    """As ``_quotas.create_user``, under the address's lock."""
    await _lock(conn, f"signups:{created_from}")
    if await conn.fetchval(SIGNUP_COUNT.format(address="$1", since="$2"), created_from, now - HOUR_S) >= max_per_hour:
        raise rate_limited(max_per_hour, SIGNUPS)
    return await _pg_accounts.create_user(conn, name, token_hash, created_from, now)


async def save_agent(conn: Conn, max_per_hour: int, user_id: int, name: str, game: str, code: str | None,
                     now: float) -> AgentRecord:
    """As ``_quotas.save_agent``, under the user's lock."""
    await _lock(conn, f"user:{user_id}")
    if await conn.fetchval(SUBMISSION_COUNT.format(user="$1", since="$2"), user_id, now - HOUR_S) >= max_per_hour:
        raise rate_limited(max_per_hour, SUBMISSIONS)
    return await _pg_accounts.save_agent(conn, user_id, name, game, code, now)


async def create_challenge(conn: Conn, quota: ChallengeQuota, game: str, seats: int, now: float,
                           create: tuple[Any, ...]) -> MatchRecord:
    """As ``_quotas.create_challenge``, the match stored by ``_pg_queue.create_match(conn, *create)``,
    under the user's lock, then the holder's."""
    await _lock(conn, f"user:{quota.user_id}", f"holder:{quota.holder}")
    counts = await conn.fetchrow(CHALLENGE_COUNTS.format(user="$1", since="$2", holder="$3"), quota.user_id,
                                 now - HOUR_S, quota.holder)
    assert counts is not None  # one row, always
    at_once, this_hour, held = counts
    quota.check(at_once=at_once, this_hour=this_hour, held_seats=held, game=game, seats=seats)
    record = await _pg_queue.create_match(conn, *create)
    await conn.execute(MARK_CHALLENGE.format(user="$1", holder="$2", match="$3"), quota.user_id, quota.holder,
                       record.id)
    return record
