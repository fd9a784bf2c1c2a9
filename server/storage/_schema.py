"""Connections and schema for the SQLite storage: opening a connection, the migrations that
build the tables, and the two SQL primitives (``_rollback``, ``_fetchone``) every module shares.

The schema version is kept in ``PRAGMA user_version``: migration ``i`` (from 1) brings a
database to version ``i``, and ``SCHEMA_VERSION`` is the number of migrations.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from protocol.errors import StorageError

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000  # another process (a CLI, a backup) may hold the write lock briefly

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
    # 2: an owner can disable an agent (it is no longer scheduled or matched).
    """
    ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: the rated ladder. One rating per agent (across its versions), and a flag on matches
    # set in the same transaction that rates one, so a match is rated exactly once. Matches
    # finished before this version are rated on the next start, oldest first.
    """
    ALTER TABLE matches ADD COLUMN rating_done INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX matches_to_rate ON matches(finished_at, id) WHERE status = 'finished' AND rating_done = 0;
    CREATE TABLE ratings (
        agent_id INTEGER PRIMARY KEY REFERENCES agents(id),
        game TEXT NOT NULL,
        mu REAL NOT NULL,
        sigma REAL NOT NULL,
        rating REAL NOT NULL,
        matches INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        last_match_id INTEGER REFERENCES matches(id)
    );
    CREATE INDEX ratings_by_game ON ratings(game, rating);
    """,
    # 4: only the ladder's own matches are rated (issue 10). ``rated`` is fixed when a match is
    # created: the scheduler's matches between distinct agents. Before this version every
    # finished match was rated, challenges included, so a throwaway account could move any
    # rating: the ratings are recomputed from the ladder's matches alone. Matches the scheduler
    # tagged ``scheduled`` with distinct agents become rated; every other one is marked done
    # (``rating_done = 1``) and so is never rated again; the rated ones are queued again and the
    # rater replays them from the model's prior, oldest end first, on the next start. Users
    # keep the client address they signed up from (``created_from``), so the live seats of
    # every account made from one address count together; users from before have none.
    """
    ALTER TABLE matches ADD COLUMN rated INTEGER NOT NULL DEFAULT 0;
    UPDATE matches SET rated = 1
    WHERE json_extract(tags, '$.scheduled') = 1
      AND (SELECT count(*) >= 2 AND count(DISTINCT s.agent_id) = count(*)
           FROM match_seats s WHERE s.match_id = matches.id);
    DELETE FROM ratings;
    UPDATE matches SET rating_done = CASE WHEN rated = 1 THEN 0 ELSE 1 END;
    ALTER TABLE users ADD COLUMN created_from TEXT;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


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


async def _fetchone(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
    async with db.execute(sql, params) as cur:
        return await cur.fetchone()
