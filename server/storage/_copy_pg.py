"""A PostgreSQL database as one end of ``arena migrate`` (see ``_copy_sides.py``).

One connection of its own: the source's reads run in one read-only REPEATABLE READ
transaction through a server-side cursor per table, the destination's writes are binary COPY
batches in one transaction, which also moves the identity sequences past the copied ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction

from protocol.errors import StorageError

from ._copy_sides import Row, Table, quote, select
from ._pg_schema import CONNECT_TIMEOUT_S, CONNECTION_ERRORS, STATEMENT_TIMEOUT_S, describe, redact_url
from .postgres import open_postgres

__all__ = ["PostgresSide"]

log = logging.getLogger(__name__)

Convert = Callable[[Any], Any]

# PostgreSQL's record of its schema version; SQLite keeps it in PRAGMA user_version. Each side
# sets its own when it is migrated, so it is not copied.
_PG_VERSION_TABLE = "schema_version"

_PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.is_generated = 'NEVER'
ORDER BY c.table_name, c.ordinal_position
"""
_PG_KEYS = """
SELECT k.table_name, k.column_name
FROM information_schema.table_constraints c
JOIN information_schema.key_column_usage k
  ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name
WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema()
ORDER BY k.table_name, k.ordinal_position
"""
_PG_PARENTS = """
SELECT child.relname, parent.relname
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
WHERE k.contype = 'f' AND child.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
"""
_PG_IDENTITIES = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND is_identity = 'YES'
"""


def _to_bool(value: Any) -> Any:
    return value if value is None or isinstance(value, bool) else bool(value)  # SQLite's flags are 0 and 1


def _to_float(value: Any) -> Any:
    return value if value is None or isinstance(value, float) else float(value)


class PostgresSide:
    """A PostgreSQL database as one end of a copy; open one with :meth:`open`."""

    def __init__(self, url: str, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self.label = redact_url(url)
        self._url = url
        self._conn = conn
        self._transaction: Transaction | None = None
        self._cursor: Any = None  # asyncpg's cursor of the table being read
        self._reading = ""
        self._nul_replaced = 0

    @classmethod
    async def open(cls, url: str) -> PostgresSide:
        """A connection of its own to the database at ``url``.

        Raises:
            StorageError: the server cannot be reached, refuses the login, or has no such database.
        """
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S,
                                         server_settings={"application_name": "arena-migrate", "jit": "off"})
        except (ValueError, asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {redact_url(url)}: {describe(exc)}") from exc
        return cls(url, conn)

    @property
    def nul_replaced(self) -> int:
        return self._nul_replaced

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"cannot {what} in {self.label}: {describe(exc)}")

    async def identity(self) -> tuple[str, int]:
        """What tells this database from every other: its server's start time and its oid there."""
        try:
            row = await self._conn.fetchrow("SELECT pg_postmaster_start_time()::text, oid::bigint "
                                            "FROM pg_database WHERE datname = current_database()")
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("identify the database", exc) from exc
        assert row is not None
        return str(row[0]), int(row[1])

    async def schema_version(self) -> int:
        try:
            if await self._conn.fetchval("SELECT to_regclass($1)", _PG_VERSION_TABLE) is None:
                return 0
            return int(await self._conn.fetchval(f"SELECT version FROM {_PG_VERSION_TABLE}"))
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("read the schema version", exc) from exc

    async def migrate(self) -> None:
        async with open_postgres(self._url):
            pass

    async def tables(self) -> dict[str, Table]:
        try:
            columns = await self._conn.fetch(_PG_COLUMNS)
            keys = await self._conn.fetch(_PG_KEYS)
            parents = await self._conn.fetch(_PG_PARENTS)
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("read the schema", exc) from exc
        described: dict[str, tuple[list[str], list[str]]] = {}
        for table, column, data_type in columns:
            if table != _PG_VERSION_TABLE:
                names, types = described.setdefault(str(table), ([], []))
                names.append(str(column))
                types.append(str(data_type).lower())
        key_of: dict[str, list[str]] = {}
        for table, column in keys:
            key_of.setdefault(str(table), []).append(str(column))
        parents_of: dict[str, set[str]] = {}
        for child, parent in parents:
            if child != parent:
                parents_of.setdefault(str(child), set()).add(str(parent))
        return {name: Table(name, tuple(names), tuple(types), tuple(key_of.get(name, ())),
                            frozenset(parents_of.get(name, ())))
                for name, (names, types) in sorted(described.items())}

    async def occupied(self, names: Sequence[str]) -> list[str]:
        try:
            return [name for name in names
                    if await self._conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {quote(name)})")]
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("look for rows", exc) from exc

    async def counts(self, names: Sequence[str]) -> dict[str, int]:
        try:
            return {name: int(await self._conn.fetchval(f"SELECT count(*) FROM {quote(name)}")) for name in names}
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("count rows", exc) from exc

    async def _begin(self, what: str, **options: Any) -> None:
        self._transaction = self._conn.transaction(**options)
        try:
            await self._transaction.start()
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error(what, exc) from exc

    async def begin_snapshot(self) -> None:
        # REPEATABLE READ: every statement of the transaction sees the snapshot of its first.
        await self._begin("begin a read transaction", isolation="repeatable_read", readonly=True)

    async def start_reading(self, table: Table, columns: Sequence[str]) -> None:
        self._reading = table.name
        try:
            self._cursor = await self._conn.cursor(select(table, columns))
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error(f"read table {table.name}", exc) from exc

    async def fetch(self, count: int) -> list[Row]:
        assert self._cursor is not None, "start_reading first"
        try:
            return [tuple(record) for record in await self._cursor.fetch(count)]
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error(f"read table {self._reading}", exc) from exc

    async def begin_writing(self, names: Sequence[str]) -> None:
        await self._begin("begin the copy's transaction")
        if not names:
            return
        try:
            # EXCLUSIVE: others may read, nobody else writes until the copy commits.
            await self._conn.execute(f"LOCK TABLE {', '.join(map(quote, names))} IN EXCLUSIVE MODE")
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("lock the tables", exc) from exc

    async def delete_rows(self, names: Sequence[str]) -> None:
        if not names:
            return
        try:
            await self._conn.execute(f"TRUNCATE {', '.join(map(quote, names))}")
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("delete the rows it holds", exc) from exc

    def _text(self, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self._nul_replaced += 1
            return value.replace("\x00", "\ufffd")
        return value

    def _converters(self, table: Table, columns: Sequence[str]) -> list[Convert | None]:
        """Per column, what makes a value of the other backend fit the column's type here."""
        types = dict(zip(table.columns, table.types, strict=True))
        converters: list[Convert | None] = []
        for column in columns:
            data_type = types[column]
            if data_type == "boolean":
                converters.append(_to_bool)
            elif data_type in ("double precision", "real"):
                converters.append(_to_float)
            elif data_type in ("text", "character varying", "character"):
                converters.append(self._text)
            else:
                converters.append(None)
        return converters

    async def write(self, table: Table, columns: Sequence[str], rows: list[Row]) -> None:
        converters = self._converters(table, columns)
        records = [tuple(value if convert is None else convert(value)
                         for value, convert in zip(row, converters, strict=True)) for row in rows]
        try:
            await self._conn.copy_records_to_table(table.name, records=records, columns=list(columns))
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error(f"write table {table.name}", exc) from exc

    async def commit(self, tables: Sequence[Table]) -> None:
        assert self._transaction is not None, "begin_writing first"
        names = {table.name for table in tables}
        try:
            for table, column in await self._conn.fetch(_PG_IDENTITIES):
                if table in names:
                    # The next id is past every copied one (an empty table starts at 1 again).
                    await self._conn.execute(
                        f"SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(max({quote(column)}), 0) + 1, false) "
                        f"FROM {quote(table)}", quote(table), column)
            await self._transaction.commit()
            self._transaction = None
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            raise self._error("commit the copy", exc) from exc
        # Fresh planner statistics for the bulk of new rows, which autovacuum would gather only
        # later; the copy is committed already, so a failure here only costs a slower plan.
        try:
            if names:
                await self._conn.execute(f"ANALYZE {', '.join(map(quote, sorted(names)))}")
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            log.warning("copied, but cannot analyze the tables of %s: %s", self.label, describe(exc))

    async def close(self) -> None:
        try:
            await self._conn.close(timeout=CONNECT_TIMEOUT_S)
        except (asyncpg.PostgresError, *CONNECTION_ERRORS):
            self._conn.terminate()  # the transaction, if any, ends with the connection
