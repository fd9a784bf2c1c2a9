"""SQLite storage: the storage calls, one trip each, and a batching writer for match steps.

Theory of operation
-------------------
:class:`SqliteStorage` checks each call's arguments and runs its body as one job on the
database (``_database.py``: a writer thread and a reader thread, each owning its connection;
one trip per call, framed as a write or a snapshot; ``sqlite3`` errors become
:class:`StorageError`). The bodies of the calls are in ``_accounts.py`` (users and agents),
``_matches.py`` (matches, event and seat logs) and ``_ratings.py`` (the ladder); they raise
the arena's errors.

Steps are the hot path and do not go through a write of their own: ``append_steps`` queues
them for the batching step writer, whose theory of operation opens ``_steps.py`` (shared with
the PostgreSQL storage, as are the decoders that build records from rows, ``_rows.py``, and
the ladder's bookkeeping, ``_ladder.py``, and the calls' backend-independent frames,
``_common.py``). The schema, its migrations and the transaction frames are in ``_schema.py``.
The match queue's columns (``worker``, ``attempt``) name the one process that runs every match;
its leases never expire here.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from protocol.errors import AgentNotFound, StorageError, UserNotFound
from protocol.messages import JSON

from . import _accounts, _matches, _quotas, _ratings
from ._accounts import _load_agent
from ._common import StorageBase
from ._database import Database, open_database
from ._matches import _load_matches
from ._ratings import _standings
from ._rows import _is_row_id
from ._schema import SCHEMA_VERSION
from ._steps import BATCH_ROWS, BATCH_WINDOW_S, StepRow, StepWriter, writing
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

__all__ = ["BATCH_ROWS", "BATCH_WINDOW_S", "SCHEMA_VERSION", "SqliteStorage", "open_sqlite"]


@asynccontextmanager
async def open_sqlite(path: str | Path) -> AsyncIterator[SqliteStorage]:
    """Open (creating or migrating) the database at ``path`` and run its step writer.

    On exit every queued step is written and the connections are closed.

    Raises:
        StorageError: the file cannot be opened, its schema is newer than this code, or a
            queued step could not be written and no caller was told.
    """
    async with open_database(path) as db:
        storage = SqliteStorage(db)
        async with writing(storage._steps, storage.close):
            yield storage


def _select_one(db: sqlite3.Connection) -> None:
    db.execute("SELECT 1").fetchone()


class SqliteStorage(StorageBase):
    """The :class:`~server.storage.base.Storage` on SQLite; make one with :func:`open_sqlite`."""

    _STEPS_SQL = "SELECT record FROM match_steps WHERE match_id = ? ORDER BY step"
    _STEP_PAGE_SQL = "SELECT step, record FROM match_steps WHERE match_id = ? AND step >= ? ORDER BY step LIMIT ?"
    _LAST_STEPS_SQL = "SELECT step, record FROM match_steps WHERE match_id = ? ORDER BY step DESC LIMIT ?"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._steps = StepWriter(self._write_steps)  # the batching step writer; see _steps.py

    @property
    def trips(self) -> int:
        """Jobs handed to the database threads so far (one per call, one per batch of steps)."""
        return self._db.trips

    async def _write_steps(self, batch: Sequence[StepRow]) -> list[tuple[list[StepRow], Exception]]:
        """A batch of the step writer: one job on the writer thread (see ``_matches.insert_steps``)."""
        return await self._db.writer.run(_matches.insert_steps, batch)

    # -- users -------------------------------------------------------------------------------------

    async def create_user(
        self, name: str, token_hash: str, created_from: str | None = None, *, max_per_hour: int | None = None,
    ) -> UserRecord:
        """Store a new user, with the client address it signed up from (if known); with
        ``max_per_hour``, only if that address made fewer users within the hour (``quotas.py``).

        Raises:
            StorageError: the name or the token hash is taken.
            RateLimited: the address's users of the last hour are used up.
        """
        if max_per_hour is None or created_from is None:
            return await self._db.write(f"create user {name!r}", _accounts.create_user, name, token_hash,
                                        created_from, time.time())
        return await self._db.write(f"create user {name!r}", _quotas.create_user, max_per_hour, name, token_hash,
                                    created_from, time.time())

    async def user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        """The user holding this token hash, if any."""
        return await self._db.read("look up a token", _accounts.user_by, "token_hash", token_hash)

    async def get_user_by_name(self, name: str) -> UserRecord | None:
        """The user of that name, if any."""
        return await self._db.read(f"look up user {name!r}", _accounts.user_by, "name", name)

    async def rotate_token(self, user_id: int, token_hash: str) -> None:
        """Replace the user's token hash; the old token stops working with this commit.

        Raises:
            UserNotFound: no user ``user_id``.
        """
        if not _is_row_id(user_id):
            raise UserNotFound(user_id)
        await self._db.write(f"rotate the token of user {user_id}", _accounts.rotate_token, user_id, token_hash)

    # -- agents ------------------------------------------------------------------------------------

    async def save_agent(
        self, user_id: int, name: str, game: str, code: str | None, *, max_per_hour: int | None = None,
    ) -> AgentRecord:
        """Create an agent, or store a new version of the owner's agent of that name; with
        ``max_per_hour``, only if the owner stored fewer versions within the hour (``quotas.py``).

        Raises:
            UserNotFound: no user ``user_id``.
            ConfigError: the owner's agent of that name plays another game.
            RateLimited: the owner's submissions of the last hour are used up.
        """
        if max_per_hour is None:
            return await self._db.write(f"save agent {name!r}", _accounts.save_agent, user_id, name, game, code,
                                        time.time())
        return await self._db.write(f"save agent {name!r}", _quotas.save_agent, max_per_hour, user_id, name, game,
                                    code, time.time())

    async def update_agent(
        self, agent_id: int, *, name: str | None = None, disabled: bool | None = None
    ) -> AgentRecord:
        """Rename or (dis)able an agent.

        Raises:
            AgentNotFound: no agent ``agent_id``.
            NameTaken: the owner already has an agent of that name.
        """
        return await self._db.write(f"update agent {agent_id}", _accounts.update_agent, agent_id, name, disabled,
                                    time.time())

    async def get_agent(self, agent_id: int) -> AgentRecord:
        """The agent at its current version.

        Raises:
            AgentNotFound: no agent ``agent_id``.
        """
        return await self._db.read(f"read agent {agent_id}", _load_agent, agent_id)

    async def get_agents(self, agent_ids: Sequence[int]) -> dict[int, AgentRecord]:
        """These agents at their current versions, by id, in one query; unknown ids are left out."""
        ids = sorted({a for a in agent_ids if _is_row_id(a)})
        if not ids:
            return {}
        return await self._db.read(f"read {len(ids)} agents", _accounts.get_agents, ids)

    async def get_agent_code(self, agent_id: int, version: int) -> str | None:
        """The code of one version (``None`` for a remote agent).

        Raises:
            AgentNotFound: no such agent, or no such version of it.
        """
        if not _is_row_id(agent_id):
            raise AgentNotFound(agent_id)
        return await self._db.read(f"read code of agent {agent_id}", _accounts.get_agent_code, agent_id, version)

    # -- matches -----------------------------------------------------------------------------------

    async def _insert_match(
        self, game: str, rules_version: int, config_json: str, seed: int, tags_json: str, seats: tuple[NewSeat, ...],
        is_rated: bool, lease: Lease | None, quota: ChallengeQuota | None,
    ) -> MatchRecord:
        now = time.time()
        create = (game, rules_version, config_json, seed, tags_json, seats, is_rated,
                  None if lease is None else lease.worker, now)
        if quota is None:
            return await self._db.write(f"create a {game} match", _matches.create_match, *create)
        return await self._db.write(f"create a {game} match", _quotas.create_challenge, quota, game, len(seats), now,
                                    create)

    async def _store_end(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: tuple[SeatResult, ...],
        logs: tuple[str, ...], finished_at: float,
    ) -> MatchRecord:
        return await self._db.write(f"finish match {match_id}", _matches.finish_match, match_id, status, reason,
                                    seats, logs, finished_at, time.time())

    async def _load_match(self, match_id: int) -> list[MatchRecord]:
        return await self._db.read_snapshot(f"read match {match_id}", _load_matches, "WHERE id = ?", (match_id,))

    async def _read_steps(self, match_id: int, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._db.read_snapshot(f"read steps of match {match_id}", _matches.step_rows, match_id, sql,
                                            params)

    def _mark(self, n: int) -> str:
        return "?"

    async def _select_agents(self, tail: str, params: tuple[Any, ...]) -> list[AgentRecord]:
        return await self._db.read("list agents", _accounts.list_agents, tail, params)

    async def _select_matches(self, tail: str, params: tuple[Any, ...]) -> list[MatchRecord]:
        return await self._db.read_snapshot("list matches", _load_matches, tail, params)

    async def set_match_live(self, match_id: int, started_at: float) -> None:
        """Mark a pending match live.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has already ended.
        """
        await self._db.write(f"start match {match_id}", _matches.set_match_live, match_id, started_at)

    async def abort_unfinished(self, reason: str, *, worker: str | None = None) -> int:
        """Mark every pending or live match aborted (on start-up), or only those ``worker`` holds;
        returns how many."""
        # Steps appended already count in the aborted match; a match whose steps failed has its
        # own finish_match to report it.
        with contextlib.suppress(StorageError):
            await self.flush()
        return await self._db.write("abort unfinished matches", _matches.abort_unfinished, reason, worker,
                                    time.time())

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
        return await self._db.read(f"compute standings of {game}", _standings, game)

    # -- the rated ladder (the SQL is in _ratings.py, the rules in server/ladder/rules.py) ----------------

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        """The backfill: rate up to ``limit`` finished matches left unrated, oldest end first, in
        one transaction that also marks them rated: each is rated exactly once, across restarts too."""
        return await self._db.write("rate finished matches", _ratings.rate_finished, limit, time.time())

    async def get_ratings(self, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
        """The ratings of these agents (the default for an unrated one); unknown ids are left out."""
        return await self._db.read("read ratings", _ratings.get_ratings, tuple(agent_ids))

    async def leaderboard(self, game: str) -> list[dict[str, JSON]]:
        """Every agent of ``game``, best rating first, with its standings; see ``_ratings.leaderboard``."""
        return await self._db.read_snapshot(f"compute the leaderboard of {game}", _ratings.leaderboard, game)

    async def ladder_matches_of_versions(self, versions: Mapping[int, int]) -> dict[int, int]:
        """Rated matches per ``agent id -> version`` (see ``_ratings.ladder_matches_of_versions``)."""
        return await self._db.read("count the ladder matches of agent versions", _ratings.ladder_matches_of_versions,
                                   dict(versions))

    async def ladder_ends_since(self, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
        """``(game, finished_at, agent ids)`` of the rated matches finished after ``since``, oldest first."""
        return await self._db.read("read the ladder's recent matches", _ratings.ladder_ends_since, since)

    async def unfinished_ladder_matches(self) -> list[LadderMatch]:
        """Every rated match pending or live, by id, with its agents (see ``_matches.unfinished_ladder_matches``)."""
        return await self._db.read("read the ladder's unfinished matches", _matches.unfinished_ladder_matches)

    # -- seat logs ---------------------------------------------------------------------------------

    async def save_log(self, match_id: int, seat: int, text: str) -> None:
        """Store (or replace) one seat's log.

        Raises:
            MatchNotFound: no match ``match_id``.
            StorageError: the match has no seat ``seat``.
        """
        await self._db.write(f"save log of match {match_id} seat {seat}", _matches.save_log, match_id, seat, text)

    async def get_log(self, match_id: int, seat: int) -> str | None:
        """One seat's log, if one was saved."""
        if not (_is_row_id(match_id) and _is_row_id(seat)):
            return None
        return await self._db.read(f"read log of match {match_id} seat {seat}", _matches.get_log, match_id, seat)

    async def ping(self) -> None:
        """A trivial read, for ``GET /api/health``.

        Raises:
            StorageError: the storage is closed or the database does not answer.
        """
        await self._db.read("answer a health check", _select_one)

    async def close(self) -> None:
        """Write every queued step, stop the writer and close the connections.

        Raises:
            StorageError: queued steps could not be stored and no caller has been told, or a
                connection could not be closed.
        """
        if self._steps.is_closing:
            return
        with anyio.CancelScope(shield=True):
            await self._steps.drain()
            await self._db.close()
        self._steps.raise_unreported()
