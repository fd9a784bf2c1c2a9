"""Matches in PostgreSQL: creating, starting and finishing them, their event logs and seat logs.

Each function is the body of one storage call (see ``PostgresStorage``), on a connection of
the pool inside the transaction the caller frames: a write (READ COMMITTED), or a read of one
statement. A match's end takes its row with ``SELECT ... FOR UPDATE`` before it looks at the
status, so of two ends stored at once (two processes, or a worker and an abort) one waits for
the other's commit, then sees the match ended and refuses: an end is recorded once. The end
of a rated match that finished also rates it, in the same transaction (``_pg_ratings.py``).

Steps are queued by the batching step writer (``_steps.py``), which hands each batch to
:func:`insert_steps`: one transaction of two statements whatever the batch holds, the rows
passed as arrays (``unnest``), not one statement per row. A batch, a start and an end each
also notify, in their own transaction, the fronts that follow the matches (``_pg_notify.py``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from protocol.errors import AgentNotFound, LeaseLost, MatchNotFound, StorageError, short_reason

from . import _pg_ratings
from ._pg_accounts import load_agent
from ._pg_notify import notify_ended, notify_started, notify_steps
from ._pg_schema import CONNECTION_ERRORS, Conn, Pool
from ._rows import _MATCH_COLUMNS, _is_row_id, _match
from ._steps import StepRow, rows_by_match
from .base import LadderMatch, MatchRecord, MatchStatus, NewSeat, SeatResult

__all__: list[str] = []

_UPSERT_LOG = (
    "INSERT INTO seat_logs (match_id, seat, text) VALUES ($1, $2, $3)"
    " ON CONFLICT (match_id, seat) DO UPDATE SET text = excluded.text"
)
# The matches a WHERE/ORDER/LIMIT selects, each with its seats (one row per seat, in seat
# order; a match without seats has one row of NULL seat columns): one statement, so one snapshot.
_MATCHES_WITH_SEATS = """
    WITH m AS (SELECT {columns} FROM matches {tail})
    SELECT m.*, s.agent_id, a.name, u.name, s.version, s.status, s.reward, s.reason
    FROM m LEFT JOIN match_seats s ON s.match_id = m.id
    LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN users u ON u.id = a.user_id
    ORDER BY m.id {order}, s.seat
"""
_N_MATCH_COLUMNS = len(_MATCH_COLUMNS.split(","))
_INSERT_STEPS = """
    INSERT INTO match_steps (match_id, step, record)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
"""
# In match id order, as every writer of these rows locks them, so two never wait on each other.
# A fenced match (an attempt given) counts its steps only while that attempt holds it; the
# rows kept are the matches whose steps may be inserted (see _pg_queue.py, "Fencing").
_COUNT_STEPS = """
    UPDATE matches m SET steps = m.steps + c.n
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS c(id, n, attempt)
    WHERE m.id = c.id AND (c.attempt IS NULL OR (m.attempt = c.attempt AND m.status IN ('pending', 'live')))
    RETURNING m.id
"""


def _short(reason: str | None) -> str | None:
    # Every reason that is stored quotes a short prefix at most (see _matches.py).
    return None if reason is None else short_reason(reason)


async def match_status(conn: Conn, match_id: int, *, lock: bool = False) -> MatchStatus:
    """The match's status (``lock``: and its row, until the commit). Raises: MatchNotFound."""
    if not _is_row_id(match_id):
        raise MatchNotFound(match_id)
    status = await conn.fetchval(f"SELECT status FROM matches WHERE id = $1{' FOR UPDATE' if lock else ''}", match_id)
    if status is None:
        raise MatchNotFound(match_id)
    return MatchStatus(status)


async def load_matches(conn: Conn, tail: str, params: Sequence[Any], order: str = "ASC") -> list[MatchRecord]:
    """Matches selected by ``tail`` (WHERE/ORDER/LIMIT, its parameters ``$1``...), with their
    seats, by id in ``order`` (the order ``tail`` picks them in)."""
    rows = await conn.fetch(_MATCHES_WITH_SEATS.format(columns=_MATCH_COLUMNS, tail=tail, order=order), *params)
    matches: dict[int, tuple[Any, list[SeatResult]]] = {}
    for row in rows:
        values = tuple(row)
        entry = matches.setdefault(values[0], (values, []))
        if values[_N_MATCH_COLUMNS] is not None:
            entry[1].append(SeatResult(*values[_N_MATCH_COLUMNS:]))
    return [_match(row, seats) for row, seats in matches.values()]


async def create_match(
    conn: Conn, game: str, rules_version: int, config_json: str, seed: int, tags_json: str,
    seats: Sequence[NewSeat], is_rated: bool, worker: str | None, lease_s: float, now: float,
) -> MatchRecord:
    """A new pending match; with ``worker``, claimed by it already (attempt 1, a lease of ``lease_s``)."""
    for seat in seats:
        if not _is_row_id(seat.agent_id):
            raise AgentNotFound(seat.agent_id)
    found = {
        (row[0], row[1]) for row in await conn.fetch(
            "SELECT agent_id, version FROM agent_versions"
            " WHERE (agent_id, version) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))",
            [s.agent_id for s in seats], [s.version for s in seats],
        )
    }
    for seat in seats:  # the first seat in error, as SQLite tells it
        if (seat.agent_id, seat.version) not in found:
            await load_agent(conn, seat.agent_id)  # raises if the agent itself is unknown
            raise AgentNotFound((seat.agent_id, seat.version))
    match_id = await conn.fetchval(
        "INSERT INTO matches (game, rules_version, status, config, seed, tags, created_at, rated, rating_done,"
        " worker, attempt, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text,"
        " CASE WHEN $10::text IS NULL THEN 0 ELSE 1 END,"
        " CASE WHEN $10::text IS NULL THEN NULL ELSE extract(epoch FROM clock_timestamp()) + $11 END) RETURNING id",
        game, rules_version, MatchStatus.PENDING.value, config_json, seed, tags_json, now, is_rated, not is_rated,
        worker, lease_s,
    )
    await conn.execute(
        "INSERT INTO match_seats (match_id, seat, agent_id, version)"
        " SELECT $1, seat - 1, agent_id, version FROM unnest($2::bigint[], $3::bigint[])"
        " WITH ORDINALITY AS s(agent_id, version, seat)",
        match_id, [s.agent_id for s in seats], [s.version for s in seats],
    )
    return (await load_matches(conn, "WHERE id = $1", (match_id,)))[0]


async def set_match_live(conn: Conn, match_id: int, started_at: float, attempt: int | None) -> None:
    """Mark the match live; ``attempt``: only while that attempt holds it."""
    if not _is_row_id(match_id):
        raise MatchNotFound(match_id)
    updated = await conn.fetchval(
        "UPDATE matches SET status = 'live', started_at = $2 WHERE id = $1 AND status IN ('pending', 'live')"
        " AND ($3::bigint IS NULL OR attempt = $3) RETURNING id", match_id, started_at, attempt,
    )
    if updated is None:
        await _check_attempt(conn, match_id, attempt)
        status = await match_status(conn, match_id)  # raises if there is no such match
        raise StorageError(f"match {match_id} is {status.value}; it cannot go live")
    await notify_started(conn, match_id)


async def _check_attempt(conn: Conn, match_id: int, attempt: int | None) -> None:
    """Raises: LeaseLost: ``attempt`` (if any) no longer holds the match."""
    if attempt is None:
        return
    current = await conn.fetchval("SELECT attempt FROM matches WHERE id = $1", match_id)
    if current is not None and current != attempt:
        raise LeaseLost(f"match {match_id} was taken over (attempt {current}); this worker ran attempt {attempt}")


async def finish_match(
    conn: Conn, match_id: int, status: MatchStatus, reason: str | None, seats: Sequence[SeatResult],
    logs: Sequence[str], finished_at: float, attempt: int | None, now: float,
) -> MatchRecord:
    """The end of a match, with the seats' non-empty ``logs`` (one per seat, or none at all);
    ``attempt``: only while that attempt holds it. A rated match that finished is rated with it
    (at ``now``), its record carrying the changes.

    Raises:
        LeaseLost: ``attempt`` no longer holds the match.
        StorageError: the match has ended already, or cannot be rated (an agent is gone).
    """
    current = await match_status(conn, match_id, lock=True)
    await _check_attempt(conn, match_id, attempt)
    if current not in (MatchStatus.PENDING, MatchStatus.LIVE):
        raise StorageError(f"match {match_id} has already ended ({current.value})")
    n_seats = await conn.fetchval("SELECT count(*) FROM match_seats WHERE match_id = $1", match_id)
    if n_seats != len(seats):
        raise ValueError(f"match {match_id} has {n_seats} seats, got {len(seats)} results")
    await conn.execute(
        "UPDATE match_seats s SET status = r.status, reward = r.reward, reason = r.reason"
        " FROM unnest($2::text[], $3::float8[], $4::text[]) WITH ORDINALITY AS r(status, reward, reason, seat)"
        " WHERE s.match_id = $1 AND s.seat = r.seat - 1",
        match_id, [s.status for s in seats], [s.reward for s in seats], [_short(s.reason) for s in seats],
    )
    if any(logs):
        await conn.executemany(_UPSERT_LOG, [(match_id, seat, text) for seat, text in enumerate(logs) if text])
    # A rated match that finished is rated with its result (see _pg_ratings.py): marked here, rated
    # last, so that its agents' rows stay locked for the fewest round trips before the commit.
    await conn.execute(
        "UPDATE matches SET status = $2, reason = $3, finished_at = $4,"
        " steps = (SELECT count(*) FROM match_steps WHERE match_id = $1),"
        " rating_done = rating_done OR (rated AND $2 = 'finished') WHERE id = $1",
        match_id, status.value, _short(reason), finished_at,
    )
    await notify_ended(conn, match_id)
    record = (await load_matches(conn, "WHERE id = $1", (match_id,)))[0]
    if not (record.rated and status is MatchStatus.FINISHED):
        return record
    rated = await _pg_ratings.rate_match(conn, record, now)
    return dataclasses.replace(record, rating_changes=tuple(rated.changes))


async def abort_unfinished(conn: Conn, reason: str, worker: str | None, now: float) -> int:
    status = await conn.execute(
        "UPDATE matches SET status = 'aborted', reason = $1, finished_at = $2,"
        " steps = (SELECT count(*) FROM match_steps WHERE match_id = matches.id)"
        " WHERE status IN ('pending', 'live') AND ($3::text IS NULL OR worker = $3)",
        _short(reason), now, worker,
    )
    count = int(status.split()[-1])  # "UPDATE n"
    if count:
        await notify_ended(conn, None)
    return count


async def unfinished_ladder_matches(conn: Conn) -> list[LadderMatch]:
    """Every rated match pending or live, by id, with its agents in seat order: one statement,
    through the partial index ``matches_unfinished`` (what is not ended is few rows)."""
    rows = await conn.fetch(
        "SELECT m.id, m.game, coalesce(m.tags::jsonb -> 'featured' = 'true'::jsonb, false),"
        " array_agg(s.agent_id ORDER BY s.seat)"
        " FROM matches m JOIN match_seats s ON s.match_id = m.id"
        " WHERE m.status IN ('pending', 'live') AND m.rated GROUP BY m.id ORDER BY m.id")
    return [LadderMatch(row[0], row[1], row[2], tuple(row[3])) for row in rows]


async def step_rows(conn: Conn, match_id: int, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of ``sql`` (a SELECT of ``match_steps``); none only once the match is known to exist.

    Raises:
        MatchNotFound: no match ``match_id``.
    """
    if not _is_row_id(match_id):
        raise MatchNotFound(match_id)
    rows = await conn.fetch(sql, *params)
    if not rows:
        await match_status(conn, match_id)  # matches are never deleted: no snapshot needed
    return rows


async def save_log(conn: Conn, match_id: int, seat: int, text: str) -> None:
    await match_status(conn, match_id)
    if not _is_row_id(seat) or await conn.fetchval(
            "SELECT 1 FROM match_seats WHERE match_id = $1 AND seat = $2", match_id, seat) is None:
        raise StorageError(f"match {match_id} has no seat {seat}")
    await conn.execute(_UPSERT_LOG, match_id, seat, text)


async def get_log(conn: Conn, match_id: int, seat: int) -> str | None:
    text = await conn.fetchval("SELECT text FROM seat_logs WHERE match_id = $1 AND seat = $2", match_id, seat)
    return None if text is None else str(text)


async def _insert_rows(conn: Conn, rows: Sequence[StepRow], fences: Mapping[int, int]) -> set[int]:
    """Insert the rows of the matches whose fence holds; the ids of those whose fence does not."""
    counts = sorted(Counter(match_id for match_id, _, _ in rows).items())
    ids = [m for m, _ in counts]
    async with conn.transaction():
        kept = {int(r[0]) for r in await conn.fetch(_COUNT_STEPS, ids, [n for _, n in counts],
                                                     [fences.get(m) for m in ids])}
        refused = {m for m in ids if m in fences and m not in kept}
        if refused:
            rows = [r for r in rows if r[0] not in refused]
        if rows:
            await conn.execute(_INSERT_STEPS, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
            await notify_steps(conn, rows)
    return refused


def _refusals(by_match: Mapping[int, list[StepRow]], refused: set[int],
              fences: Mapping[int, int]) -> list[tuple[list[StepRow], Exception]]:
    return [(by_match[m], LeaseLost(f"match {m} is no longer held by attempt {fences[m]} of this worker: "
                                    "its steps are refused")) for m in sorted(refused)]


async def insert_steps(
    pool: Pool, batch: Sequence[StepRow], fences: Mapping[int, int],
) -> list[tuple[list[StepRow], Exception]]:
    """A batch of the step writer: one transaction for every match in it, or, if that fails, one
    per match (see ``_steps.BatchWrite``). When the server cannot be reached, every row fails.
    The rows of a match in ``fences`` (match id -> the attempt this process runs) are written
    only while that attempt holds it; otherwise they fail with ``LeaseLost``."""
    by_match = rows_by_match(batch)
    try:
        async with pool.acquire() as conn:
            try:
                return _refusals(by_match, await _insert_rows(conn, batch, fences), fences)
            except asyncpg.PostgresError as exc:
                if len(by_match) == 1:
                    return [(list(batch), exc)]
            failed: list[tuple[list[StepRow], Exception]] = []
            for rows in by_match.values():
                try:
                    failed += _refusals(by_match, await _insert_rows(conn, rows, fences), fences)
                except asyncpg.PostgresError as exc:
                    failed.append((rows, exc))
            return failed
    except CONNECTION_ERRORS as exc:
        return [(rows, exc) for rows in by_match.values()]
