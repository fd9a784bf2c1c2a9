"""An SQLite file as one end of ``arena migrate`` (see ``_copy_sides.py``).

Its connection lives in a :class:`~server.storage._thread.DatabaseThread`, and every step of
the copy is one job there: the copy's transaction spans jobs, which no storage call does, and
ends when the side commits it, or rolled back when the thread closes the connection.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar, TypeVarTuple

from protocol.errors import StorageError

from ._copy_sides import Row, Table, quote, select
from ._schema import connect
from ._thread import DatabaseThread
from .sqlite import open_sqlite

__all__ = ["SqliteSide"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _sqlite_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, Table]:
    names = [str(row[0]) for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name")]
    tables: dict[str, Table] = {}
    for name in names:
        # cid, name, type, notnull, dflt_value, pk (the column's place in the key; 0: not in it)
        info = conn.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        key = tuple(str(row[1]) for row in sorted((row for row in info if row[5]), key=lambda row: int(row[5])))
        parents = {str(row[2]) for row in conn.execute(f"PRAGMA foreign_key_list({quote(name)})")}
        tables[name] = Table(name, tuple(str(row[1]) for row in info), tuple(str(row[2]).lower() for row in info),
                             key, frozenset(parents - {name}))
    return tables


def _sqlite_occupied(conn: sqlite3.Connection, names: Sequence[str]) -> list[str]:
    return [name for name in names if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(name)})").fetchone()[0]]


def _sqlite_counts(conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, int]:
    return {name: int(conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]) for name in names}


def _sqlite_begin_snapshot(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a read transaction starts at its first read


def _sqlite_execute(conn: sqlite3.Connection, sql: str) -> sqlite3.Cursor:
    return conn.execute(sql)


def _sqlite_fetch(conn: sqlite3.Connection, cursor: sqlite3.Cursor, count: int) -> list[Row]:
    return cursor.fetchmany(count)


def _sqlite_delete(conn: sqlite3.Connection, names: Sequence[str]) -> None:
    for name in names:
        conn.execute(f"DELETE FROM {quote(name)}")


def _sqlite_insert(conn: sqlite3.Connection, sql: str, rows: list[Row]) -> None:
    conn.executemany(sql, rows)


def _sqlite_begin(conn: sqlite3.Connection) -> None:
    # IMMEDIATE: the write lock now, so no other process writes before this commits.
    conn.execute("BEGIN IMMEDIATE")


def _sqlite_commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


class SqliteSide:
    """An SQLite file as one end of a copy; open one with :meth:`open`."""

    def __init__(self, path: str, thread: DatabaseThread) -> None:
        self.label = path
        self._path = path
        self._thread = thread
        self._cursor: sqlite3.Cursor | None = None
        self._reading = ""

    @classmethod
    async def open(cls, path: str, *, is_writer: bool) -> SqliteSide:
        """A connection of its own to the file at ``path`` (a reader's refuses to write).

        Raises:
            StorageError: the file cannot be opened.
        """
        thread = await DatabaseThread.start(functools.partial(connect, path, query_only=not is_writer),
                                            name="arena-migrate-" + ("writer" if is_writer else "reader"))
        return cls(path, thread)

    @property
    def nul_replaced(self) -> int:
        return 0  # SQLite text holds any character

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        try:
            return await self._thread.run(fn, *args)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot {what} in {self.label}: {exc}") from exc

    async def schema_version(self) -> int:
        return await self._run("read the schema version", _sqlite_version)

    async def migrate(self) -> None:
        async with open_sqlite(self._path):
            pass

    async def tables(self) -> dict[str, Table]:
        return await self._run("read the schema", _sqlite_tables)

    async def occupied(self, names: Sequence[str]) -> list[str]:
        return await self._run("look for rows", _sqlite_occupied, names)

    async def counts(self, names: Sequence[str]) -> dict[str, int]:
        return await self._run("count rows", _sqlite_counts, names)

    async def begin_snapshot(self) -> None:
        await self._run("begin a read transaction", _sqlite_begin_snapshot)

    async def start_reading(self, table: Table, columns: Sequence[str]) -> None:
        self._reading = table.name
        self._cursor = await self._run(f"read table {table.name}", _sqlite_execute, select(table, columns))

    async def fetch(self, count: int) -> list[Row]:
        assert self._cursor is not None, "start_reading first"
        return await self._run(f"read table {self._reading}", _sqlite_fetch, self._cursor, count)

    async def begin_writing(self, names: Sequence[str]) -> None:
        await self._run("begin the copy's transaction", _sqlite_begin)

    async def delete_rows(self, names: Sequence[str]) -> None:
        await self._run("delete the rows it holds", _sqlite_delete, names)

    async def write(self, table: Table, columns: Sequence[str], rows: list[Row]) -> None:
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        await self._run(f"write table {table.name}", _sqlite_insert, sql, rows)

    async def commit(self, tables: Sequence[Table]) -> None:
        # An INTEGER PRIMARY KEY takes the largest id plus one: nothing to move.
        await self._run("commit the copy", _sqlite_commit)

    async def close(self) -> None:
        try:
            await self._thread.close()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot close {self.label}: {exc}") from exc
