"""Copy a whole arena from one database to another, SQLite or PostgreSQL either way: ``arena migrate``.

Theory of operation
-------------------
:func:`copy_arena` reads every table of the source in one snapshot and writes it into the
destination in one transaction, a batch of rows at a time. So the destination ends up holding
exactly what the source held when the copy began, or, after any failure or an interruption,
what it held before (the copy is rolled back; a destination file the copy created is removed).
Rows keep their ids: users with their token hashes, agents with every version of their code,
matches with their seats, every step's text byte for byte, seat logs, ratings and the marks of
rated matches come across unchanged, and on PostgreSQL the identity sequences are moved past
the copied ids in the same transaction, so the next row made there gets a new id.

Nothing names a table or a column (the sides, ``_copy_sides.py``, read them from each catalog).
Tables are copied parents first, by the destination's foreign keys, each in key order. Both
databases are first brought to this program's schema version, the source migrated in place as
``arena serve`` would migrate it; one version names the same tables and columns on both
backends (``_pg_schema.py``), so a column a later migration adds is copied with no change here.
A table or column only one side has is that backend's own bookkeeping: it is not copied, and
the report names it (with its rows, if the source holds any).

Refusals come before anything is written, each as one :class:`StorageError` line: a source that
is missing or holds no arena, a database whose schema is newer than this program, the same
database on both ends, and a destination that holds rows, unless ``replace`` is given: then
its rows are deleted in the copy's own transaction, so a failed copy leaves them in place.

Values cross as the drivers read them, converted only where the destination's column is
stricter: SQLite's 0 and 1 flags become PostgreSQL booleans, an integer in a float column a
float. PostgreSQL's text cannot hold the NUL character, which SQLite's can (a bot may print
one into its log): it is written as U+FFFD and counted in the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio

from protocol.errors import ConfigError, StorageError
from protocol.messages import JSON

from ._copy_pg import PostgresSide
from ._copy_sides import Side, Table
from ._copy_sqlite import SqliteSide
from ._schema import SCHEMA_VERSION
from ._urls import is_postgres_url, sqlite_path

__all__ = ["BATCH_ROWS", "CopyProgress", "CopyReport", "copy_arena"]

# Rows per batch: one read and one write each. A step's text is a few kilobytes at most, so a
# batch stays within a few megabytes, and the round trips of small batches do not dominate.
BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """Where a copy is: ``copied`` of the ``table_rows`` rows of ``table``, ``total_copied`` of
    the ``total_rows`` of every table; ``is_table_done`` once that table is copied."""

    table: str
    copied: int
    table_rows: int
    total_copied: int
    total_rows: int
    is_table_done: bool


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy did. ``tables`` maps each copied table to its rows, in the order copied;
    ``left_out`` names what only one side's schema has (not copied); ``nul_replaced`` counts
    text values whose NUL characters became U+FFFD."""

    source: str
    destination: str
    schema_version: int
    tables: tuple[tuple[str, int], ...]
    seconds: float
    is_replaced: bool
    source_migrated_from: int | None
    left_out: tuple[str, ...]
    nul_replaced: int

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.tables)

    def to_json(self) -> dict[str, JSON]:
        """The report as a JSON document (``arena migrate --json``)."""
        return {"source": self.source, "destination": self.destination, "schema_version": self.schema_version,
                "tables": dict(self.tables), "rows": self.rows, "seconds": round(self.seconds, 3),
                "replaced": self.is_replaced, "source_migrated_from": self.source_migrated_from,
                "left_out": list(self.left_out), "nul_replaced": self.nul_replaced}


@dataclass(frozen=True, slots=True)
class _Place:
    """One end of a copy as named: a PostgreSQL URL, or an SQLite file's path."""

    url: str
    path: str | None  # the SQLite file; None for PostgreSQL
    is_new: bool = False  # a destination file the copy makes (and removes again if it fails)


def _place(url: str, role: str) -> _Place:
    """Where ``url`` points, checked as far as it can be without connecting.

    Raises:
        ConfigError: not a URL of either backend, or an in-memory SQLite database.
        StorageError: an SQLite source that is not a readable file.
    """
    if is_postgres_url(url):
        return _Place(url, None)
    path = sqlite_path(url)
    if path in ("", ":memory:"):
        raise ConfigError(f"the {role} is an in-memory SQLite database, which no other process can see: "
                          "give a file path or a postgresql:// URL")
    if role == "source":
        if not os.path.exists(path):
            raise StorageError(f"cannot read the source {path}: no such file")
        if not os.path.isfile(path):
            raise StorageError(f"cannot read the source {path}: not a file")
        if not os.access(path, os.R_OK):
            raise StorageError(f"cannot read the source {path}: permission denied")
    elif os.path.isdir(path):
        raise StorageError(f"cannot write the destination {path}: it is a directory")
    return _Place(url, path, is_new=role == "destination" and not os.path.exists(path))


def _is_same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def _remove_database_file(path: str) -> None:
    """Remove an SQLite file and the files SQLite keeps beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)


async def _open(place: _Place, *, is_writer: bool) -> Side:
    if place.path is None:
        return await PostgresSide.open(place.url)
    return await SqliteSide.open(place.path, is_writer=is_writer)


def _parents_first(tables: Mapping[str, Table]) -> list[str]:
    """Table names in an order where every table comes after those its foreign keys reference
    (among ``tables``), by name where that leaves a choice; a circle, which the schema has not,
    is broken by name."""
    waiting = {name: set(table.parents) & tables.keys() for name, table in tables.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, parents in waiting.items() if not parents) or [min(waiting)]
        for name in ready:
            del waiting[name]
            order.append(name)
        for parents in waiting.values():
            parents.difference_update(ready)
    return order


async def _refuse_newer(side: Side, role: str) -> int:
    version = await side.schema_version()
    if version > SCHEMA_VERSION:
        raise StorageError(f"the {role} {side.label} has schema version {version}, newer than this program's "
                           f"{SCHEMA_VERSION}: use a newer arena")
    return version


def _occupied_message(side: Side, names: Sequence[str]) -> str:
    return (f"the destination {side.label} already holds data (in {', '.join(names)}): "
            "pass --replace to delete it and copy over it, or give an empty database")


async def copy_arena(
    source: str, destination: str, *, replace: bool = False, batch_rows: int = BATCH_ROWS,
    progress: Callable[[CopyProgress], None] | None = None,
) -> CopyReport:
    """Copy every table of the arena at ``source`` into ``destination`` (file paths or URLs as
    ``open_storage`` takes them); see the module docstring. ``progress`` is called after each
    batch and at the end of each table.

    Raises:
        ConfigError: a URL neither backend takes, or an in-memory database.
        StorageError: a refusal (see the module docstring), a database that cannot be reached
            or read, or a failed copy; the message says what the destination holds then.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    started = time.monotonic()
    src_place, dst_place = _place(source, "source"), _place(destination, "destination")
    if src_place.path is not None and dst_place.path is not None and _is_same_file(src_place.path, dst_place.path):
        raise StorageError(f"the source and the destination are the same file, {src_place.path}")
    try:
        async with AsyncExitStack() as stack:
            # Closed whatever happens (a Ctrl-C after the commit must not undo a copy made).
            src = await _open(src_place, is_writer=False)
            stack.push_async_callback(_close, src)
            dst = await _open(dst_place, is_writer=True)
            stack.push_async_callback(_close, dst)
            return await _copy(src, dst, replace=replace, batch_rows=batch_rows, progress=progress,
                               started=started)
    except BaseException:
        if dst_place.is_new and dst_place.path is not None:
            _remove_database_file(dst_place.path)
        raise


async def _close(side: Side) -> None:
    with anyio.CancelScope(shield=True):
        await side.close()


async def _copy(
    src: Side, dst: Side, *, replace: bool, batch_rows: int, progress: Callable[[CopyProgress], None] | None,
    started: float,
) -> CopyReport:
    """The copy between two open sides; see :func:`copy_arena`."""
    src_version = await _refuse_newer(src, "source")
    if src_version == 0:
        raise StorageError(f"the source {src.label} holds no arena (no schema): nothing to copy")
    if isinstance(src, PostgresSide) and isinstance(dst, PostgresSide) and \
            await src.identity() == await dst.identity():
        raise StorageError(f"the source and the destination are the same database, {src.label}")
    dst_version = await _refuse_newer(dst, "destination")
    if not replace and dst_version:
        occupied = await dst.occupied(list(await dst.tables()))
        if occupied:
            raise StorageError(_occupied_message(dst, occupied))
    # Nothing refused: bring both to this program's schema (the source in place, as a server would).
    if src_version < SCHEMA_VERSION:
        await src.migrate()
    if dst_version < SCHEMA_VERSION:
        await dst.migrate()

    await src.begin_snapshot()
    src_tables, dst_tables = await src.tables(), await dst.tables()
    counts = await src.counts(sorted(src_tables))
    left_out: list[str] = []
    for name in sorted(src_tables.keys() - dst_tables.keys()):
        left_out.append(f"table {name} ({counts[name]} rows), which {dst.label} has not")
    plan: list[tuple[Table, Table, tuple[str, ...]]] = []  # (as read, as written, the columns both have)
    everything = _parents_first(dst_tables)
    for name in everything:
        if name in src_tables:
            read, written = src_tables[name], dst_tables[name]
            left_out += [f"column {name}.{column}, which {dst.label} has not" for column in read.columns
                         if column not in written.columns]
            plan.append((read, written, tuple(c for c in read.columns if c in written.columns)))
    total_rows = sum(counts[read.name] for read, _, _ in plan)

    await dst.begin_writing(everything)
    occupied = await dst.occupied(everything)  # again, now that no one else writes
    if occupied and not replace:
        raise StorageError(_occupied_message(dst, occupied))
    copied: list[tuple[str, int]] = []
    try:
        if occupied:
            await dst.delete_rows(everything[::-1])
        total_copied = 0
        for read, written, columns in plan:
            await src.start_reading(read, columns)
            rows_copied = 0
            while rows := await src.fetch(batch_rows):
                await dst.write(written, columns, rows)
                rows_copied += len(rows)
                total_copied += len(rows)
                if progress is not None:
                    progress(CopyProgress(read.name, rows_copied, counts[read.name], total_copied, total_rows, False))
            copied.append((read.name, rows_copied))
            if progress is not None:
                progress(CopyProgress(read.name, rows_copied, rows_copied, total_copied, total_rows, True))
        with anyio.CancelScope(shield=True):  # a commit begun ends (bounded by the statement timeout): copied, or not
            await dst.commit(list(dst_tables.values()))
    except StorageError as exc:
        raise StorageError(f"{exc}; nothing was copied: the copy is one transaction, rolled back, "
                           f"so {dst.label} holds what it held before") from exc
    return CopyReport(source=src.label, destination=dst.label, schema_version=SCHEMA_VERSION,
                      tables=tuple(copied), seconds=time.monotonic() - started, is_replaced=bool(occupied),
                      source_migrated_from=src_version if src_version < SCHEMA_VERSION else None,
                      left_out=tuple(left_out), nul_replaced=dst.nul_replaced)
