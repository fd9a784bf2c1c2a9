"""The match queue in PostgreSQL: claiming a match under a lease, renewing leases, fencing.

Theory of operation
-------------------
A match row is the queue entry. A front stores it ``pending`` with no ``worker``; a worker
*claims* the oldest claimable match in one transaction: ``SELECT ... FOR UPDATE SKIP LOCKED``
(so concurrent claimers never wait on each other and never take the same row), then sets
``worker``, ``attempt = attempt + 1`` and ``lease_until``. A process that both creates and runs
a match (role ``all``) stores it claimed at once (``create_match`` with a lease, attempt 1).

Claimable is: ``pending`` without a worker, or ``pending``/``live`` whose lease ran out (its
worker died, hung, or lost the database). Lease times are the database's clock
(``clock_timestamp()``), never a worker's, so workers on machines whose clocks disagree still
agree on when a lease ends. A reclaimed match is played again from its seed under the next
attempt: its earlier attempt's steps are deleted in the claiming transaction, so its event
log is the new attempt's alone, from step 0. A match already claimed ``max_attempts`` times
is not claimed again but stored ``aborted`` with the reason.

Fencing. Every write of a running match names the attempt it runs under (the storage keeps
the attempt of each match this process claimed): the step writer's batch first updates the
match's row ``WHERE attempt = ours AND status IN ('pending', 'live')``, which takes the row's
lock, and inserts the steps only of the matches that update kept; the end (result, seats'
logs; the rating pass reads it later, exactly once) checks the attempt under ``FOR UPDATE``.
A claim takes the same row lock, so a stale batch either commits before the claim (whose
``DELETE`` of the old steps then sees and removes them) or waits for it and finds the attempt
changed: a worker that was paused or cut off and comes back never writes into the new
attempt's log, and its end is refused with :class:`LeaseLost`. A renewal that finds the
attempt changed tells the worker to stop that match.

Wake-ups. A match stored pending for the workers (by a front) notifies :data:`QUEUE_CHANNEL` in
the transaction that stores it, so an idle worker that listens claims it at once instead of at
its next poll; the poll stays the truth (a lease that runs out notifies nobody).
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.errors import short_reason

from . import _pg_matches
from ._pg_matches import load_matches
from ._pg_notify import notify_ended
from ._pg_schema import Conn
from .base import MatchRecord, NewSeat

__all__ = ["QUEUE_CHANNEL"]

QUEUE_CHANNEL = "arena_queue"  # payload: the id of a match stored pending for the workers

_NOW = "extract(epoch FROM clock_timestamp())"
# How many matches one claim may give up on (aborted after max_attempts) before it answers.
_MAX_SKIPS = 20

_CANDIDATE = f"""
    SELECT id, attempt FROM matches
    WHERE status IN ('pending', 'live') AND (worker IS NULL OR lease_until < {_NOW})
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
_CLAIM = f"""
    UPDATE matches SET worker = $2, attempt = attempt + 1, lease_until = {_NOW} + $3,
        status = 'pending', started_at = NULL, steps = 0
    WHERE id = $1
"""
_GIVE_UP = f"""
    UPDATE matches SET status = 'aborted', reason = $2, finished_at = {_NOW},
        steps = (SELECT count(*) FROM match_steps WHERE match_id = $1)
    WHERE id = $1
"""
_RENEW = f"""
    UPDATE matches m SET lease_until = {_NOW} + $3
    FROM unnest($1::bigint[], $2::bigint[]) AS c(id, attempt)
    WHERE m.id = c.id AND m.attempt = c.attempt AND m.worker = $4 AND m.status IN ('pending', 'live')
    RETURNING m.id
"""


async def create_match(
    conn: Conn, game: str, rules_version: int, config_json: str, seed: int, tags_json: str,
    seats: Sequence[NewSeat], is_rated: bool, worker: str | None, lease_s: float, now: float,
) -> MatchRecord:
    """``_pg_matches.create_match``, waking the idle workers for a match left to them (no ``worker``)."""
    record = await _pg_matches.create_match(conn, game, rules_version, config_json, seed, tags_json, seats, is_rated,
                                            worker, lease_s, now)
    if worker is None:
        await conn.execute("SELECT pg_notify($1, $2)", QUEUE_CHANNEL, str(record.id))
    return record


async def claim_next(
    conn: Conn, worker: str, lease_s: float, max_attempts: int,
) -> tuple[MatchRecord | None, list[tuple[int, str]]]:
    """Claim the oldest claimable match for ``worker`` (in the caller's write transaction):
    the claimed match, or None, and the matches given up on meanwhile with their reasons."""
    given_up: list[tuple[int, str]] = []
    for _ in range(_MAX_SKIPS):
        row = await conn.fetchrow(_CANDIDATE)
        if row is None:
            return None, given_up
        match_id, attempt = int(row[0]), int(row[1])
        if attempt >= max_attempts:
            reason = short_reason(f"its worker was lost during each of {attempt} attempts; not run again")
            await conn.execute(_GIVE_UP, match_id, reason)
            await notify_ended(conn, match_id)  # fronts send its spectators `end` now, not at their next poll
            given_up.append((match_id, reason))
            continue
        # Run (again) from its seed: the event log starts over. Also for attempt 0: a match left
        # live by a server from before the queue has steps but no attempt.
        await conn.execute("DELETE FROM match_steps WHERE match_id = $1", match_id)
        await conn.execute(_CLAIM, match_id, worker, lease_s)
        return (await load_matches(conn, "WHERE id = $1", (match_id,)))[0], given_up
    return None, given_up


async def renew(conn: Conn, worker: str, lease_s: float, held: Sequence[tuple[int, int]]) -> set[int]:
    """Extend the leases of ``held`` (match id, attempt); the ids whose lease still held."""
    rows = await conn.fetch(_RENEW, [m for m, _ in held], [a for _, a in held], lease_s, worker)
    return {int(row[0]) for row in rows}
