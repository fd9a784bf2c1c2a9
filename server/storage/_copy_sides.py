"""The ends of ``arena migrate``: an SQLite file (``_copy_sqlite.py``) or a PostgreSQL database
(``_copy_pg.py``), read from or written to table by table, batch by batch, behind one small
interface, :class:`Side`.

Nothing there names a table or a column: both sides read them from their database's catalog
(SQLite's pragmas, PostgreSQL's information schema), so a column a later migration adds is
copied as it is. The order of the copy, the refusals and the report are in ``migrate.py``.

A side holds one connection of its own, not a storage's: the copy needs one read snapshot over
every table of the source and one write transaction over every table of the destination, each
spanning many batches. A transaction left open when a side closes (a failure, a cancellation)
ends with its connection, rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Row", "Side", "Table", "quote", "select"]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A table as its database's catalog describes it."""

    name: str
    columns: tuple[str, ...]  # in the table's order; generated columns are left out
    types: tuple[str, ...]  # each column's declared type, lower case, in the backend's words
    key: tuple[str, ...]  # the primary key's columns, in order (none: no primary key)
    parents: frozenset[str]  # the other tables its foreign keys reference


def quote(name: str) -> str:
    """``name`` as an SQL identifier (both backends quote with double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def select(table: Table, columns: Sequence[str]) -> str:
    """The query reading ``columns`` of ``table`` in key order (a stable order, and the order a
    B-tree index is cheapest to fill in)."""
    order = f" ORDER BY {', '.join(map(quote, table.key))}" if table.key else ""
    return f"SELECT {', '.join(map(quote, columns))} FROM {quote(table.name)}{order}"


class Side(Protocol):
    """One end of a copy; ``label`` names it in messages (a path, or a URL without its password)."""

    label: str

    async def schema_version(self) -> int:
        """The schema version, 0 for a database without the arena's schema."""
        ...

    async def migrate(self) -> None:
        """Create or migrate the schema to this program's version, as ``arena serve`` would."""
        ...

    async def tables(self) -> dict[str, Table]:
        """Every table of the arena's schema, by name."""
        ...

    async def occupied(self, names: Sequence[str]) -> list[str]:
        """Which of these tables hold at least one row."""
        ...

    async def counts(self, names: Sequence[str]) -> dict[str, int]:
        """How many rows each of these tables holds."""
        ...

    async def begin_snapshot(self) -> None:
        """Start the read transaction every later read sees one snapshot through."""
        ...

    async def start_reading(self, table: Table, columns: Sequence[str]) -> None:
        """Start reading ``columns`` of ``table``, in key order; :meth:`fetch` returns the rows."""
        ...

    async def fetch(self, count: int) -> list[Row]:
        """The next (up to) ``count`` rows of the table being read; none at its end."""
        ...

    async def begin_writing(self, names: Sequence[str]) -> None:
        """Start the write transaction of the copy, with these tables locked against other writers."""
        ...

    async def delete_rows(self, names: Sequence[str]) -> None:
        """Delete every row of these tables (children first) in the write transaction."""
        ...

    async def write(self, table: Table, columns: Sequence[str], rows: list[Row]) -> None:
        """Insert rows of ``columns`` into ``table`` in the write transaction."""
        ...

    async def commit(self, tables: Sequence[Table]) -> None:
        """Make the copy durable: move the ids to come past the copied ones, then commit."""
        ...

    async def close(self) -> None:
        """Close the connection; a transaction still open is rolled back."""
        ...

    @property
    def nul_replaced(self) -> int:
        """Text values written with NUL characters replaced (PostgreSQL cannot store them)."""
        ...
