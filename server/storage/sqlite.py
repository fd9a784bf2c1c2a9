"""SQLite storage on aiosqlite, with a batching writer for match steps.

Theory of operation
-------------------
A file database gets two connections, each an aiosqlite worker thread: a *writer* (every
write, serialised by ``_write_lock`` so transactions never interleave) and a *reader*
(``query_only``). In WAL mode readers never block the writer and see only committed data;
each read runs in its own ``BEGIN`` so a match and its seats come from one snapshot. An
in-memory database has a single connection, so there reader and writer share one lock.

Steps are the hot path: a running match appends one step per turn. ``append_steps``
encodes the rows and queues them without touching the database; one writer task (started
by :func:`open_sqlite` in its task group) commits everything queued, for all matches, in
one transaction every ``BATCH_WINDOW_S`` or as soon as ``BATCH_ROWS`` are waiting. Every
queued row has a sequence number; ``_handled_seq`` is the last one the writer has dealt
with, so a *barrier* is "wait until ``_handled_seq`` reaches the last row I care about".
``flush`` waits for every row, ``finish_match`` and ``get_steps`` for their match's rows;
a waiting barrier makes the writer write at once instead of waiting out the window.

Errors must not vanish. If a batch fails, it is retried match by match, so one bad match
(a duplicate step, an unknown match id) does not sink the rows of the others. The rows that
still fail are dropped and remembered per match: the next ``finish_match`` of that match
raises :class:`StorageError`, the next ``flush`` reports it once, and ``close`` raises if
nobody was told. Closing drains the queue first; rows are never left behind on exit.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
from anyio.abc import TaskStatus

from protocol.codec import decode_json, encode, encode_json
from protocol.errors import (
    AgentNotFound,
    ConfigError,
    MatchNotFound,
    ProtocolError,
    StorageError,
    UserNotFound,
)
from protocol.messages import SeatTiming, StepRecord

from .base import JSON, AgentRecord, MatchRecord, MatchStatus, NewSeat, SeatResult, UserRecord

__all__ = ["BATCH_ROWS", "BATCH_WINDOW_S", "SCHEMA_VERSION", "SqliteStorage", "open_sqlite"]

log = logging.getLogger(__name__)

BATCH_WINDOW_S = 0.005  # longest a queued step waits; many turns of many matches share one commit
BATCH_ROWS = 500  # write at once when this many steps are queued
MAX_BATCH_ROWS = 5_000  # one transaction holds the write lock for at most this many rows
MAX_QUEUED_ROWS = 50_000  # back-pressure: append_steps waits while the writer is this far behind
MAX_PAGE = 500
BUSY_TIMEOUT_MS = 5_000  # another process (a CLI, a backup) may hold the write lock briefly
_MAX_STORED_BYTES = 1 << 30  # stored JSON is our own; the wire's 1 MiB frame limit does not apply

_R = TypeVar("_R", AgentRecord, MatchRecord)

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        game TEXT NOT NULL,
        remote INTEGER NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (user_id, name)
    );
    CREATE INDEX agents_by_game ON agents(game, id);
    CREATE TABLE agent_versions (
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        version INTEGER NOT NULL,
        code TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (agent_id, version)
    );
    CREATE TABLE matches (
        id INTEGER PRIMARY KEY,
        game TEXT NOT NULL,
        rules_version INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'live', 'finished', 'aborted')),
        reason TEXT,
        config TEXT NOT NULL,
        seed INTEGER NOT NULL,
        tags TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        steps INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX matches_by_status ON matches(status, id);
    CREATE TABLE match_seats (
        match_id INTEGER NOT NULL REFERENCES matches(id),
        seat INTEGER NOT NULL,
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        version INTEGER NOT NULL,
        status TEXT,
        reward REAL,
        reason TEXT,
        PRIMARY KEY (match_id, seat)
    );
    CREATE INDEX match_seats_by_agent ON match_seats(agent_id, match_id);
    CREATE TABLE match_steps (
        match_id INTEGER NOT NULL REFERENCES matches(id),
        step INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (match_id, step)
    );
    CREATE TRIGGER match_steps_append_only BEFORE UPDATE ON match_steps
    BEGIN
        SELECT RAISE(ABORT, 'match_steps is append-only');
    END;
    CREATE TABLE seat_logs (
        match_id INTEGER NOT NULL,
        seat INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (match_id, seat),
        FOREIGN KEY (match_id, seat) REFERENCES match_seats(match_id, seat)
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_AGENT_SELECT = """
    SELECT a.id, a.user_id, u.name, a.name, a.game, a.version, a.remote, v.code, a.created_at, a.updated_at
    FROM agents a JOIN users u ON u.id = a.user_id
    JOIN agent_versions v ON v.agent_id = a.id AND v.version = a.version
"""
_MATCH_SELECT = """
    SELECT id, game, rules_version, status, reason, config, seed, tags, created_at, started_at,
           finished_at, steps
    FROM matches
"""

_STANDINGS = """
    WITH results AS (
        SELECT s.agent_id, s.status, s.reward,
               (SELECT max(o.reward) FROM match_seats o
                WHERE o.match_id = s.match_id AND o.seat != s.seat) AS best_other
        FROM match_seats s JOIN matches m ON m.id = s.match_id
        WHERE m.status = ? AND m.game = ?
    ), tally AS (
        SELECT a.id, a.name, u.name AS owner, a.version,
               count(r.agent_id) AS matches,
               coalesce(sum(r.reward > coalesce(r.best_other, -1e308)), 0) AS wins,
               coalesce(sum(r.reward = r.best_other), 0) AS draws,
               coalesce(sum(r.status IN ('TIMEOUT', 'ERROR', 'INVALID')), 0) AS faults
        FROM agents a JOIN users u ON u.id = a.user_id LEFT JOIN results r ON r.agent_id = a.id
        WHERE a.game = ?
        GROUP BY a.id
    )
    SELECT id, name, owner, version, matches, wins, draws, matches - wins - draws, faults FROM tally
    ORDER BY matches = 0, wins + 0.5 * draws DESC, wins DESC, matches, id
"""


@dataclass(frozen=True, slots=True)
class _QueuedStep:
    seq: int
    match_id: int
    step: int
    record: str


@dataclass(frozen=True, slots=True)
class _WriteFailure:
    """Steps of one match the writer could not store."""

    match_id: int
    steps: tuple[int, ...]
    cause: sqlite3.Error

    def error(self) -> StorageError:
        lost = f"{len(self.steps)} step(s) ({min(self.steps)}..{max(self.steps)})"
        exc = StorageError(f"{lost} of match {self.match_id} were not stored: {self.cause}")
        exc.__cause__ = self.cause
        return exc


@asynccontextmanager
async def open_sqlite(path: str | Path) -> AsyncIterator[SqliteStorage]:
    """Open (creating or migrating) the database at ``path`` and run its step writer.

    On exit every queued step is written and the connections are closed.

    Raises:
        StorageError: the file cannot be opened, its schema is newer than this code, or a
            queued step could not be written and no caller was told.
    """
    is_memory = str(path) in (":memory:", "")
    writer = await _connect(path)
    reader = writer
    try:
        await _migrate(writer)
        if not is_memory:
            reader = await _connect(path, query_only=True)
        storage = SqliteStorage(writer, reader)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(storage._run_writer)
                try:
                    yield storage
                finally:
                    await storage.close()
        except BaseExceptionGroup as group:
            # The writer fails only on our own bug, so a group here nearly always holds just the
            # caller's exception (or close()'s): give it back as raised, not wrapped.
            if len(group.exceptions) != 1:
                raise
            exc = group.exceptions[0]
            context = exc.__context__
            try:
                raise exc
            finally:
                exc.__context__ = context
                del exc, group
    finally:
        with anyio.CancelScope(shield=True):
            await writer.close()
            await reader.close()


class SqliteStorage:
    """The :class:`~server.storage.base.Storage` on SQLite; make one with :func:`open_sqlite`."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._db = writer
        self._reader = reader
        self._write_lock = anyio.Lock()
        self._read_lock = self._write_lock if reader is writer else anyio.Lock()
        # the step writer's state; see the module docstring
        self._queue: list[_QueuedStep] = []
        self._seq = 0  # last sequence number handed out
        self._handled_seq = 0  # last sequence number the writer committed or gave up on
        self._last_seq: dict[int, int] = {}  # match id -> its last queued row
        self._wake = anyio.Event()  # rows arrived or closing
        self._hurry = anyio.Event()  # stop waiting out the batch window
        self._progress = anyio.Event()  # a batch was handled; replaced after each one
        self._barriers = 0  # callers waiting on the writer
        self._failures: dict[int, _WriteFailure] = {}
        self._unreported: set[int] = set()  # failures neither flush nor finish_match reported yet
        self._is_closing = False
        self._is_closed = False
        self._writer_done = anyio.Event()
        self._drained = anyio.Event()  # close() has written everything

    # -- users -------------------------------------------------------------------------------------

    async def create_user(self, name: str, token_hash: str) -> UserRecord:
        """Store a new user.

        Raises:
            StorageError: the name or the token hash is taken.
        """
        now = time.time()
        async with self._write(f"create user {name!r}") as db:
            if await _fetchone(db, "SELECT 1 FROM users WHERE name = ?", (name,)) is not None:
                raise StorageError(f"user name {name!r} is taken")
            cur = await db.execute(
                "INSERT INTO users (name, token_hash, created_at) VALUES (?, ?, ?)", (name, token_hash, now)
            )
            assert cur.lastrowid is not None
            return UserRecord(cur.lastrowid, name, now)

    async def user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        """The user holding this token hash, if any."""
        async with self._read("look up a token") as db:
            row = await _fetchone(db, "SELECT id, name, created_at FROM users WHERE token_hash = ?",
                                  (token_hash,))
        return None if row is None else UserRecord(*row)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        """The user of that name, if any."""
        async with self._read(f"look up user {name!r}") as db:
            row = await _fetchone(db, "SELECT id, name, created_at FROM users WHERE name = ?", (name,))
        return None if row is None else UserRecord(*row)

    # -- agents ------------------------------------------------------------------------------------

    async def save_agent(self, user_id: int, name: str, game: str, code: str | None) -> AgentRecord:
        """Create an agent, or store a new version of the owner's agent of that name.

        Raises:
            UserNotFound: no user ``user_id``.
            ConfigError: the owner's agent of that name plays another game.
        """
        now = time.time()
        async with self._write(f"save agent {name!r}") as db:
            row = await _fetchone(db, "SELECT id, game, version FROM agents WHERE user_id = ? AND name = ?",
                                  (user_id, name))
            if row is None:
                if await _fetchone(db, "SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
                    raise UserNotFound(user_id)
                cur = await db.execute(
                    "INSERT INTO agents (user_id, name, game, remote, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, 1, ?, ?)", (user_id, name, game, code is None, now, now),
                )
                assert cur.lastrowid is not None
                agent_id, version = cur.lastrowid, 1
            else:
                agent_id, existing_game, version = row[0], row[1], row[2] + 1
                if existing_game != game:
                    raise ConfigError(
                        f"agent {name!r} already exists for game {existing_game!r}, not {game!r}"
                    )
                await db.execute("UPDATE agents SET version = ?, remote = ?, updated_at = ? WHERE id = ?",
                                 (version, code is None, now, agent_id))
            await db.execute(
                "INSERT INTO agent_versions (agent_id, version, code, created_at) VALUES (?, ?, ?, ?)",
                (agent_id, version, code, now),
            )
            return await _load_agent(db, agent_id)

    async def get_agent(self, agent_id: int) -> AgentRecord:
        """The agent at its current version.

        Raises:
            AgentNotFound: no agent ``agent_id``.
        """
        async with self._read(f"read agent {agent_id}") as db:
            return await _load_agent(db, agent_id)

    async def get_agent_code(self, agent_id: int, version: int) -> str | None:
        """The code of one version (``None`` for a remote agent).

        Raises:
            AgentNotFound: no such agent, or no such version of it.
        """
        async with self._read(f"read code of agent {agent_id}") as db:
            row = await _fetchone(db, "SELECT code FROM agent_versions WHERE agent_id = ? AND version = ?",
                                  (agent_id, version))
            if row is None:
                await _load_agent(db, agent_id)  # raises if the agent itself is unknown
                raise AgentNotFound((agent_id, version))
        code: str | None = row[0]
        return code

    async def list_agents(
        self, *, game: str | None = None, user_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AgentRecord], str | None]:
        """Agents in id order, a page at a time.

        Raises:
            ProtocolError: ``cursor`` is not one this method returned.
        """
        where: list[str] = ["a.id > ?"]
        params: list[Any] = [_parse_cursor(cursor, default=0)]
        if game is not None:
            where.append("a.game = ?")
            params.append(game)
        if user_id is not None:
            where.append("a.user_id = ?")
            params.append(user_id)
        limit = _clamp(limit)
        sql = f"{_AGENT_SELECT} WHERE {' AND '.join(where)} ORDER BY a.id LIMIT ?"
        async with self._read("list agents") as db:
            rows = await db.execute_fetchall(sql, (*params, limit + 1))
        agents = [_agent(row) for row in rows]
        return _page(agents, limit)

    # -- matches -----------------------------------------------------------------------------------

    async def create_match(
        self, game: str, rules_version: int, config: dict[str, JSON], seed: int, seats: Sequence[NewSeat],
        tags: dict[str, JSON] | None = None,
    ) -> MatchRecord:
        """Store a new match in status ``pending``.

        Raises:
            AgentNotFound: a seat names an unknown agent or version.
        """
        config_json, tags_json = encode_json(config).decode(), encode_json(tags or {}).decode()
        now = time.time()
        async with self._write(f"create a {game} match") as db:
            for seat in seats:
                if await _fetchone(db, "SELECT 1 FROM agent_versions WHERE agent_id = ? AND version = ?",
                                   (seat.agent_id, seat.version)) is None:
                    await _load_agent(db, seat.agent_id)  # raises if the agent itself is unknown
                    raise AgentNotFound((seat.agent_id, seat.version))
            cur = await db.execute(
                "INSERT INTO matches (game, rules_version, status, config, seed, tags, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (game, rules_version, MatchStatus.PENDING.value, config_json, seed, tags_json, now),
            )
            assert cur.lastrowid is not None
            match_id = cur.lastrowid
            await db.executemany(
                "INSERT INTO match_seats (match_id, seat, agent_id, version) VALUES (?, ?, ?, ?)",
                [(match_id, i, s.agent_id, s.version) for i, s in enumerate(seats)],
            )
            return (await _load_matches(db, "WHERE id = ?", (match_id,)))[0]

    async def set_match_live(self, match_id: int, started_at: float) -> None:
        """Mark a pending match live.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has already ended.
        """
        async with self._write(f"start match {match_id}") as db:
            status = await _match_status(db, match_id)
            if status not in (MatchStatus.PENDING, MatchStatus.LIVE):
                raise StorageError(f"match {match_id} is {status.value}; it cannot go live")
            await db.execute("UPDATE matches SET status = ?, started_at = ? WHERE id = ?",
                             (MatchStatus.LIVE.value, started_at, match_id))

    async def append_steps(self, match_id: int, steps: Sequence[StepRecord]) -> None:
        """Queue steps for the match's event log (append-only); the writer commits them shortly.

        A step that cannot be stored is reported by the next :meth:`finish_match` of this
        match (and the next :meth:`flush`), not here.

        Raises:
            StorageError: the storage is closed.
        """
        if not steps:
            return
        self._check_open()
        records = [(step.step, encode(step).decode()) for step in steps]
        while len(self._queue) >= MAX_QUEUED_ROWS:  # the writer is far behind: slow the producers down
            await self._wait_handled(self._queue[0].seq)
            self._check_open()
        for step, record in records:
            self._seq += 1
            self._queue.append(_QueuedStep(self._seq, match_id, step, record))
        self._last_seq[match_id] = self._seq
        self._wake.set()
        if len(self._queue) >= BATCH_ROWS:
            self._hurry.set()

    async def flush(self) -> None:
        """Wait until every step queued so far is committed.

        Raises:
            StorageError: steps of some match could not be stored (reported once here, and
                again by that match's ``finish_match``).
        """
        await self._wait_handled(self._seq)
        failures = [self._failures[m] for m in sorted(self._unreported) if m in self._failures]
        self._unreported.clear()
        if failures:
            detail = "; ".join(str(f.error()) for f in failures)
            raise StorageError(f"queued steps could not be stored: {detail}") from failures[0].cause

    async def finish_match(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: Sequence[SeatResult],
        finished_at: float,
    ) -> MatchRecord:
        """Record the end of a match; every step appended before is durable when this returns.

        Raises:
            StorageError: some of the match's steps could not be stored (the end is not
                recorded; finishing it again, e.g. as aborted, then succeeds), or the match
                has already ended.
            MatchNotFound: no match ``match_id``.
            ValueError: ``status`` is not an end status, or ``seats`` has the wrong length.
        """
        if status not in (MatchStatus.FINISHED, MatchStatus.ABORTED):
            raise ValueError(f"finish_match needs an end status, not {status.value!r}")
        await self._wait_handled(self._last_seq.get(match_id, 0))
        failure = self._failures.pop(match_id, None)
        if failure is not None:
            self._unreported.discard(match_id)
            raise failure.error()
        async with self._write(f"finish match {match_id}") as db:
            current = await _match_status(db, match_id)
            if current not in (MatchStatus.PENDING, MatchStatus.LIVE):
                raise StorageError(f"match {match_id} has already ended ({current.value})")
            row = await _fetchone(db, "SELECT count(*) FROM match_seats WHERE match_id = ?", (match_id,))
            n_seats = 0 if row is None else int(row[0])
            if n_seats != len(seats):
                raise ValueError(f"match {match_id} has {n_seats} seats, got {len(seats)} results")
            await db.executemany(
                "UPDATE match_seats SET status = ?, reward = ?, reason = ? WHERE match_id = ? AND seat = ?",
                [(s.status, s.reward, s.reason, match_id, i) for i, s in enumerate(seats)],
            )
            await db.execute(
                "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
                " steps = (SELECT count(*) FROM match_steps WHERE match_id = ?) WHERE id = ?",
                (status.value, reason, finished_at, match_id, match_id),
            )
            return (await _load_matches(db, "WHERE id = ?", (match_id,)))[0]

    async def get_match(self, match_id: int) -> MatchRecord:
        """The match with its seats; ``steps`` counts the steps stored so far.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._wait_handled(self._last_seq.get(match_id, 0))
        async with self._read(f"read match {match_id}") as db:
            matches = await _load_matches(db, "WHERE id = ?", (match_id,))
        if not matches:
            raise MatchNotFound(match_id)
        return matches[0]

    async def list_matches(
        self, *, status: MatchStatus | None = None, agent_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[MatchRecord], str | None]:
        """Newest first, a page at a time.

        Raises:
            ProtocolError: ``cursor`` is not one this method returned.
        """
        where: list[str] = []
        params: list[Any] = []
        if cursor is not None:
            where.append("id < ?")
            params.append(_parse_cursor(cursor, default=0))
        if status is not None:
            where.append("status = ?")
            params.append(MatchStatus(status).value)
        if agent_id is not None:
            where.append("id IN (SELECT match_id FROM match_seats WHERE agent_id = ?)")
            params.append(agent_id)
        limit = _clamp(limit)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        async with self._read("list matches") as db:
            matches = await _load_matches(db, f"{clause}ORDER BY id DESC LIMIT ?", (*params, limit + 1))
        return _page(matches, limit)

    async def get_steps(self, match_id: int) -> list[StepRecord]:
        """The stored event log, in step order, including steps queued before this call.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._wait_handled(self._last_seq.get(match_id, 0))
        async with self._read(f"read steps of match {match_id}") as db:
            await _match_status(db, match_id)
            rows = await db.execute_fetchall(
                "SELECT record FROM match_steps WHERE match_id = ? ORDER BY step", (match_id,)
            )
        return [_decode_step(match_id, row[0]) for row in rows]

    async def abort_unfinished(self, reason: str) -> int:
        """Mark every pending or live match aborted (on start-up); returns how many."""
        async with self._write("abort unfinished matches") as db:
            cur = await db.execute(
                "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
                " steps = (SELECT count(*) FROM match_steps WHERE match_id = matches.id)"
                " WHERE status IN (?, ?)",
                (MatchStatus.ABORTED.value, reason, time.time(),
                 MatchStatus.PENDING.value, MatchStatus.LIVE.value),
            )
            return cur.rowcount

    async def standings(self, game: str) -> list[dict[str, JSON]]:
        """Per agent of ``game``: finished matches, wins, draws, losses and faults, best first.

        Counted per seat of a finished match (an agent playing itself counts twice): a win is
        a reward above every other seat's, a draw a reward tied for the top, anything else a
        loss; a fault is a seat that ended TIMEOUT, ERROR or INVALID. ``points`` is wins plus
        half the draws; agents without finished matches are listed last.
        """
        async with self._read(f"compute standings of {game}") as db:
            rows = await db.execute_fetchall(_STANDINGS, (MatchStatus.FINISHED.value, game, game))
        keys = ("agent_id", "name", "owner", "version", "matches", "wins", "draws", "losses", "faults")
        table: list[dict[str, JSON]] = []
        for row in rows:
            doc: dict[str, JSON] = dict(zip(keys, row, strict=True))
            doc["points"] = doc["wins"] + 0.5 * doc["draws"]
            table.append(doc)
        return table

    # -- seat logs ---------------------------------------------------------------------------------

    async def save_log(self, match_id: int, seat: int, text: str) -> None:
        """Store (or replace) one seat's log.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has no seat ``seat``.
        """
        async with self._write(f"save log of match {match_id} seat {seat}") as db:
            await _match_status(db, match_id)
            if await _fetchone(db, "SELECT 1 FROM match_seats WHERE match_id = ? AND seat = ?",
                               (match_id, seat)) is None:
                raise StorageError(f"match {match_id} has no seat {seat}")
            await db.execute(
                "INSERT INTO seat_logs (match_id, seat, text) VALUES (?, ?, ?)"
                " ON CONFLICT (match_id, seat) DO UPDATE SET text = excluded.text", (match_id, seat, text),
            )

    async def get_log(self, match_id: int, seat: int) -> str | None:
        """One seat's log, if one was saved."""
        async with self._read(f"read log of match {match_id} seat {seat}") as db:
            row = await _fetchone(db, "SELECT text FROM seat_logs WHERE match_id = ? AND seat = ?",
                                  (match_id, seat))
        return None if row is None else str(row[0])

    async def close(self) -> None:
        """Write every queued step, stop the writer and close the connections.

        Raises:
            StorageError: queued steps could not be stored and no caller has been told.
        """
        if self._is_closing:
            return
        self._is_closing = True
        self._wake.set()
        self._hurry.set()
        with anyio.CancelScope(shield=True):
            await self._writer_done.wait()
            while self._queue:  # the writer was cancelled before draining: finish its work here
                await self._write_queue()
            self._drained.set()
            async with self._write_lock:
                self._is_closed = True
                await self._db.close()
            if self._reader is not self._db:
                async with self._read_lock:
                    await self._reader.close()
        if self._unreported:
            failures = [self._failures[m] for m in sorted(self._unreported)]
            self._unreported.clear()
            detail = "; ".join(str(f.error()) for f in failures)
            raise StorageError(f"steps lost at close: {detail}") from failures[0].cause

    # -- the step writer ---------------------------------------------------------------------------

    async def _run_writer(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                if not self._queue:
                    if self._is_closing:
                        return
                    self._wake = anyio.Event()
                    await self._wake.wait()
                    continue
                if not (self._barriers or self._is_closing or len(self._queue) >= BATCH_ROWS):
                    self._hurry = anyio.Event()
                    with anyio.move_on_after(BATCH_WINDOW_S):
                        await self._hurry.wait()
                # a batch is a few milliseconds; finish it rather than leave a transaction half done
                with anyio.CancelScope(shield=True):
                    await self._write_queue()
        finally:
            self._writer_done.set()
            self._progress.set()

    async def _write_queue(self) -> None:
        """Write (at most ``MAX_BATCH_ROWS`` of) the queue and wake the barriers."""
        batch, self._queue = self._queue[:MAX_BATCH_ROWS], self._queue[MAX_BATCH_ROWS:]
        if not batch:
            return
        try:
            await self._insert_steps(batch)
        except sqlite3.Error as exc:
            by_match: dict[int, list[_QueuedStep]] = {}
            for row in batch:
                by_match.setdefault(row.match_id, []).append(row)
            if len(by_match) == 1:
                self._record_failure(batch, exc)
            else:  # one bad match must not sink the others: retry match by match
                for rows in by_match.values():
                    try:
                        await self._insert_steps(rows)
                    except sqlite3.Error as match_exc:
                        self._record_failure(rows, match_exc)
        self._handled_seq = batch[-1].seq
        for match_id in {row.match_id for row in batch}:
            if self._last_seq.get(match_id, 0) <= self._handled_seq:
                self._last_seq.pop(match_id, None)
        progress, self._progress = self._progress, anyio.Event()
        progress.set()

    async def _insert_steps(self, rows: Sequence[_QueuedStep]) -> None:
        counts = Counter(row.match_id for row in rows)
        async with self._write_lock:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.executemany("INSERT INTO match_steps (match_id, step, record) VALUES (?, ?, ?)",
                                     [(row.match_id, row.step, row.record) for row in rows])
                await db.executemany("UPDATE matches SET steps = steps + ? WHERE id = ?",
                                     [(n, match_id) for match_id, n in counts.items()])
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise

    def _record_failure(self, rows: Sequence[_QueuedStep], exc: sqlite3.Error) -> None:
        match_id = rows[0].match_id
        steps = tuple(row.step for row in rows)
        log.error("could not store %d step(s) of match_id=%s: %s", len(rows), match_id, exc)
        previous = self._failures.get(match_id)
        if previous is not None:
            steps = previous.steps + steps
            exc = previous.cause
        self._failures[match_id] = _WriteFailure(match_id, steps, exc)
        self._unreported.add(match_id)

    async def _wait_handled(self, seq: int) -> None:
        """Barrier: return once the writer has handled every row up to ``seq``."""
        if self._handled_seq >= seq:
            return
        self._barriers += 1
        try:
            while self._handled_seq < seq:
                if self._writer_done.is_set():
                    if self._is_closing:
                        await self._drained.wait()  # close() writes what the writer left
                    if self._handled_seq < seq:
                        raise StorageError("the step writer has stopped; queued steps were not written")
                    return
                self._hurry.set()
                await self._progress.wait()
        finally:
            self._barriers -= 1

    # -- transactions ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._is_closing:
            raise StorageError("storage is closed")

    @asynccontextmanager
    async def _write(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection; ``sqlite3`` errors become StorageError."""
        async with self._write_lock:
            if self._is_closed:
                raise StorageError(f"cannot {what}: storage is closed")
            db = self._db
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    with anyio.CancelScope(shield=True):
                        await db.execute("COMMIT")
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await _rollback(db)
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"cannot {what}: {exc}") from exc

    @asynccontextmanager
    async def _read(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """One read snapshot on the reader connection; ``sqlite3`` errors become StorageError."""
        async with self._read_lock:
            if self._is_closed:
                raise StorageError(f"cannot {what}: storage is closed")
            db = self._reader
            try:
                await db.execute("BEGIN")
                try:
                    yield db
                finally:
                    with anyio.CancelScope(shield=True):
                        await _rollback(db)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot {what}: {exc}") from exc


# -- connections and schema -------------------------------------------------------------------------


async def _connect(path: str | Path, *, query_only: bool = False) -> aiosqlite.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of sqlite3's implicit ones
    try:
        db = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {str(path)!r}: {exc}") from exc
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA foreign_keys = ON")
        if query_only:
            await db.execute("PRAGMA query_only = ON")
        else:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across app crashes
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await db.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"cannot open database {str(path)!r}: {exc}") from exc
        raise
    return db


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (kept in ``PRAGMA user_version``), one migration per
    transaction; each re-reads the version under the write lock, so two processes can race safely.

    Raises:
        StorageError: the database is newer than this code, or a migration failed.
    """
    try:
        for version, script in enumerate(_MIGRATIONS, start=1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                current = await _user_version(db)
                if current > SCHEMA_VERSION:
                    raise StorageError(
                        f"database schema version {current} is newer than this server's {SCHEMA_VERSION}"
                    )
                if current < version:
                    log.info("migrating database schema to version %d", version)
                    for statement in _statements(script):
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version = {version}")
                await db.execute("COMMIT")
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _rollback(db)
                raise
    except sqlite3.Error as exc:
        raise StorageError(f"cannot migrate database schema: {exc}") from exc


async def _user_version(db: aiosqlite.Connection) -> int:
    row = await _fetchone(db, "PRAGMA user_version", ())
    assert row is not None
    return int(row[0])


def _statements(script: str) -> Iterable[str]:
    """Split a script into statements (``executescript`` would commit our open transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]!r}")


async def _rollback(db: aiosqlite.Connection) -> None:
    # Always queue the ROLLBACK rather than test ``in_transaction`` first: after a cancelled
    # await, the BEGIN may still be waiting in the connection's thread; the queue keeps order.
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "no transaction is active" not in str(exc):
            raise


# -- rows to records --------------------------------------------------------------------------------


async def _fetchone(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
    async with db.execute(sql, params) as cur:
        return await cur.fetchone()


def _agent(row: sqlite3.Row) -> AgentRecord:
    return AgentRecord(
        id=row[0], user_id=row[1], owner=row[2], name=row[3], game=row[4], version=row[5],
        remote=bool(row[6]), code=row[7], created_at=row[8], updated_at=row[9],
    )


async def _load_agent(db: aiosqlite.Connection, agent_id: int) -> AgentRecord:
    row = await _fetchone(db, f"{_AGENT_SELECT} WHERE a.id = ?", (agent_id,))
    if row is None:
        raise AgentNotFound(agent_id)
    return _agent(row)


async def _match_status(db: aiosqlite.Connection, match_id: int) -> MatchStatus:
    row = await _fetchone(db, "SELECT status FROM matches WHERE id = ?", (match_id,))
    if row is None:
        raise MatchNotFound(match_id)
    return MatchStatus(row[0])


async def _load_matches(db: aiosqlite.Connection, tail: str, params: Sequence[Any]) -> list[MatchRecord]:
    """Matches selected by ``tail`` (WHERE/ORDER/LIMIT), with their seats, in that order."""
    rows = list(await db.execute_fetchall(f"{_MATCH_SELECT} {tail}", params))
    if not rows:
        return []
    seats: dict[int, list[SeatResult]] = {row[0]: [] for row in rows}
    marks = ", ".join("?" * len(seats))
    seat_rows = await db.execute_fetchall(
        "SELECT s.match_id, s.agent_id, a.name, u.name, s.version, s.status, s.reward, s.reason"
        " FROM match_seats s JOIN agents a ON a.id = s.agent_id JOIN users u ON u.id = a.user_id"
        f" WHERE s.match_id IN ({marks}) ORDER BY s.match_id, s.seat", tuple(seats),
    )
    for s in seat_rows:
        seats[s[0]].append(SeatResult(*s[1:]))
    return [
        MatchRecord(
            id=row[0], game=row[1], rules_version=row[2], status=MatchStatus(row[3]), reason=row[4],
            config=_decode_json(row[5]), seed=row[6], seats=seats[row[0]], tags=_decode_json(row[7]),
            created_at=row[8], started_at=row[9], finished_at=row[10], steps=row[11],
        )
        for row in rows
    ]


def _decode_json(text: str) -> Any:
    return decode_json(text, max_bytes=_MAX_STORED_BYTES)


def _decode_step(match_id: int, text: str) -> StepRecord:
    """Rebuild a stored step, ``SeatTiming`` entries included.

    Raises:
        StorageError: the stored record is not a step (a corrupt or foreign row).
    """
    try:
        raw = _decode_json(text)
        timing = [
            None if t is None else SeatTiming(wall_s=t["wall_s"], cpu_s=t["cpu_s"], bank_s=t["bank_s"])
            for t in raw.get("timing", [])
        ]
        return StepRecord(step=raw["step"], actions=raw["actions"], statuses=raw["statuses"],
                          rewards=raw["rewards"], state=raw["state"], timing=timing)
    except (ProtocolError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(f"a stored step of match {match_id} is malformed: {exc!r}") from exc


# -- paging -----------------------------------------------------------------------------------------


def _clamp(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def _parse_cursor(cursor: str | None, *, default: int) -> int:
    if cursor is None:
        return default
    try:
        value = int(cursor)
    except ValueError:
        value = -1
    if value < 0:
        raise ProtocolError(f"bad page cursor {cursor!r}", code="bad_cursor", field="cursor")
    return value


def _page(items: list[_R], limit: int) -> tuple[list[_R], str | None]:
    """Cut a page fetched with ``limit + 1`` rows; the extra row only says there is a next page."""
    if len(items) > limit:
        items = items[:limit]
        return items, str(items[-1].id)
    return items, None
