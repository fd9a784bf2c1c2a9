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

A rated match is rated in the write that stores its end, which locks its agents' rows; the
backfill's rating pass also takes an advisory lock: see ``_pg_ratings.py`` for why each match
is rated exactly once, from the ratings the one before left, whoever else rates meanwhile.

Cancellation, as on SQLite: a call cancelled before it starts does nothing; once started it
runs to its end, shielded, and its caller gets its outcome, so no caller has to guess whether
a commit it did not wait for happened (a match cancelled while its end is stored gets the
stored end back). Every statement is bounded by ``STATEMENT_TIMEOUT_S``, so a server that
stopped answering cannot hold a caller for ever. asyncpg's errors become
:class:`StorageError` (or :class:`ProtocolError` for a number no column holds); what the
bodies raise (the arena's errors) passes.

Steps go through the same batching writer as on SQLite (``_steps.py``); a batch is one
transaction (``_pg_matches.insert_steps``). The bodies of the calls are in
``_pg_accounts.py``, ``_pg_matches.py`` and ``_pg_ratings.py``, the match queue's (claims,
leases, fencing) in ``_pg_queue.py``; the frames every storage shares in ``_common.py``; the
schema and connecting in
``_pg_schema.py``; rows become records through the shared decoders of ``_rows.py``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple

import anyio
import anyio.lowlevel
import asyncpg

from protocol.errors import AgentNotFound, ProtocolError, StorageError, UserNotFound
from protocol.messages import JSON

from . import _pg_accounts, _pg_matches, _pg_queue, _pg_quotas, _pg_ratings
from ._common import StorageBase
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
from ._pg_seats import RemoteSeatTable
from ._rows import _is_row_id
from ._schema import SCHEMA_VERSION
from ._steps import StepRow, StepWriter, writing
from .base import (
    AgentRecord,
    LadderMatch,
    Lease,
    MatchRecord,
    MatchStatus,
    NewSeat,
    RatedMatch,
    RatingRecord,
    SeatResult,
    UserRecord,
)
from .quotas import ChallengeQuota

__all__ = ["POOL_MAX_SIZE", "SCHEMA_VERSION", "STATEMENT_TIMEOUT_S", "PostgresStorage", "open_postgres"]

log = logging.getLogger(__name__)

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


class PostgresStorage(StorageBase):
    """The :class:`~server.storage.base.Storage` on PostgreSQL, and the match queue
    (:class:`~server.storage.base.MatchQueue`); make one with :func:`open_postgres`."""

    _STEPS_SQL = "SELECT record FROM match_steps WHERE match_id = $1 ORDER BY step"
    _STEP_PAGE_SQL = "SELECT step, record FROM match_steps WHERE match_id = $1 AND step >= $2 ORDER BY step LIMIT $3"
    _LAST_STEPS_SQL = "SELECT step, record FROM match_steps WHERE match_id = $1 ORDER BY step DESC LIMIT $2"

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._is_closed = False
        self._steps = StepWriter(self._write_steps)  # the batching step writer; see _steps.py
        # The attempt of each match this process claimed and has not ended: its writes are
        # fenced by it (see _pg_queue.py); those known lost are not renewed.
        self._fences: dict[int, int] = {}
        self._lost: set[int] = set()
        # Remote agents' seats across the cluster (_pg_seats.py), fenced like the steps.
        self.remote_seats = RemoteSeatTable(self._run_seats, self._fences)

    async def _write_steps(self, batch: Sequence[StepRow]) -> list[tuple[list[StepRow], Exception]]:
        return await _pg_matches.insert_steps(self._pool, batch, dict(self._fences))

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

    async def _run_seats(self, what: str, writes: bool, fn: Callable[[Conn, *Ts], Awaitable[T]], *args: *Ts) -> T:
        return await self._run(what, _Frame.WRITE if writes else _Frame.READ, fn, *args)

    # -- users -------------------------------------------------------------------------------------

    async def create_user(
        self, name: str, token_hash: str, created_from: str | None = None, *, max_per_hour: int | None = None,
    ) -> UserRecord:
        """Store a new user, with the client address it signed up from (if known); with
        ``max_per_hour``, only if that address made fewer users within the hour, counted across
        every process (``quotas.py``).

        Raises:
            StorageError: the name (NameTaken) or the token hash is taken.
            RateLimited: the address's users of the last hour are used up.
        """
        if max_per_hour is None or created_from is None:
            return await self._run(f"create user {name!r}", _Frame.WRITE, _pg_accounts.create_user, name, token_hash,
                                   created_from, time.time())
        return await self._run(f"create user {name!r}", _Frame.WRITE, _pg_quotas.create_user, max_per_hour, name,
                               token_hash, created_from, time.time())

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

    async def save_agent(
        self, user_id: int, name: str, game: str, code: str | None, *, max_per_hour: int | None = None,
    ) -> AgentRecord:
        """Create an agent, or store a new version of the owner's agent of that name; with
        ``max_per_hour``, only if the owner stored fewer versions within the hour, counted across
        every process (``quotas.py``).

        Raises:
            UserNotFound: no user ``user_id``.
            ConfigError: the owner's agent of that name plays another game.
            RateLimited: the owner's submissions of the last hour are used up.
        """
        if max_per_hour is None:
            return await self._run(f"save agent {name!r}", _Frame.WRITE, _pg_accounts.save_agent, user_id, name,
                                   game, code, time.time())
        return await self._run(f"save agent {name!r}", _Frame.WRITE, _pg_quotas.save_agent, max_per_hour, user_id,
                               name, game, code, time.time())

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

    # -- matches -----------------------------------------------------------------------------------

    async def _insert_match(
        self, game: str, rules_version: int, config_json: str, seed: int, tags_json: str, seats: tuple[NewSeat, ...],
        is_rated: bool, lease: Lease | None, quota: ChallengeQuota | None,
    ) -> MatchRecord:
        worker, lease_s = (None, 0.0) if lease is None else (lease.worker, lease.lease_s)
        now = time.time()
        create = (game, rules_version, config_json, seed, tags_json, seats, is_rated, worker, lease_s, now)
        if quota is None:
            record = await self._run(f"create a {game} match", _Frame.WRITE, _pg_queue.create_match, *create)
        else:
            record = await self._run(f"create a {game} match", _Frame.WRITE, _pg_quotas.create_challenge, quota, game,
                                     len(seats), now, create)
        if lease is not None:
            self._fences[record.id] = record.attempt
        return record

    async def _store_end(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: tuple[SeatResult, ...],
        logs: tuple[str, ...], finished_at: float,
    ) -> MatchRecord:
        record = await self._run(f"finish match {match_id}", _Frame.WRITE, _pg_matches.finish_match, match_id,
                                 status, reason, seats, logs, finished_at, self._fences.get(match_id), time.time())
        # Ended: nothing of it is written again. (A lost match keeps its fence, so that every
        # later write of this process to it is refused as well.)
        self._fences.pop(match_id, None)
        return record

    async def _load_match(self, match_id: int) -> list[MatchRecord]:
        return await self._run(f"read match {match_id}", _Frame.READ, _pg_matches.load_matches, "WHERE id = $1",
                               (match_id,))

    async def _read_steps(self, match_id: int, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._run(f"read steps of match {match_id}", _Frame.READ, _pg_matches.step_rows, match_id, sql,
                               params)

    def _mark(self, n: int) -> str:
        return f"${n}"

    async def _select_agents(self, tail: str, params: tuple[Any, ...]) -> list[AgentRecord]:
        return await self._run("list agents", _Frame.READ, _pg_accounts.list_agents, tail, list(params))

    async def _select_matches(self, tail: str, params: tuple[Any, ...]) -> list[MatchRecord]:
        return await self._run("list matches", _Frame.READ, _pg_matches.load_matches, tail, params, "DESC")

    async def set_match_live(self, match_id: int, started_at: float) -> None:
        """Mark a pending match live.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has already ended.
        """
        await self._run(f"start match {match_id}", _Frame.WRITE, _pg_matches.set_match_live, match_id, started_at,
                        self._fences.get(match_id))

    async def abort_unfinished(self, reason: str, *, worker: str | None = None) -> int:
        """Mark every pending or live match aborted, or only those ``worker`` holds (a process of a
        cluster touches only its own); returns how many."""
        # Steps appended already count in the aborted match; a match whose steps failed has its
        # own finish_match to report it.
        with contextlib.suppress(StorageError):
            await self.flush()
        return await self._run("abort unfinished matches", _Frame.WRITE, _pg_matches.abort_unfinished, reason,
                               worker, time.time())

    # -- the match queue (the SQL and its theory in _pg_queue.py) ------------------------------------

    async def claim_match(self, lease: Lease, max_attempts: int) -> MatchRecord | None:
        """Claim the oldest pending match, or one whose lease ran out, for ``lease.worker``:
        under the next attempt, its earlier attempt's steps deleted; None when there is none.
        A match already run ``max_attempts`` times is stored aborted with the reason instead.
        """
        record, given_up = await self._run("claim a match", _Frame.WRITE, _pg_queue.claim_next, lease.worker,
                                           lease.lease_s, max_attempts)
        for match_id, reason in given_up:
            log.warning("match_id=%s aborted: %s", match_id, reason)
        if record is not None:
            self._fences[record.id] = record.attempt
            self._lost.discard(record.id)
        return record

    async def renew_leases(self, lease: Lease, match_ids: Sequence[int]) -> set[int]:
        """Extend the leases of these matches this process claimed; returns those it has lost
        (another worker took them over, or they were stopped): their writes are refused from
        now on."""
        held = [(m, self._fences[m]) for m in sorted(set(match_ids)) if m in self._fences and m not in self._lost]
        if held:
            kept = await self._run("renew leases", _Frame.WRITE, _pg_queue.renew, lease.worker, lease.lease_s, held)
            self._lost.update(m for m, _ in held if m not in kept)
        return self._lost.intersection(match_ids)

    async def standings(self, game: str) -> list[dict[str, JSON]]:
        """Per agent of ``game``: finished matches, wins, draws, losses and faults, best first
        (see ``SqliteStorage.standings``)."""
        return await self._run(f"compute standings of {game}", _Frame.READ, _pg_ratings.standings, game)

    # -- the rated ladder (the SQL is in _pg_ratings.py, the rules in server/ladder/rules.py) -------------

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        """The backfill: rate up to ``limit`` finished matches left unrated, oldest end first, in
        one transaction that also marks them rated and notifies the fronts (``rated``): each is
        rated exactly once, whichever process rates, across restarts too (see ``_pg_ratings.py``)."""
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

    async def unfinished_ladder_matches(self) -> list[LadderMatch]:
        """Every rated match pending or live, wherever it runs, by id, with its agents (see
        ``_pg_matches.unfinished_ladder_matches``)."""
        return await self._run("read the ladder's unfinished matches", _Frame.READ,
                               _pg_matches.unfinished_ladder_matches)

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

