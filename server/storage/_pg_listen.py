"""A front's connection to the database's notifications, and the reads that follow a wake-up.

Theory of operation
-------------------
A :class:`Listener` is one connection of its own (not of the storage's pool: it stays open,
and a pool would reset it) that LISTENs on the arena's channel (``_pg_notify.py``) and runs
the few reads a relay makes when it wakes up: the new steps of the matches it follows, all of
them in one statement; the statuses and records of matches that started or ended, and the
rating changes of those rated; the ids of the live ones. One connection for both keeps the
order simple: a notification is delivered after its commit, so a read that follows it sees
what it announced.

asyncpg calls ``on_notice`` with each notification (in the event loop, between reads) and
``on_lost`` when the connection closes under it (the server ended the session, or the socket
was closed). It does not notice a connection that stopped answering: whoever holds the
listener pings it now and then under a deadline (:meth:`Listener.ping`) and, on a failure or a
timeout, drops it (:meth:`Listener.terminate`) and opens another. Every failure of the
connection or of a statement is a :class:`StorageError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg

from protocol.errors import MatchNotFound, StorageError

from . import _pg_matches, _pg_ratings
from ._pg_notify import CHANNEL, Notice, parse_notice
from ._pg_schema import CONNECT_TIMEOUT_S, CONNECTION_ERRORS, STATEMENT_TIMEOUT_S, Conn, describe, redact_url
from ._rows import _step_text
from ._steps import StepRow
from .base import MatchRecord, MatchStatus, RatedMatch

__all__ = ["LISTEN_APPLICATION_NAME", "Listener", "Session", "listen", "open_listener"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# The listening connection's name in pg_stat_activity (an operator, or a test, finds it by this).
LISTEN_APPLICATION_NAME = "agent-arena-listen"

# The new steps of several matches, each after its own step, at most $3 of each, in order, with
# the attempt they are of (one statement: one snapshot). A match without new steps has one row
# of NULL step and record.
_STEPS_AFTER = """
    SELECT f.id, m.attempt, s.step, s.record
    FROM unnest($1::bigint[], $2::bigint[]) AS f(id, after)
    JOIN matches m ON m.id = f.id
    LEFT JOIN LATERAL (
        SELECT step, record FROM match_steps WHERE match_id = f.id AND step > f.after ORDER BY step LIMIT $3
    ) AS s ON true
    ORDER BY f.id, s.step
"""
_LAST_STEPS = """
    SELECT m.attempt, s.step, s.record
    FROM matches m
    LEFT JOIN LATERAL (
        SELECT step, record FROM match_steps WHERE match_id = m.id ORDER BY step DESC LIMIT $2
    ) AS s ON true
    WHERE m.id = $1
    ORDER BY s.step
"""


class Session:
    """A connection of its own (as :func:`listen` opens one) and the calls every holder makes:
    each failure of the connection or of a statement is a :class:`StorageError`."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self._conn = conn

    @property
    def backend_pid(self) -> int:
        """The server process of this connection (``pg_terminate_backend`` ends it)."""
        pid: int = self._conn.get_server_pid()
        return pid

    def is_closed(self) -> bool:
        return bool(self._conn.is_closed())

    def terminate(self) -> None:
        """Drop the connection at once, without a word to the server (it may not answer)."""
        self._conn.terminate()

    async def ping(self) -> None:
        """A trivial round trip: the connection still answers."""
        await self._call("ping the database", self._conn.fetchval("SELECT 1"))

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise StorageError(f"cannot {what}: {describe(exc)}") from exc


class Listener(Session):
    """One listening connection and its reads; make one with :func:`open_listener`."""

    async def statuses(self, match_ids: Iterable[int]) -> dict[int, MatchStatus]:
        """The status of each of these matches (unknown ids are left out)."""
        rows = await self._call("read match statuses", self._conn.fetch(
            "SELECT id, status FROM matches WHERE id = ANY($1::bigint[])", sorted(match_ids)))
        return {row[0]: MatchStatus(row[1]) for row in rows}

    async def live_ids(self) -> set[int]:
        """Every match live now, wherever it runs."""
        rows = await self._call("read the live matches", self._conn.fetch(
            "SELECT id FROM matches WHERE status = $1", MatchStatus.LIVE.value))
        return {row[0] for row in rows}

    async def matches(self, match_ids: Iterable[int]) -> dict[int, MatchRecord]:
        """These matches with their seats, by id (unknown ids are left out)."""
        ids = sorted(match_ids)
        if not ids:
            return {}
        conn = cast(Conn, self._conn)  # the statement is the pool's; a plain connection runs it the same
        records = await self._call("read matches", _pg_matches.load_matches(
            conn, "WHERE id = ANY($1::bigint[]) ORDER BY id", (ids,)))
        return {record.id: record for record in records}

    async def rating_changes(self, match_ids: Iterable[int]) -> dict[int, RatedMatch]:
        """The rating changes of these matches as the rating history holds them, by match (each in
        seat order); a match that moved no rating is left out."""
        conn = cast(Conn, self._conn)  # the statement is the pool's; a plain connection runs it the same
        return await self._call("read rating changes", _pg_ratings.rating_changes(conn, list(match_ids)))

    async def steps_after(self, after: Mapping[int, int], limit: int) -> tuple[dict[int, int], list[StepRow]]:
        """The stored steps of each match after the step ``after`` gives it (at most ``limit`` of
        each), by match, in step order; and the attempt of each match (unknown ids are left out),
        which those steps are of."""
        if not after:
            return {}, []
        rows = await self._call("read new steps", self._conn.fetch(
            _STEPS_AFTER, list(after), list(after.values()), limit))
        attempts = {row[0]: row[1] for row in rows}
        return attempts, [(row[0], row[2], _step_text(row[0], row[3])) for row in rows if row[2] is not None]

    async def last_steps(self, match_id: int, count: int) -> tuple[int, list[tuple[int, str]]]:
        """The attempt of a match and its last ``count`` stored steps (of that attempt) as ``(step,
        text)``, in step order.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        rows = await self._call(f"read steps of match {match_id}", self._conn.fetch(_LAST_STEPS, match_id, count))
        if not rows:
            raise MatchNotFound(match_id)
        return rows[0][0], [(row[1], _step_text(match_id, row[2])) for row in rows if row[1] is not None]


@asynccontextmanager
async def open_listener(
    url: str, on_notice: Callable[[Notice], None], on_lost: Callable[[], None],
) -> AsyncIterator[Listener]:
    """Connect to the database at ``url`` and LISTEN; ``on_notice`` gets what each notification
    says, ``on_lost`` is called if the connection closes before the block exits. On exit the
    connection is dropped.

    Raises:
        StorageError: the server cannot be reached or refuses the login.
    """
    def notified(payload: str) -> None:
        on_notice(parse_notice(payload))

    async with listen(url, {CHANNEL: notified}, on_lost, LISTEN_APPLICATION_NAME) as conn:
        yield Listener(conn)


@asynccontextmanager
async def listen(
    url: str, channels: Mapping[str, Callable[[str], None]], on_lost: Callable[[], None], application_name: str,
) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection of its own to the database at ``url`` (named ``application_name`` in
    ``pg_stat_activity``) that LISTENs on each of ``channels``, whose callable gets the payload
    of each notification; ``on_lost`` is called if the connection closes before the block
    exits. On exit the connection is dropped.

    Raises:
        StorageError: the server cannot be reached or refuses the login.
    """
    def lost(_conn: Any) -> None:
        if not is_closing:
            on_lost()

    is_closing = False
    try:
        conn = await asyncpg.connect(
            url, timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S,
            server_settings={"application_name": application_name, "jit": "off"})
    except (ValueError, asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
        raise StorageError(f"cannot connect to PostgreSQL at {redact_url(url)}: {describe(exc)}") from exc
    try:
        conn.add_termination_listener(lost)
        for channel, handler in channels.items():
            try:
                await conn.add_listener(channel, _deliver(handler))
            except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
                raise StorageError(f"cannot listen on {channel}: {describe(exc)}") from exc
        yield conn
    finally:
        # Nothing to tell the server: ending the session ends its LISTEN. Closing politely waits for
        # an answer that a dead connection never gives.
        is_closing = True
        conn.terminate()


def _deliver(handler: Callable[[str], None]) -> Callable[[Any, int, str, object], None]:
    def notified(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        handler(str(payload))
    return notified
