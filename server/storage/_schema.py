"""Connections, schema and transactions for the SQLite storage: opening a connection, the
migrations that build the tables, and the transaction frames every storage call runs in.

The schema version is kept in ``PRAGMA user_version``: migration ``i`` (from 1) brings a
database to version ``i``, and ``SCHEMA_VERSION`` is the number of migrations. Each has its
twin in PostgreSQL's words in ``_pg_schema.py``: a new migration is written for both.

Everything here is synchronous and runs in a :class:`~server.storage._thread.DatabaseThread`,
the thread that owns the connection: a storage call is one job there, its whole transaction
framed by :func:`write_transaction` or :func:`read_snapshot`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar, TypeVarTuple

from protocol.errors import StorageError

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "connect", "migrate", "read_snapshot", "write_transaction"]

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
    # 5: the match queue (issue 13). A match names the worker that claimed it, until when its
    # lease holds, and the attempt (claims so far) that fences its writes; see _pg_queue.py.
    # One SQLite process keeps the worker's name and attempt 1; its leases never expire.
    """
    ALTER TABLE matches ADD COLUMN worker TEXT;
    ALTER TABLE matches ADD COLUMN lease_until REAL;
    ALTER TABLE matches ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: remote agents across the cluster (issue 13): a seat of a remote agent in a match that
    # a worker runs, as that worker and the front holding the agent's connection exchange it
    # (server/cluster/agents.py): the seat's start (JSON), the front that plays it and its
    # connection's round trip, the turn asked (its step, JSON observation and budget, when on
    # the database's clock), the answer (JSON) and, once over, the match's result (JSON). A
    # row lives while its match does. One SQLite process plays remote seats in memory and
    # keeps the table empty.
    """
    CREATE TABLE remote_seats (
        match_id INTEGER NOT NULL REFERENCES matches(id),
        seat INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        agent_id INTEGER NOT NULL,
        start TEXT NOT NULL,
        front TEXT,
        rtt_s REAL,
        step INTEGER,
        turn TEXT,
        asked_at REAL,
        answer TEXT,
        result TEXT,
        PRIMARY KEY (match_id, seat)
    );
    CREATE INDEX remote_seats_by_user ON remote_seats(user_id);
    """,
    # 7: the rating history (issue 13): one row per rated seat, written in the transaction that
    # rates the match (the one that stores its result, see _ratings.py): the agent's rating, mu
    # and sigma before and after, its rated matches after (so an agent's rows are ordered by
    # ``matches``) and when. It is what the lobby's ``rating_changed`` of a match is read from
    # on another process, and what a rating chart reads. The key makes a second rating of one
    # match fail. A database from before starts with an empty history.
    """
    CREATE TABLE rating_history (
        match_id INTEGER NOT NULL REFERENCES matches(id),
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        game TEXT NOT NULL,
        mu_before REAL NOT NULL,
        sigma_before REAL NOT NULL,
        rating_before REAL NOT NULL,
        mu REAL NOT NULL,
        sigma REAL NOT NULL,
        rating REAL NOT NULL,
        matches INTEGER NOT NULL,
        rated_at REAL NOT NULL,
        PRIMARY KEY (match_id, agent_id)
    );
    CREATE INDEX rating_history_by_agent ON rating_history(agent_id, matches);
    """,
    # 8: the limits on challenges and accounts hold across a cluster (issue 13): storage counts
    # them from the rows they bound (``quotas.py``), no longer each process in its memory. A
    # challenge keeps the user who started it (``started_by``; the ladder's matches have none)
    # and the client address whose accounts' live seats it counts against (``held_by``). The
    # indexes answer "this user's matches of the last hour", "the unfinished matches of this
    # user", "... of this address" and "the accounts made from this address in the last hour".
    # Challenges from before get their user from their tags, the unfinished ones their address
    # from that user's.
    """
    ALTER TABLE matches ADD COLUMN started_by INTEGER REFERENCES users(id);
    ALTER TABLE matches ADD COLUMN held_by TEXT;
    UPDATE matches SET started_by = json_extract(tags, '$.user_id')
    WHERE json_extract(tags, '$.user_id') IN (SELECT id FROM users);
    UPDATE matches SET held_by = (SELECT created_from FROM users WHERE users.id = matches.started_by)
    WHERE started_by IS NOT NULL AND status IN ('pending', 'live');
    CREATE INDEX matches_by_starter ON matches(started_by, created_at) WHERE started_by IS NOT NULL;
    CREATE INDEX matches_unfinished_by_starter ON matches(started_by)
        WHERE started_by IS NOT NULL AND status IN ('pending', 'live');
    CREATE INDEX matches_unfinished_by_holder ON matches(held_by)
        WHERE held_by IS NOT NULL AND status IN ('pending', 'live');
    CREATE INDEX users_by_address ON users(created_from, created_at) WHERE created_from IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def connect(path: str | Path, *, query_only: bool = False) -> sqlite3.Connection:
    """Open a connection to ``path`` with the storage's settings; call it in the thread that will own it.

    Raises:
        StorageError: the database cannot be opened.
    """
    # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of sqlite3's implicit ones.
    # check_same_thread stays on: only the owning thread may touch the connection.
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {str(path)!r}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        if query_only:
            db.execute("PRAGMA query_only = ON")
        else:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across app crashes
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"cannot open database {str(path)!r}: {exc}") from exc
        raise
    return db


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (kept in ``PRAGMA user_version``), one migration per
    transaction; each re-reads the version under the write lock, so two processes can race safely.

    Raises:
        StorageError: the database is newer than this code, or a migration failed.
    """
    try:
        for version, script in enumerate(_MIGRATIONS, start=1):
            write_transaction(db, _migrate_to, version, script)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot migrate database schema: {exc}") from exc


def _migrate_to(db: sqlite3.Connection, version: int, script: str) -> None:
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise StorageError(f"database schema version {current} is newer than this server's {SCHEMA_VERSION}")
    if current < version:
        log.info("migrating database schema to version %d", version)
        for statement in _statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")


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


def write_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
    """``fn(db, *args)`` in one ``BEGIN IMMEDIATE ... COMMIT``, rolled back if anything raises."""
    # IMMEDIATE: take the write lock now, so a read-then-write body never fails half-way on a
    # lock another process took after our first read (it waits busy_timeout for it instead).
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db, *args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT may have ended it already
            db.execute("ROLLBACK")
        raise
    return result


def read_snapshot(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
    """``fn(db, *args)`` in one read transaction: its statements see one snapshot of the database.

    Only a read of several statements needs one (a match and its seats); a single statement is
    a snapshot by itself.
    """
    db.execute("BEGIN")
    try:
        return fn(db, *args)
    finally:
        db.execute("ROLLBACK")  # nothing to commit: this just ends the snapshot
