"""Remote seats across the cluster in PostgreSQL: the ``remote_seats`` rows through which a match's
worker and the front holding the agent's connection play a remote seat (``server/cluster/agents.py``
tells the whole story; the table is migration 6 of ``_pg_schema.py``).

Theory of operation
-------------------
One row per remote seat of a running match, written by both sides, each write in its own
transaction with a notification of the other side, named ``MATCH:SEAT``:

- the worker *opens* the row when the seat starts (its start: game, configuration, seed), *asks*
  each turn in it (step, observation and budget, ``asked_at`` on the database's clock) and
  records the *result* at the end; every write of it is fenced by the match's attempt (a worker
  that lost the match cannot write into the seat of the next attempt), and notifies
  :data:`SEATS_CHANNEL`, which the fronts listen on;
- a front *claims* the row for one of its agent connections (``front``, its desk's name, and the
  connection's round trip), *answers* the turn asked (only the step asked, only once) and
  *releases* the row when it has no connection left for it; these notify :data:`ANSWERS_CHANNEL`,
  which the workers listen on (a release notifies the fronts: another one may claim it).

A claim holds while its front is alive: a front's desk keeps a listening connection named
``DESK_APPLICATION_PREFIX + desk`` open, and a row claimed by a desk whose connection is gone
from ``pg_stat_activity`` (the front died) may be claimed by another. Notifications are only
wake-ups: each side reads the row after one, and again now and then, so a lost notification
costs time, never a move. Rows of ended matches are deleted by the front that told the agent
the end, or by :func:`prune`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from protocol.messages import JSON

from ._pg_schema import Conn

__all__ = ["ANSWERS_CHANNEL", "DESK_APPLICATION_PREFIX", "SEATS_CHANNEL", "RemoteSeatTable", "SeatRow",
           "parse_seat_key"]

Run = Callable[..., Awaitable[Any]]  # the storage's: (what, write?, fn, *args) -> fn(conn, *args)

SEATS_CHANNEL = "arena_seats"  # a worker wrote a seat (or a front released one): the fronts read it
ANSWERS_CHANNEL = "arena_answers"  # a front claimed or answered a seat: its worker reads it
DESK_APPLICATION_PREFIX = "agent-arena-desk "  # + the desk's name: a front's listening connection

_NOW = "extract(epoch FROM clock_timestamp())"


def _is_free(desk: str, table: str = "remote_seats") -> str:
    """The condition that a row of ``table`` may be claimed by the desk in parameter ``desk`` (``$n``)."""
    return f"""({table}.front IS NULL OR {table}.front = {desk} OR NOT EXISTS (
        SELECT 1 FROM pg_stat_activity WHERE application_name = '{DESK_APPLICATION_PREFIX}' || {table}.front))"""


_COLUMNS = f"""r.match_id, r.seat, r.attempt, r.user_id, r.agent_id, r.start, r.front, r.rtt_s, r.step, r.turn,
    CASE WHEN r.asked_at IS NULL THEN NULL ELSE {_NOW} - r.asked_at END, r.answer, r.result, m.status"""
_FROM = "remote_seats r JOIN matches m ON m.id = r.match_id"
_ENDED = ('finished', 'aborted')


@dataclass(frozen=True, slots=True)
class SeatRow:
    """One remote seat as stored; ``waited_s``: how long ago the turn was asked (the database's clock)."""

    match_id: int
    seat: int
    attempt: int
    user_id: int
    agent_id: int
    start: dict[str, JSON]
    front: str | None
    rtt_s: float | None
    step: int | None
    turn: dict[str, JSON] | None
    waited_s: float | None
    answer: dict[str, JSON] | None
    result: dict[str, JSON] | None
    match_status: str  # the match's: a match stored ended without a result here was stopped or lost

    @property
    def key(self) -> tuple[int, int]:
        return self.match_id, self.seat

    @property
    def is_over(self) -> bool:
        return self.result is not None or self.match_status in _ENDED


def seat_key(match_id: int, seat: int) -> str:
    """A notification's payload: the seat it is about."""
    return f"{match_id}:{seat}"


def parse_seat_key(payload: str) -> tuple[int, int] | None:
    """The seat a payload names, or None for one this code does not understand."""
    match_id, _, seat = payload.partition(":")
    try:
        return int(match_id), int(seat)
    except ValueError:
        return None


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _row(row: Any) -> SeatRow:
    return SeatRow(row[0], row[1], row[2], row[3], row[4], _json(row[5]), row[6], row[7], row[8], _json(row[9]),
                   row[10], _json(row[11]), _json(row[12]), row[13])


def _text(value: JSON) -> str:
    return orjson.dumps(value).decode()


async def _notify(conn: Conn, channel: str, match_id: int, seat: int) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, seat_key(match_id, seat))


# -- the worker's side ------------------------------------------------------------------------------


async def open_seat(
    conn: Conn, match_id: int, seat: int, attempt: int, user_id: int, agent_id: int, start: dict[str, JSON],
) -> bool:
    """Store the seat for ``attempt`` of its match (replacing an earlier attempt's); False if the
    match is no longer that attempt's, or over. The caller commits."""
    status = await conn.execute(
        """
        INSERT INTO remote_seats (match_id, seat, attempt, user_id, agent_id, start)
        SELECT $1, $2, $3, $4, $5, $6 FROM matches WHERE id = $1 AND attempt = $3 AND status IN ('pending', 'live')
        ON CONFLICT (match_id, seat) DO UPDATE SET
            attempt = EXCLUDED.attempt, user_id = EXCLUDED.user_id, agent_id = EXCLUDED.agent_id,
            start = EXCLUDED.start, front = NULL, rtt_s = NULL, step = NULL, turn = NULL, asked_at = NULL,
            answer = NULL, result = NULL
        WHERE remote_seats.attempt < EXCLUDED.attempt
        """,
        match_id, seat, attempt, user_id, agent_id, _text(start))
    if status.split()[-1] == "0":
        return False
    await _notify(conn, SEATS_CHANNEL, match_id, seat)
    return True


async def ask(conn: Conn, match_id: int, seat: int, attempt: int, step: int, turn: dict[str, JSON]) -> bool:
    """Ask the turn of ``step``; False if the seat is not this attempt's. The caller commits."""
    status = await conn.execute(
        f"""UPDATE remote_seats SET step = $4, turn = $5, asked_at = {_NOW}, answer = NULL
        WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND result IS NULL""",
        match_id, seat, attempt, step, _text(turn))
    if status.split()[-1] == "0":
        return False
    await _notify(conn, SEATS_CHANNEL, match_id, seat)
    return True


async def finish(conn: Conn, match_id: int, seat: int, attempt: int, result: dict[str, JSON]) -> None:
    """The match is over: the front tells the agent ``result``. The caller commits."""
    status = await conn.execute(
        "UPDATE remote_seats SET result = $4 WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND result IS NULL",
        match_id, seat, attempt, _text(result))
    if status.split()[-1] != "0":
        await _notify(conn, SEATS_CHANNEL, match_id, seat)


async def read(conn: Conn, match_id: int, seat: int) -> SeatRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {_FROM} WHERE r.match_id = $1 AND r.seat = $2", match_id, seat)
    return None if row is None else _row(row)


async def prune(conn: Conn) -> int:
    """Delete the rows of matches that have ended (their fronts did not); how many."""
    status = await conn.execute(
        """DELETE FROM remote_seats r USING matches m
        WHERE m.id = r.match_id AND m.status IN ('finished', 'aborted')""")
    return int(status.split()[-1])


# -- a front's side -----------------------------------------------------------------------------------


async def claimable(conn: Conn, user_ids: list[int], desk: str) -> list[SeatRow]:
    """The seats of these users' running matches that no live front plays, or ``desk`` does."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
        WHERE r.user_id = ANY($1::bigint[]) AND r.result IS NULL AND m.status NOT IN {_ENDED} AND {_is_free('$2', 'r')}
        ORDER BY r.match_id, r.seat""",
        user_ids, desk)
    return [_row(row) for row in rows]


async def claim(conn: Conn, match_id: int, seat: int, attempt: int, desk: str, rtt_s: float | None) -> bool:
    """Play the seat from ``desk``'s connection; False if another live front plays it (or it is
    not that attempt's, or over). The caller commits."""
    status = await conn.execute(
        f"""UPDATE remote_seats SET front = $4, rtt_s = $5
        WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND result IS NULL AND {_is_free('$4')}""",
        match_id, seat, attempt, desk, rtt_s)
    if status.split()[-1] == "0":
        return False
    await _notify(conn, ANSWERS_CHANNEL, match_id, seat)
    return True


async def answer(
    conn: Conn, match_id: int, seat: int, attempt: int, desk: str, step: int, reply: dict[str, JSON],
    rtt_s: float | None,
) -> bool:
    """Answer the turn of ``step`` (once); False if it is not the turn asked, or not ``desk``'s
    to answer. The caller commits."""
    status = await conn.execute(
        """UPDATE remote_seats SET answer = $6, rtt_s = coalesce($7, rtt_s)
        WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND front = $4 AND step = $5 AND answer IS NULL
          AND result IS NULL""",
        match_id, seat, attempt, desk, step, _text(reply), rtt_s)
    if status.split()[-1] == "0":
        return False
    await _notify(conn, ANSWERS_CHANNEL, match_id, seat)
    return True


async def release(conn: Conn, match_id: int, seat: int, attempt: int, desk: str) -> None:
    """``desk`` has no connection for the seat any more: another front may claim it. The caller commits."""
    status = await conn.execute(
        "UPDATE remote_seats SET front = NULL WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND front = $4",
        match_id, seat, attempt, desk)
    if status.split()[-1] != "0":
        await _notify(conn, SEATS_CHANNEL, match_id, seat)


async def forget(conn: Conn, match_id: int, seat: int, attempt: int) -> None:
    """The agent was told the end: the row is done with."""
    await conn.execute(
        "DELETE FROM remote_seats WHERE match_id = $1 AND seat = $2 AND attempt = $3 AND result IS NOT NULL",
        match_id, seat, attempt)


class RemoteSeatTable:
    """The ``remote_seats`` table as the storage offers it (``PostgresStorage.remote_seats``):
    each call one transaction on the storage's pool, shielded once begun; the worker's calls
    are fenced by the attempt the storage holds of the match (none held: nothing is written).

    Raises (every call):
        StorageError: the database failed.
    """

    def __init__(self, run: Run, fences: Mapping[int, int]) -> None:
        self._run = run
        self._fences = fences

    # -- the worker's side

    async def open(self, match_id: int, seat: int, user_id: int, agent_id: int, start: dict[str, JSON]) -> bool:
        """Store the seat for the attempt this process holds; False if it holds none (or lost it)."""
        attempt = self._fences.get(match_id)
        return attempt is not None and bool(await self._run(
            f"open remote seat {seat} of match {match_id}", True, open_seat,
            match_id, seat, attempt, user_id, agent_id, start))

    async def ask(self, match_id: int, seat: int, step: int, turn: dict[str, JSON]) -> bool:
        attempt = self._fences.get(match_id)
        return attempt is not None and bool(await self._run(
            f"ask remote seat {seat} of match {match_id}", True, ask, match_id, seat, attempt, step, turn))

    async def finish(self, match_id: int, seat: int, result: dict[str, JSON]) -> None:
        attempt = self._fences.get(match_id)
        if attempt is not None:
            await self._run(f"end remote seat {seat} of match {match_id}", True, finish,
                            match_id, seat, attempt, result)

    async def read(self, match_id: int, seat: int) -> SeatRow | None:
        row: SeatRow | None = await self._run(f"read remote seat {seat} of match {match_id}", False, read,
                                              match_id, seat)
        return row

    async def prune(self) -> int:
        pruned: int = await self._run("prune the remote seats of ended matches", True, prune)
        return pruned

    # -- a front's side

    async def claimable(self, user_ids: list[int], desk: str) -> list[SeatRow]:
        rows: list[SeatRow] = await self._run("read claimable remote seats", False, claimable, user_ids, desk)
        return rows

    async def claim(self, row: SeatRow, desk: str, rtt_s: float | None) -> bool:
        return bool(await self._run(f"claim remote seat {row.seat} of match {row.match_id}", True, claim,
                                    row.match_id, row.seat, row.attempt, desk, rtt_s))

    async def answer(
        self, row: SeatRow, desk: str, step: int, reply: dict[str, JSON], rtt_s: float | None,
    ) -> bool:
        return bool(await self._run(f"answer remote seat {row.seat} of match {row.match_id}", True, answer,
                                    row.match_id, row.seat, row.attempt, desk, step, reply, rtt_s))

    async def release(self, row: SeatRow, desk: str) -> None:
        await self._run(f"release remote seat {row.seat} of match {row.match_id}", True, release,
                        row.match_id, row.seat, row.attempt, desk)

    async def forget(self, row: SeatRow) -> None:
        await self._run(f"forget remote seat {row.seat} of match {row.match_id}", True, forget,
                        row.match_id, row.seat, row.attempt)
