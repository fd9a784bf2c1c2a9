"""PostgreSQL storage: the storage calls on a pool of connections, and the batching step writer.

Theory of operation
-------------------
:class:`PostgresStorage` is the same storage as :class:`~server.storage.sqlite.SqliteStorage`
(the same records, errors and guarantees, the same schema versions) on a PostgreSQL server
reached with asyncpg, so that several processes can share one database. It checks each
call's arguments as the SQLite storage does and runs the call's body on a connection of its
pool (``POOL_MAX_SIZE`` connections), framed one of three ways:

- a *write* is one transaction at READ COMMITTED; where a body reads before it writes, it
  locks what it read (``SELECT ... FOR UPDATE`` of a match before its end is stored) or lets
  a constraint settle the race (a name taken meanwhile), so concurrent writers, in this
  process or another, never both succeed where only one may;
- a *snapshot* is a read-only REPEATABLE READ transaction, for a read of several statements
  (the leaderboard's standings and ratings);
- a *read* of one statement needs no frame (a match with its seats is one statement).

The ladder's rating pass is a write that also takes an advisory lock: see ``_pg_ratings.py``
for why each match is rated exactly once whoever else rates meanwhile.

Cancellation, as on SQLite: a call cancelled before it starts does nothing; once started it
runs to its end, shielded, and its caller gets its outcome, so no caller has to guess whether
a commit it did not wait for happened (a match cancelled while its end is stored gets the
stored end back). Every statement is bounded by ``STATEMENT_TIMEOUT_S``, so a server that
stopped answering cannot hold a caller for ever. asyncpg's errors become
:class:`StorageError` (or :class:`ProtocolError` for a number no column holds); what the
bodies raise (the arena's errors) passes.

Steps go through the same batching writer as on SQLite (``_steps.py``); a batch is one
transaction (``_pg_matches.insert_steps``). The bodies of the calls are in
``_pg_accounts.py``, ``_pg_matches.py`` and ``_pg_ratings.py``; the schema and connecting in
``_pg_schema.py``; rows become records through the shared decoders of ``_rows.py``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple

import anyio
import anyio.lowlevel
import asyncpg

from protocol.codec import encode_json
from protocol.errors import AgentNotFound, MatchNotFound, ProtocolError, StorageError, UserNotFound
from protocol.messages import JSON, StepRecord
from server.ladder.rules import is_rated_match

from . import _pg_accounts, _pg_matches, _pg_ratings
from ._pg_schema import (
    CONNECTION_ERRORS,
    POOL_MAX_SIZE,
    STATEMENT_TIMEOUT_S,
    Conn,
    Pool,
    connect_pool,
    describe,
    migrate,
)
from ._rows import _clamp, _decode_step, _is_row_id, _page, _parse_cursor, _step_text
from ._schema import SCHEMA_VERSION
from ._steps import StepRow, StepWriter, writing
from .base import (
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

__all__ = ["POOL_MAX_SIZE", "SCHEMA_VERSION", "STATEMENT_TIMEOUT_S", "PostgresStorage", "open_postgres"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_CLOSE_TIMEOUT_S = 10.0  # then the pool's connections are closed without waiting for their users


class _Frame(enum.Enum):
    WRITE = "write"
    SNAPSHOT = "snapshot"
    READ = "read"


@asynccontextmanager
async def open_postgres(url: str) -> AsyncIterator[PostgresStorage]:
    """Connect to the database at ``url`` (``postgresql://USER:PASSWORD@HOST:PORT/DB``), create
    or migrate its schema, and run the step writer.

    On exit every queued step is written and the connections are closed.

    Raises:
        StorageError: the server cannot be reached or refuses the login, the database's schema
            is newer than this code, or a queued step could not be written and no caller was told.
    """
    pool = await connect_pool(url)
    try:
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except CONNECTION_ERRORS as exc:
            raise StorageError(f"cannot migrate database schema: {describe(exc)}") from exc
        storage = PostgresStorage(pool)
        async with writing(storage._steps, storage.close):
            yield storage
    finally:
        if not pool.is_closing():  # opening failed half-way; close() closes it otherwise
            pool.terminate()


async def _framed(conn: Conn, frame: _Frame, fn: Callable[[Conn, *Ts], Awaitable[T]], *args: *Ts) -> T:
    """``fn(conn, *args)`` in the transaction ``frame`` asks for (none for a read)."""
    if frame is _Frame.READ:
        return await fn(conn, *args)
    if frame is _Frame.SNAPSHOT:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await fn(conn, *args)
    async with conn.transaction():
        return await fn(conn, *args)


async def _select_one(conn: Conn) -> None:
    await conn.fetchval("SELECT 1")


class PostgresStorage:
    """The :class:`~server.storage.base.Storage` on PostgreSQL; make one with :func:`open_postgres`."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._is_closed = False
        self._steps = StepWriter(self._write_steps)  # the batching step writer; see _steps.py

    async def _write_steps(self, batch: Sequence[StepRow]) -> list[tuple[list[StepRow], Exception]]:
        return await _pg_matches.insert_steps(self._pool, batch)

    async def _run(self, what: str, frame: _Frame, fn: Callable[[Conn, *Ts], Awaitable[T]], *args: *Ts) -> T:
        """``fn(conn, *args)`` on a connection of the pool, framed as ``frame`` says; shielded once begun.

        Raises:
            StorageError: the storage is closed, or the database failed.
            ProtocolError: a number does not fit the 64-bit integers of the columns.
        """
        if self._is_closed:
            raise StorageError(f"cannot {what}: storage is closed")
        await anyio.lowlevel.checkpoint_if_cancelled()  # a caller cancelled already starts nothing
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.acquire(timeout=STATEMENT_TIMEOUT_S) as conn:
                    result = await _framed(conn, frame, fn, *args)
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            # An argument no column can hold (asyncpg refuses to encode it), or a result none can:
            # ids are checked before, so this is some other number, the caller's to fix.
            if isinstance(exc.__cause__, OverflowError) or isinstance(exc, asyncpg.NumericValueOutOfRangeError):
                raise ProtocolError(f"cannot {what}: a number does not fit 64 bits", code="out_of_range") from exc
            raise StorageError(f"cannot {what}: {describe(exc)}") from exc
        return result

    # -- users -------------------------------------------------------------------------------------

    async def create_user(self, name: str, token_hash: str, created_from: str | None = None) -> UserRecord:
        """Store a new user, with the client address it signed up from (if known).

        Raises:
            StorageError: the name (NameTaken) or the token hash is taken.
        """
        return await self._run(f"create user {name!r}", _Frame.WRITE, _pg_accounts.create_user, name, token_hash,
                               created_from, time.time())

    async def user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        """The user holding this token hash, if any."""
        return await self._run("look up a token", _Frame.READ, _pg_accounts.user_by, "token_hash", token_hash)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        """The user of that name, if any."""
        return await self._run(f"look up user {name!r}", _Frame.READ, _pg_accounts.user_by, "name", name)

    async def rotate_token(self, user_id: int, token_hash: str) -> None:
        """Replace the user's token hash; the old token stops working with this commit.

        Raises:
            UserNotFound: no user ``user_id``.
        """
        if not _is_row_id(user_id):
            raise UserNotFound(user_id)
        await self._run(f"rotate the token of user {user_id}", _Frame.WRITE, _pg_accounts.rotate_token, user_id,
                        token_hash)

    # -- agents ------------------------------------------------------------------------------------

    async def save_agent(self, user_id: int, name: str, game: str, code: str | None) -> AgentRecord:
        """Create an agent, or store a new version of the owner's agent of that name.

        Raises:
            UserNotFound: no user ``user_id``.
            ConfigError: the owner's agent of that name plays another game.
        """
        return await self._run(f"save agent {name!r}", _Frame.WRITE, _pg_accounts.save_agent, user_id, name, game,
                               code, time.time())

    async def update_agent(
        self, agent_id: int, *, name: str | None = None, disabled: bool | None = None
    ) -> AgentRecord:
        """Rename or (dis)able an agent.

        Raises:
            AgentNotFound: no agent ``agent_id``.
            NameTaken: the owner already has an agent of that name.
        """
        return await self._run(f"update agent {agent_id}", _Frame.WRITE, _pg_accounts.update_agent, agent_id, name,
                               disabled, time.time())

    async def get_agent(self, agent_id: int) -> AgentRecord:
        """The agent at its current version.

        Raises:
            AgentNotFound: no agent ``agent_id``.
        """
        return await self._run(f"read agent {agent_id}", _Frame.READ, _pg_accounts.load_agent, agent_id)

    async def get_agents(self, agent_ids: Sequence[int]) -> dict[int, AgentRecord]:
        """These agents at their current versions, by id, in one query; unknown ids are left out."""
        ids = sorted({a for a in agent_ids if _is_row_id(a)})
        if not ids:
            return {}
        return await self._run(f"read {len(ids)} agents", _Frame.READ, _pg_accounts.get_agents, ids)

    async def get_agent_code(self, agent_id: int, version: int) -> str | None:
        """The code of one version (``None`` for a remote agent).

        Raises:
            AgentNotFound: no such agent, or no such version of it.
        """
        if not _is_row_id(agent_id):
            raise AgentNotFound(agent_id)
        return await self._run(f"read code of agent {agent_id}", _Frame.READ, _pg_accounts.get_agent_code, agent_id,
                               version)

    async def list_agents(
        self, *, game: str | None = None, user_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AgentRecord], str | None]:
        """Agents in id order, a page at a time.

        Raises:
            ProtocolError: ``cursor`` is not one this method returned.
        """
        params: list[Any] = [_parse_cursor(cursor, default=0)]
        where: list[str] = ["a.id > $1"]
        if user_id is not None and not _is_row_id(user_id):
            return [], None  # no user has that id
        if game is not None:
            params.append(game)
            where.append(f"a.game = ${len(params)}")
        if user_id is not None:
            params.append(user_id)
            where.append(f"a.user_id = ${len(params)}")
        limit = _clamp(limit)
        params.append(limit + 1)
        agents = await self._run("list agents", _Frame.READ, _pg_accounts.list_agents,
                                 f"{' AND '.join(where)} ORDER BY a.id LIMIT ${len(params)}", params)
        return _page(agents, limit)

    # -- matches -----------------------------------------------------------------------------------

    async def create_match(
        self, game: str, rules_version: int, config: dict[str, JSON], seed: int, seats: Sequence[NewSeat],
        tags: dict[str, JSON] | None = None, *, rated: bool = False,
    ) -> MatchRecord:
        """Store a new match in status ``pending``; ``rated`` as ``SqliteStorage.create_match`` says.

        Raises:
            AgentNotFound: a seat names an unknown agent or version.
        """
        config_json, tags_json = encode_json(config).decode(), encode_json(tags or {}).decode()
        is_rated = rated and is_rated_match([seat.agent_id for seat in seats])
        return await self._run(f"create a {game} match", _Frame.WRITE, _pg_matches.create_match, game, rules_version,
                               config_json, seed, tags_json, tuple(seats), is_rated, time.time())

    async def set_match_live(self, match_id: int, started_at: float) -> None:
        """Mark a pending match live.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has already ended.
        """
        await self._run(f"start match {match_id}", _Frame.WRITE, _pg_matches.set_match_live, match_id, started_at)

    async def append_steps(self, match_id: int, steps: Sequence[StepRecord | EncodedStep]) -> None:
        """Queue steps for the match's event log (append-only); the writer commits them shortly.

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
        finished_at: float, *, logs: Sequence[str] = (),
    ) -> MatchRecord:
        """Record the end of a match; every step appended before is durable when this returns.

        ``logs``, one per seat (or none), are stored with the end in the same transaction. Of
        two ends of one match stored at once, by this process or another, one is recorded and
        the other refused.

        Raises:
            StorageError: some of the match's steps could not be stored (the end is not
                recorded; finishing it again, e.g. as aborted, then succeeds), or the match
                has already ended.
            MatchNotFound: no match ``match_id``.
            ValueError: ``status`` is not an end status, or ``seats`` (or ``logs``) has the
                wrong length.
        """
        if status not in (MatchStatus.FINISHED, MatchStatus.ABORTED):
            raise ValueError(f"finish_match needs an end status, not {status.value!r}")
        if logs and len(logs) != len(seats):
            raise ValueError(f"match {match_id}: {len(logs)} logs for {len(seats)} seats")
        await self._steps.wait_match(match_id)
        self._steps.raise_failure(match_id)
        return await self._run(f"finish match {match_id}", _Frame.WRITE, _pg_matches.finish_match, match_id, status,
                               reason, tuple(seats), tuple(logs), finished_at)

    async def get_match(self, match_id: int) -> MatchRecord:
        """The match with its seats; ``steps`` counts the steps stored so far.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        if not _is_row_id(match_id):
            raise MatchNotFound(match_id)
        await self._steps.wait_match(match_id)
        matches = await self._run(f"read match {match_id}", _Frame.READ, _pg_matches.load_matches, "WHERE id = $1",
                                  (match_id,))
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
            params.append(_parse_cursor(cursor, default=0))
            where.append(f"id < ${len(params)}")
        if status is not None:
            params.append(MatchStatus(status).value)
            where.append(f"status = ${len(params)}")
        if agent_id is not None:
            if not _is_row_id(agent_id):
                return [], None  # no agent has that id
            params.append(agent_id)
            where.append(f"id IN (SELECT match_id FROM match_seats WHERE agent_id = ${len(params)})")
        limit = _clamp(limit)
        params.append(limit + 1)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        matches = await self._run("list matches", _Frame.READ, _pg_matches.load_matches,
                                  f"{clause}ORDER BY id DESC LIMIT ${len(params)}", params, "DESC")
        return _page(matches, limit)

    async def get_steps(self, match_id: int) -> list[StepRecord]:
        """The stored event log, in step order, including steps queued before this call.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._run(f"read steps of match {match_id}", _Frame.READ, _pg_matches.step_rows, match_id,
                               "SELECT record FROM match_steps WHERE match_id = $1 ORDER BY step", (match_id,))
        return [_decode_step(match_id, row[0]) for row in rows]

    async def get_step_texts(self, match_id: int, from_step: int, limit: int) -> list[tuple[int, str]]:
        """A page of the stored event log as ``(step, text)``, in step order, including steps
        queued before this call: up to ``limit`` steps from ``from_step`` on.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._run(
            f"read steps of match {match_id}", _Frame.READ, _pg_matches.step_rows, match_id,
            "SELECT step, record FROM match_steps WHERE match_id = $1 AND step >= $2 ORDER BY step LIMIT $3",
            (match_id, max(0, from_step), max(0, limit)),
        )
        return [(row[0], _step_text(match_id, row[1])) for row in rows]

    async def get_last_step_texts(self, match_id: int, count: int) -> list[tuple[int, str]]:
        """The last ``count`` stored steps as ``(step, text)``, in step order.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._run(
            f"read steps of match {match_id}", _Frame.READ, _pg_matches.step_rows, match_id,
            "SELECT step, record FROM match_steps WHERE match_id = $1 ORDER BY step DESC LIMIT $2",
            (match_id, max(0, count)),
        )
        return [(row[0], _step_text(match_id, row[1])) for row in reversed(rows)]

    async def abort_unfinished(self, reason: str) -> int:
        """Mark every pending or live match aborted (on start-up); returns how many."""
        return await self._run("abort unfinished matches", _Frame.WRITE, _pg_matches.abort_unfinished, reason,
                               time.time())

    async def standings(self, game: str) -> list[dict[str, JSON]]:
        """Per agent of ``game``: finished matches, wins, draws, losses and faults, best first
        (see ``SqliteStorage.standings``)."""
        return await self._run(f"compute standings of {game}", _Frame.READ, _pg_ratings.standings, game)

    # -- the rated ladder (the SQL is in _pg_ratings.py, the rules in server/ladder/rules.py) -------------

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        """Rate up to ``limit`` finished matches not rated yet, oldest end first, in one
        transaction that also marks them rated: each is rated exactly once, whichever process
        rates, across restarts too (see ``_pg_ratings.py``)."""
        return await self._run("rate finished matches", _Frame.WRITE, _pg_ratings.rate_finished, limit, time.time())

    async def get_ratings(self, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
        """The ratings of these agents (the default for an unrated one); unknown ids are left out."""
        return await self._run("read ratings", _Frame.READ, _pg_ratings.get_ratings, tuple(agent_ids))

    async def leaderboard(self, game: str) -> list[dict[str, JSON]]:
        """Every agent of ``game``, best rating first, with its standings; see ``_ladder.leaderboard_rows``."""
        return await self._run(f"compute the leaderboard of {game}", _Frame.SNAPSHOT, _pg_ratings.leaderboard, game)

    async def ladder_matches_of_versions(self, versions: Mapping[int, int]) -> dict[int, int]:
        """Rated matches per ``agent id -> version`` (see ``_pg_ratings.ladder_matches_of_versions``)."""
        return await self._run("count the ladder matches of agent versions", _Frame.READ,
                               _pg_ratings.ladder_matches_of_versions, dict(versions))

    async def ladder_ends_since(self, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
        """``(game, finished_at, agent ids)`` of the rated matches finished after ``since``, oldest first."""
        return await self._run("read the ladder's recent matches", _Frame.READ, _pg_ratings.ladder_ends_since, since)

    # -- seat logs ---------------------------------------------------------------------------------

    async def save_log(self, match_id: int, seat: int, text: str) -> None:
        """Store (or replace) one seat's log.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has no seat ``seat``.
        """
        await self._run(f"save log of match {match_id} seat {seat}", _Frame.WRITE, _pg_matches.save_log, match_id,
                        seat, text)

    async def get_log(self, match_id: int, seat: int) -> str | None:
        """One seat's log, if one was saved."""
        if not (_is_row_id(match_id) and _is_row_id(seat)):
            return None
        return await self._run(f"read log of match {match_id} seat {seat}", _Frame.READ, _pg_matches.get_log,
                               match_id, seat)

    async def ping(self) -> None:
        """A trivial read, for ``GET /api/health``.

        Raises:
            StorageError: the storage is closed or the database does not answer.
        """
        await self._run("answer a health check", _Frame.READ, _select_one)

    async def close(self) -> None:
        """Write every queued step, stop the writer and close the pool's connections.

        Raises:
            StorageError: queued steps could not be stored and no caller has been told.
        """
        if self._steps.is_closing:
            return
        with anyio.CancelScope(shield=True):
            await self._steps.drain()
            self._is_closed = True
            is_closed = False
            with anyio.move_on_after(_CLOSE_TIMEOUT_S):
                await self._pool.close()  # waits for the connections in use to come back
                is_closed = True
            if not is_closed:
                self._pool.terminate()
        self._steps.raise_unreported()

