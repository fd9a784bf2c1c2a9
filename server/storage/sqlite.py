"""SQLite storage on aiosqlite, with a batching writer for match steps.

Theory of operation
-------------------
A file database gets two connections, each an aiosqlite worker thread: a *writer* (every
write, serialised by ``_write_lock`` so transactions never interleave) and a *reader*
(``query_only``). In WAL mode readers never block the writer and see only committed data;
each read runs in its own ``BEGIN`` so a match and its seats come from one snapshot. An
in-memory database has a single connection, so there reader and writer share one lock.

Steps are the hot path and do not go through ``_write``: ``append_steps`` queues them for
the batching step writer, whose theory of operation opens ``_steps.py``. The schema and its
migrations are in ``_schema.py``; the SELECTs that build records from rows in ``_rows.py``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from protocol.codec import encode_json
from protocol.errors import (
    AgentNotFound,
    ConfigError,
    MatchNotFound,
    NameTaken,
    ProtocolError,
    StorageError,
    UserNotFound,
    short_reason,
)
from protocol.messages import StepRecord
from server.ladder import is_rated_match

from . import _ratings
from ._rows import (
    _AGENT_SELECT,
    _agent,
    _clamp,
    _decode_step,
    _is_row_id,
    _load_agent,
    _load_matches,
    _match_status,
    _page,
    _parse_cursor,
    _standings,
    _step_text,
)
from ._schema import SCHEMA_VERSION, _connect, _fetchone, _migrate, _rollback
from ._steps import BATCH_ROWS, BATCH_WINDOW_S, StepWriter
from .base import (
    JSON,
    AgentRecord,
    EncodedStep,
    MatchRecord,
    MatchStatus,
    NewSeat,
    RatedMatch,
    RatingRecord,
    SeatResult,
    UserRecord,
)

__all__ = ["BATCH_ROWS", "BATCH_WINDOW_S", "SCHEMA_VERSION", "SqliteStorage", "open_sqlite"]

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
                await tg.start(storage._steps.run)
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


def _short(reason: str | None) -> str | None:
    return None if reason is None else short_reason(reason)


class SqliteStorage:
    """The :class:`~server.storage.base.Storage` on SQLite; make one with :func:`open_sqlite`."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._db = writer
        self._reader = reader
        self._write_lock = anyio.Lock()
        self._read_lock = self._write_lock if reader is writer else anyio.Lock()
        self._is_closed = False
        self._steps = StepWriter(writer, self._write_lock)  # the batching step writer; see _steps.py

    # -- users -------------------------------------------------------------------------------------

    async def create_user(self, name: str, token_hash: str, created_from: str | None = None) -> UserRecord:
        """Store a new user, with the client address it signed up from (if known).

        Raises:
            StorageError: the name or the token hash is taken.
        """
        now = time.time()
        async with self._write(f"create user {name!r}") as db:
            if await _fetchone(db, "SELECT 1 FROM users WHERE name = ?", (name,)) is not None:
                raise NameTaken(f"user name {name!r} is taken")
            cur = await db.execute(
                "INSERT INTO users (name, token_hash, created_at, created_from) VALUES (?, ?, ?, ?)",
                (name, token_hash, now, created_from),
            )
            assert cur.lastrowid is not None
            return UserRecord(cur.lastrowid, name, now, created_from)

    async def user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        """The user holding this token hash, if any."""
        async with self._read("look up a token") as db:
            row = await _fetchone(db, "SELECT id, name, created_at, created_from FROM users WHERE token_hash = ?",
                                  (token_hash,))
        return None if row is None else UserRecord(*row)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        """The user of that name, if any."""
        async with self._read(f"look up user {name!r}") as db:
            row = await _fetchone(db, "SELECT id, name, created_at, created_from FROM users WHERE name = ?",
                                  (name,))
        return None if row is None else UserRecord(*row)

    async def rotate_token(self, user_id: int, token_hash: str) -> None:
        """Replace the user's token hash; the old token stops working with this commit.

        Raises:
            UserNotFound: no user ``user_id``.
        """
        if not _is_row_id(user_id):
            raise UserNotFound(user_id)
        async with self._write(f"rotate the token of user {user_id}") as db:
            cur = await db.execute("UPDATE users SET token_hash = ? WHERE id = ?", (token_hash, user_id))
            if cur.rowcount != 1:
                raise UserNotFound(user_id)

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

    async def update_agent(
        self, agent_id: int, *, name: str | None = None, disabled: bool | None = None
    ) -> AgentRecord:
        """Rename or (dis)able an agent.

        Raises:
            AgentNotFound: no agent ``agent_id``.
            NameTaken: the owner already has an agent of that name.
        """
        async with self._write(f"update agent {agent_id}") as db:
            agent = await _load_agent(db, agent_id)
            if name is not None and name != agent.name:
                if await _fetchone(db, "SELECT 1 FROM agents WHERE user_id = ? AND name = ?",
                                   (agent.user_id, name)) is not None:
                    raise NameTaken(f"you already have an agent named {name!r}")
                await db.execute("UPDATE agents SET name = ?, updated_at = ? WHERE id = ?",
                                 (name, time.time(), agent_id))
            if disabled is not None and disabled != agent.disabled:
                await db.execute("UPDATE agents SET disabled = ?, updated_at = ? WHERE id = ?",
                                 (disabled, time.time(), agent_id))
            return await _load_agent(db, agent_id)

    async def get_agent(self, agent_id: int) -> AgentRecord:
        """The agent at its current version.

        Raises:
            AgentNotFound: no agent ``agent_id``.
        """
        async with self._read(f"read agent {agent_id}") as db:
            return await _load_agent(db, agent_id)

    async def get_agents(self, agent_ids: Sequence[int]) -> dict[int, AgentRecord]:
        """These agents at their current versions, by id, in one query; unknown ids are left out."""
        ids = sorted({a for a in agent_ids if _is_row_id(a)})
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        async with self._read(f"read {len(ids)} agents") as db:
            rows = await db.execute_fetchall(f"{_AGENT_SELECT} WHERE a.id IN ({marks})", ids)
        return {agent.id: agent for agent in map(_agent, rows)}

    async def get_agent_code(self, agent_id: int, version: int) -> str | None:
        """The code of one version (``None`` for a remote agent).

        Raises:
            AgentNotFound: no such agent, or no such version of it.
        """
        if not _is_row_id(agent_id):
            raise AgentNotFound(agent_id)
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
        if user_id is not None and not _is_row_id(user_id):
            return [], None  # no user has that id
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
        tags: dict[str, JSON] | None = None, *, rated: bool = False,
    ) -> MatchRecord:
        """Store a new match in status ``pending``. ``rated`` asks for a ladder match; it is
        stored rated only when its seats are distinct agents (an agent playing itself is never
        rated), and an unrated match is marked done for the rater at once.

        Raises:
            AgentNotFound: a seat names an unknown agent or version.
        """
        config_json, tags_json = encode_json(config).decode(), encode_json(tags or {}).decode()
        is_rated = rated and is_rated_match([seat.agent_id for seat in seats])
        now = time.time()
        async with self._write(f"create a {game} match") as db:
            for seat in seats:
                if not _is_row_id(seat.agent_id):
                    raise AgentNotFound(seat.agent_id)
                if await _fetchone(db, "SELECT 1 FROM agent_versions WHERE agent_id = ? AND version = ?",
                                   (seat.agent_id, seat.version)) is None:
                    await _load_agent(db, seat.agent_id)  # raises if the agent itself is unknown
                    raise AgentNotFound((seat.agent_id, seat.version))
            cur = await db.execute(
                "INSERT INTO matches (game, rules_version, status, config, seed, tags, created_at, rated, rating_done)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (game, rules_version, MatchStatus.PENDING.value, config_json, seed, tags_json, now, is_rated,
                 not is_rated),
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

    async def append_steps(self, match_id: int, steps: Sequence[StepRecord | EncodedStep]) -> None:
        """Queue steps for the match's event log (append-only); the writer commits them shortly.
        An ``EncodedStep`` is stored as its text, as encoded by the caller.

        A step that cannot be stored is reported by the next :meth:`finish_match` of this
        match (and the next :meth:`flush`), not here.

        Raises:
            StorageError: the storage is closed.
        """
        await self._steps.append(match_id, steps)

    async def flush(self) -> None:
        """Wait until every step queued so far is committed.

        Raises:
            StorageError: steps of some match could not be stored (reported once here, and
                again by that match's ``finish_match``).
        """
        await self._steps.flush()

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
        await self._steps.wait_match(match_id)
        self._steps.raise_failure(match_id)
        async with self._write(f"finish match {match_id}") as db:
            current = await _match_status(db, match_id)
            if current not in (MatchStatus.PENDING, MatchStatus.LIVE):
                raise StorageError(f"match {match_id} has already ended ({current.value})")
            row = await _fetchone(db, "SELECT count(*) FROM match_seats WHERE match_id = ?", (match_id,))
            n_seats = 0 if row is None else int(row[0])
            if n_seats != len(seats):
                raise ValueError(f"match {match_id} has {n_seats} seats, got {len(seats)} results")
            # Every reason that is stored quotes a short prefix at most (whoever built it): it goes
            # into every list of matches, lobby frame and result that names the match.
            await db.executemany(
                "UPDATE match_seats SET status = ?, reward = ?, reason = ? WHERE match_id = ? AND seat = ?",
                [(s.status, s.reward, _short(s.reason), match_id, i) for i, s in enumerate(seats)],
            )
            await db.execute(
                "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
                " steps = (SELECT count(*) FROM match_steps WHERE match_id = ?) WHERE id = ?",
                (status.value, _short(reason), finished_at, match_id, match_id),
            )
            return (await _load_matches(db, "WHERE id = ?", (match_id,)))[0]

    async def get_match(self, match_id: int) -> MatchRecord:
        """The match with its seats; ``steps`` counts the steps stored so far.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        if not _is_row_id(match_id):
            raise MatchNotFound(match_id)
        await self._steps.wait_match(match_id)
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
            if not _is_row_id(agent_id):
                return [], None  # no agent has that id
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
        await self._steps.wait_match(match_id)
        async with self._read(f"read steps of match {match_id}") as db:
            await _match_status(db, match_id)
            rows = await db.execute_fetchall(
                "SELECT record FROM match_steps WHERE match_id = ? ORDER BY step", (match_id,)
            )
        return [_decode_step(match_id, row[0]) for row in rows]

    async def get_step_texts(self, match_id: int, from_step: int, limit: int) -> list[tuple[int, str]]:
        """A page of the stored event log as ``(step, text)``, in step order, including steps
        queued before this call: up to ``limit`` steps from ``from_step`` on (an index range,
        so a page costs the same wherever it starts).

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        async with self._read(f"read steps of match {match_id}") as db:
            await _match_status(db, match_id)
            rows = await db.execute_fetchall(
                "SELECT step, record FROM match_steps WHERE match_id = ? AND step >= ? ORDER BY step LIMIT ?",
                (match_id, max(0, from_step), max(0, limit)),
            )
        return [(row[0], _step_text(match_id, row[1])) for row in rows]

    async def get_last_step_texts(self, match_id: int, count: int) -> list[tuple[int, str]]:
        """The last ``count`` stored steps as ``(step, text)``, in step order.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        async with self._read(f"read steps of match {match_id}") as db:
            await _match_status(db, match_id)
            rows = await db.execute_fetchall(
                "SELECT step, record FROM match_steps WHERE match_id = ? ORDER BY step DESC LIMIT ?",
                (match_id, max(0, count)),
            )
        return [(row[0], _step_text(match_id, row[1])) for row in reversed(list(rows))]

    async def abort_unfinished(self, reason: str) -> int:
        """Mark every pending or live match aborted (on start-up); returns how many."""
        async with self._write("abort unfinished matches") as db:
            cur = await db.execute(
                "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
                " steps = (SELECT count(*) FROM match_steps WHERE match_id = matches.id)"
                " WHERE status IN (?, ?)",
                (MatchStatus.ABORTED.value, _short(reason), time.time(),
                 MatchStatus.PENDING.value, MatchStatus.LIVE.value),
            )
            return cur.rowcount

    async def standings(self, game: str) -> list[dict[str, JSON]]:
        """Per agent of ``game``: finished matches, wins, draws, losses and faults, best first.

        Every finished match counts once per agent in it, challenges included, whatever seats
        the agent held: its best reward above every other agent's is a win, tied with the best
        other a draw, anything else a loss; a match of an agent against itself is a draw. A
        fault is a match where one of its seats ended TIMEOUT, ERROR or INVALID. ``points`` is
        wins plus half the draws; agents without finished matches are listed last.
        ``rated_wins``, ``rated_draws`` and ``rated_losses`` count the rated (ladder) matches
        alone: the results its rating was computed from.
        """
        async with self._read(f"compute standings of {game}") as db:
            return await _standings(db, game)

    # -- the rated ladder (the SQL is in _ratings.py, the rules in server/ladder.py) ----------------

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        """Rate up to ``limit`` finished matches not rated yet, oldest end first, in one
        transaction that also marks them rated: each is rated exactly once, across restarts too."""
        async with self._write("rate finished matches") as db:
            return await _ratings.rate_finished(db, limit, time.time())

    async def get_ratings(self, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
        """The ratings of these agents (the default for an unrated one); unknown ids are left out."""
        async with self._read("read ratings") as db:
            return await _ratings.get_ratings(db, agent_ids)

    async def leaderboard(self, game: str) -> list[dict[str, JSON]]:
        """Every agent of ``game``, best rating first, with its standings; see ``_ratings.leaderboard``."""
        async with self._read(f"compute the leaderboard of {game}") as db:
            return await _ratings.leaderboard(db, game)

    async def ladder_matches_of_versions(self, versions: Mapping[int, int]) -> dict[int, int]:
        """Rated matches per ``agent id -> version`` (see ``_ratings.ladder_matches_of_versions``)."""
        async with self._read("count the ladder matches of agent versions") as db:
            return await _ratings.ladder_matches_of_versions(db, versions)

    async def ladder_ends_since(self, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
        """``(game, finished_at, agent ids)`` of the rated matches finished after ``since``, oldest first."""
        async with self._read("read the ladder's recent matches") as db:
            return await _ratings.ladder_ends_since(db, since)

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
        if not (_is_row_id(match_id) and _is_row_id(seat)):
            return None
        async with self._read(f"read log of match {match_id} seat {seat}") as db:
            row = await _fetchone(db, "SELECT text FROM seat_logs WHERE match_id = ? AND seat = ?",
                                  (match_id, seat))
        return None if row is None else str(row[0])

    async def ping(self) -> None:
        """A trivial read, for ``GET /api/health``.

        Raises:
            StorageError: the storage is closed or the database does not answer.
        """
        async with self._read("answer a health check") as db:
            await db.execute("SELECT 1")

    async def close(self) -> None:
        """Write every queued step, stop the writer and close the connections.

        Raises:
            StorageError: queued steps could not be stored and no caller has been told.
        """
        if self._steps.is_closing:
            return
        with anyio.CancelScope(shield=True):
            await self._steps.drain()
            async with self._write_lock:
                self._is_closed = True
                await self._db.close()
            if self._reader is not self._db:
                async with self._read_lock:
                    await self._reader.close()
        self._steps.raise_unreported()

    # -- transactions ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection; ``sqlite3`` errors become StorageError."""
        async with self._write_lock:
            if self._is_closed:
                raise StorageError(f"cannot {what}: storage is closed")
            db = self._db
            try:
                # Shielded: a BEGIN cancelled on its way (a request whose client left, a timed-out
                # health probe) still runs in the connection's thread, and would leave it inside a
                # transaction that nobody ends: every later BEGIN on it would fail.
                with anyio.CancelScope(shield=True):
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
            except OverflowError as exc:  # an integer no column can hold; ids are checked before
                raise ProtocolError(f"cannot {what}: a number does not fit 64 bits", code="out_of_range") from exc

    @asynccontextmanager
    async def _read(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """One read snapshot on the reader connection; ``sqlite3`` errors become StorageError."""
        async with self._read_lock:
            if self._is_closed:
                raise StorageError(f"cannot {what}: storage is closed")
            db = self._reader
            try:
                with anyio.CancelScope(shield=True):  # as in _write: never leave a transaction open
                    await db.execute("BEGIN")
                try:
                    yield db
                finally:
                    with anyio.CancelScope(shield=True):
                        await _rollback(db)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot {what}: {exc}") from exc
            except OverflowError as exc:  # an integer no column can hold; ids are checked before
                raise ProtocolError(f"cannot {what}: a number does not fit 64 bits", code="out_of_range") from exc
