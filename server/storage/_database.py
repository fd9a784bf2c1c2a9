"""The SQLite database behind a storage: its threads, opened and migrated, one trip per call.

Theory of operation
-------------------
A file database gets two :class:`~server.storage._thread.DatabaseThread` workers, each a
thread owning one connection: a *writer* (every write) and a *reader* (``query_only``). In
WAL mode readers never block the writer and see only committed data. An in-memory database
has a single worker, which then serves both.

Every storage call is one synchronous function run as one job in one of those threads: a
write is framed ``BEGIN IMMEDIATE ... COMMIT`` (``ROLLBACK`` if it raises) in that job, a read
of several statements ``BEGIN ... ROLLBACK`` so a match and its seats come from one snapshot,
a read of one statement nothing (the frames are in ``_schema.py``). So a call costs one trip
to a thread, whatever its SQL, and no transaction ever spans two jobs: a caller cancelled
mid-call cannot leave one open, and a thread runs one job at a time, so write transactions
never interleave (no lock needed). Here ``sqlite3`` errors become :class:`StorageError`;
what the function itself raises (the arena's errors) passes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import anyio

from protocol.errors import ProtocolError, StorageError

from ._schema import connect, migrate, read_snapshot, write_transaction
from ._thread import DatabaseThread

__all__ = ["Database", "open_database"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@asynccontextmanager
async def open_database(path: str | Path) -> AsyncIterator[Database]:
    """Open (creating or migrating) the database at ``path``; on exit close its connections.

    Raises:
        StorageError: the file cannot be opened, its schema is newer than this code, or a
            connection could not be closed.
    """
    is_memory = str(path) in (":memory:", "")
    writer = await DatabaseThread.start(functools.partial(connect, path), name="arena-db-writer")
    reader = writer
    try:
        await writer.run(migrate)
        if not is_memory:
            reader = await DatabaseThread.start(functools.partial(connect, path, query_only=True),
                                                name="arena-db-reader")
        yield Database(writer, reader)
    finally:
        await _close_threads(writer, reader)  # done already unless opening failed


async def _close_threads(writer: DatabaseThread, reader: DatabaseThread) -> None:
    """Close both threads (one, in memory), each after its queued jobs.

    Raises:
        StorageError: a connection could not be closed.
    """
    try:
        try:
            await writer.close()
        finally:
            await reader.close()  # closing twice is harmless: in memory they are one
    except sqlite3.Error as exc:
        raise StorageError(f"cannot close the database: {exc}") from exc


class Database:
    """A database's writer and reader threads (one thread in memory); open one with :func:`open_database`.

    ``what`` in each call says what the caller was doing, for the error's message.
    """

    def __init__(self, writer: DatabaseThread, reader: DatabaseThread) -> None:
        self.writer = writer  # every write: the calls' and the step writer's batches
        self._reader = reader
        self._is_closed = False

    @property
    def trips(self) -> int:
        """Jobs handed to the threads so far (one per call, one per batch of steps)."""
        return self.writer.jobs + (self._reader.jobs if self._reader is not self.writer else 0)

    async def write(self, what: str, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``fn(db, *args)`` as one write transaction in the writer's thread: one trip.

        Raises:
            StorageError: the database is closed, or SQLite failed.
            ProtocolError: a number does not fit SQLite's 64-bit integers.
        """
        return await self._run(what, self.writer, write_transaction, fn, *args)

    async def read(self, what: str, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``fn(db, *args)``, a read of one statement, in the reader's thread: one trip.

        Raises:
            StorageError: the database is closed, or SQLite failed.
            ProtocolError: a number does not fit SQLite's 64-bit integers.
        """
        return await self._run(what, self._reader, fn, *args)

    async def read_snapshot(self, what: str, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``fn(db, *args)``, a read of several statements, in one snapshot in the reader's thread: one trip.

        Raises:
            StorageError: the database is closed, or SQLite failed.
            ProtocolError: a number does not fit SQLite's 64-bit integers.
        """
        return await self._run(what, self._reader, read_snapshot, fn, *args)

    async def close(self) -> None:
        """Refuse every later call, then close the threads, each after its queued jobs.

        Raises:
            StorageError: a connection could not be closed.
        """
        self._is_closed = True
        await _close_threads(self.writer, self._reader)

    async def _run(self, what: str, thread: DatabaseThread, fn: Callable[[sqlite3.Connection, *Ts], T],
                   *args: *Ts) -> T:
        """Run a job in ``thread``; ``sqlite3`` errors become StorageError, what ``fn`` raises passes.

        Raises:
            StorageError: the database is closed, or SQLite failed.
            ProtocolError: a number does not fit SQLite's 64-bit integers.
        """
        if self._is_closed:
            raise StorageError(f"cannot {what}: storage is closed")
        try:
            return await thread.run(fn, *args)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot {what}: {exc}") from exc
        except OverflowError as exc:  # an integer no column can hold; ids are checked before
            raise ProtocolError(f"cannot {what}: a number does not fit 64 bits", code="out_of_range") from exc
        except anyio.ClosedResourceError as exc:  # closed while the caller was on its way here
            raise StorageError(f"cannot {what}: storage is closed") from exc
