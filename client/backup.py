"""``arena backup DST``: an online, consistent copy of an SQLite arena, made through SQLite's
backup API while the server goes on writing.

Theory of operation
-------------------
The server keeps its SQLite database in WAL mode: a reader never blocks its writer, and a read
transaction sees one committed state of the database for as long as it lasts. The backup is one
more reader: it begins a read transaction and holds it while ``sqlite3.Connection.backup`` copies
the pages, ``--pages-per-step`` at a time, into a new file. Every page comes from that one
snapshot, so the copy is the database as it stood after one commit, whatever the server wrote
meanwhile. (Without the held transaction each step would see the newest state, and a commit of
another process between two steps restarts the copy from its first page: under a steady stream
of moves, again and again.) While the copy runs, the server's checkpoints cannot go past the
snapshot, so its WAL grows by what it writes meanwhile; the next checkpoint after the backup
takes it back.

The pages go to a temporary file beside DST, which is synced and renamed to DST only once
complete: an interrupted or failed backup leaves nothing under DST's name. With ``--force`` a
DST that exists is replaced, its stale ``-wal`` and ``-shm`` files removed first (SQLite would
otherwise read them as part of the new file). A match that was live is copied as it stood: a
server started on the copy stores it aborted, as after any stop.

PostgreSQL has its own tools for this (``pg_dump``): a PostgreSQL URL is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ArenaError

from .errors import CliError
from .output import out
from .terminal import printable

__all__ = ["BackupReport", "add_parser", "back_up", "cmd_backup"]

DEFAULT_PAGES_PER_STEP = 1024  # 4 MiB of the default 4 KiB pages between two progress reports
BUSY_TIMEOUT_MS = 10_000  # the server's writer may hold the database briefly (WAL recovery, a checkpoint)
_SIDE_FILES = ("-wal", "-shm", "-journal")
_HAS_MATCHES = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'matches'"


@dataclass(frozen=True, slots=True)
class BackupReport:
    pages: int
    page_size: int
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.pages * self.page_size


def add_parser(sub: Any) -> None:
    p = sub.add_parser("backup", help="copy a running SQLite arena to a new file, consistently",
                       description="An online, consistent copy of an SQLite arena (through SQLite's backup API) "
                                   "while its server runs; serve it with arena serve --db DST.")
    p.add_argument("destination", metavar="DST", help="the new SQLite file")
    p.add_argument("--db", help="the arena's SQLite file (env ARENA_DB; default arena.db)")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    p.add_argument("--pages-per-step", type=int, default=DEFAULT_PAGES_PER_STEP, metavar="N",
                   help=f"pages copied between two progress reports (default {DEFAULT_PAGES_PER_STEP})")
    p.set_defaults(func=cmd_backup)


def cmd_backup(args: argparse.Namespace) -> int:
    source = args.db or os.environ.get("ARENA_DB") or "arena.db"
    if args.pages_per_step < 1:
        raise CliError(f"--pages-per-step must be at least 1, not {args.pages_per_step}", code="usage", exit_code=2)
    shown = _Progress(is_live=sys.stderr.isatty())
    try:
        report = back_up(source, args.destination, force=args.force, pages_per_step=args.pages_per_step,
                         progress=shown)
    except KeyboardInterrupt:
        shown.clear()
        sys.stderr.write(f"arena: interrupted: {printable(args.destination)} was not written\n")
        raise
    shown.clear()
    out(f"backed up {printable(source)} to {printable(args.destination)}: {report.pages:,} pages "
        f"({report.size_bytes / (1 << 20):.1f} MiB) in {report.seconds:.2f} s")
    return 0


def back_up(source: str, destination: str, *, force: bool = False, pages_per_step: int = DEFAULT_PAGES_PER_STEP,
            progress: Any = None) -> BackupReport:
    """Copy the SQLite arena ``source`` (a path or ``sqlite:///`` URL) to the new file ``destination``;
    ``progress(copied, total)`` after each step.

    Raises:
        CliError: a PostgreSQL URL, no such database, not an SQLite database, a ``destination``
            that exists (without ``force``) or cannot be written.
    """
    from server.storage import is_postgres_url
    from server.storage._urls import sqlite_path  # not re-exported by server.storage

    if is_postgres_url(source):
        raise CliError("arena backup copies an SQLite arena; back up PostgreSQL with its own tools "
                       "(pg_dump -Fc -f arena.dump DBNAME, or pg_basebackup)", code="bad_input")
    try:
        path = sqlite_path(source)
    except ArenaError as exc:  # a URL of another scheme
        raise CliError(str(exc), code=exc.code) from None
    if path == ":memory:":
        raise CliError("an in-memory database has nothing to back up", code="bad_input")
    src = Path(path)
    dst = Path(destination)
    if not src.is_file():
        raise CliError(f"no SQLite database at {str(src)!r}", code="not_found")
    if dst.is_dir():
        raise CliError(f"{str(dst)!r} is a directory; give the backup's file name", code="bad_input")
    if not dst.parent.is_dir():
        raise CliError(f"cannot write {str(dst)!r}: no directory {str(dst.parent)!r}", code="bad_input")
    if dst.exists():
        if dst.samefile(src):
            raise CliError(f"{str(dst)!r} is the database being backed up", code="bad_input")
        if not force:
            raise CliError(f"{str(dst)!r} exists; pass --force to replace it", code="exists")

    started = time.monotonic()
    partial = dst.parent / f".{dst.name}.{os.getpid()}.partial"
    partial.unlink(missing_ok=True)  # left by a backup of this pid that was killed
    try:
        pages, page_size = _copy(src, partial, pages_per_step, progress)
        with partial.open("rb") as copied:
            os.fsync(copied.fileno())
        if force:
            for suffix in _SIDE_FILES:  # the replaced file's: they would be read as the new one's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{dst}{suffix}")
        os.replace(partial, dst)
    except BaseException:
        for leftover in (str(partial), *(f"{partial}{suffix}" for suffix in _SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        raise
    _sync_directory(dst.parent)
    return BackupReport(pages, page_size, time.monotonic() - started)


def _copy(src: Path, partial: Path, pages_per_step: int, progress: Any) -> tuple[int, int]:
    """Copy every page of ``src`` as of one snapshot into the new file ``partial``; its pages and page size."""
    try:
        # mode=rw: a missing file is an error, not a new empty database. isolation_level None:
        # the read transaction is begun and ended here.
        source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise CliError(f"cannot open {str(src)!r}: {exc}", code="bad_input") from None
    try:
        source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            source.execute("BEGIN")
            # The first read starts the transaction: from here on every page is of this snapshot.
            is_arena = source.execute(_HAS_MATCHES).fetchone()
            pages = int(source.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(source.execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise CliError(f"{str(src)!r} is not an SQLite database: {exc}", code="bad_input") from None
        if not is_arena:
            raise CliError(f"{str(src)!r} is not an arena's database: it has no matches table", code="bad_input")
        with contextlib.closing(sqlite3.connect(partial)) as target:

            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            try:
                source.backup(target, pages=pages_per_step, progress=step)
            except sqlite3.Error as exc:
                raise CliError(f"the backup of {str(src)!r} failed: {exc}", code="storage_error") from None
        source.execute("ROLLBACK")  # the read transaction: nothing was written
        return pages, page_size
    finally:
        source.close()


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (Linux: the directory entry is synced with its directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Progress:
    """A backup's progress on stderr: on a terminal one line redrawn in place; otherwise nothing."""

    def __init__(self, *, is_live: bool) -> None:
        self._is_live = is_live
        self._width = 0
        self._shown_at = 0.0

    def __call__(self, copied: int, total: int) -> None:
        now = time.monotonic()
        if not self._is_live or (copied < total and now - self._shown_at < 0.1):
            return
        text = f"backing up: {copied:,} of {total:,} pages ({100 * copied // total if total else 100}%)"
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = len(text)
        self._shown_at = now

    def clear(self) -> None:
        if self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0
