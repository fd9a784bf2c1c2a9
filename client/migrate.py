"""``arena migrate SRC DST``: copy a whole arena between an SQLite file and a PostgreSQL
database, either way, with its progress on stderr (the copy itself is ``server.storage.migrate``)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from protocol.errors import ArenaError

from .errors import CliError
from .output import err, out, out_json
from .terminal import printable

if TYPE_CHECKING:
    from server.storage import CopyProgress, CopyReport

__all__ = ["ProgressLine", "add_parser", "cmd_migrate"]

LIVE_PERIOD_S = 0.1  # a terminal's line is redrawn at most this often
QUIET_PERIOD_S = 10.0  # without a terminal, a long table shows a line this often, besides its end


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("migrate", help="copy a whole arena between an SQLite file and a PostgreSQL database",
                       description="Copy every user (with its token), agent version, match, step, log and rating "
                                   "from SRC to DST, keeping their ids, in one transaction.")
    p.add_argument("source", metavar="SRC", help="an SQLite file or postgresql://USER:PASSWORD@HOST:PORT/DB")
    p.add_argument("destination", metavar="DST", help="an SQLite file (made if missing) or a PostgreSQL URL; "
                                                      "it must hold no data, unless --replace")
    p.add_argument("--replace", action="store_true",
                   help="delete everything DST holds, in the copy's transaction, and copy over it")
    p.add_argument("--batch-rows", type=_positive, default=None, metavar="N", help="rows per batch (default 1000)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_migrate)


class ProgressLine:
    """A copy's progress on ``stream``: on a terminal one line redrawn in place (the table being
    copied, its rows, the total); otherwise quiet lines, one per table and one every
    ``QUIET_PERIOD_S`` during a long table."""

    def __init__(self, stream: TextIO, *, is_live: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._is_live = is_live
        self._clock = clock
        self._shown_at = clock()
        self._width = 0  # of the live line on screen

    def __call__(self, progress: CopyProgress) -> None:
        now = self._clock()
        table = printable(progress.table)
        if self._is_live:
            if not progress.is_table_done and now - self._shown_at < LIVE_PERIOD_S:
                return
            percent = 100 * progress.total_copied // progress.total_rows if progress.total_rows else 100
            text = (f"copying {table}: {progress.copied:,} of {progress.table_rows:,} rows; "
                    f"total {progress.total_copied:,} of {progress.total_rows:,} ({percent}%)")
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif progress.is_table_done:
            self._stream.write(f"{table}: {progress.copied:,} rows copied "
                               f"(total {progress.total_copied:,} of {progress.total_rows:,})\n")
        elif now - self._shown_at >= QUIET_PERIOD_S:
            self._stream.write(f"{table}: {progress.copied:,} of {progress.table_rows:,} rows so far\n")
        else:
            return
        self._stream.flush()
        self._shown_at = now

    def clear(self) -> None:
        """Wipe the live line, if one is shown."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import anyio

    from server.storage import copy_arena

    shown = ProgressLine(sys.stderr, is_live=sys.stderr.isatty())
    options: dict[str, Any] = {"replace": args.replace, "progress": shown}
    if args.batch_rows is not None:
        options["batch_rows"] = args.batch_rows
    async def copy_until_interrupted() -> CopyReport:
        # Ctrl-C (or SIGINT) cancels the copy through its cancel scope: each database call in
        # flight ends, the destination's transaction rolls back, then the command says so.
        interrupted = False
        report: CopyReport | None = None
        async with anyio.create_task_group() as tg:
            async def watch() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            try:
                report = await copy_arena(args.source, args.destination, **options)
            except ArenaError as exc:  # raised here, not inside the task group's exception group
                failure: ArenaError | None = exc
            else:
                failure = None
            tg.cancel_scope.cancel()
        if report is not None:  # committed (a commit once begun is not interrupted): it stands
            return report
        if interrupted:
            raise KeyboardInterrupt
        assert failure is not None
        raise failure

    try:
        report = anyio.run(copy_until_interrupted)
    except ArenaError as exc:
        shown.clear()
        raise CliError(str(exc), code=exc.code) from None
    except KeyboardInterrupt:
        shown.clear()
        err("arena: interrupted: nothing was copied (the copy is one transaction, rolled back)")
        raise
    shown.clear()
    _notes(report)
    if args.json:
        out_json(report.to_json())
    else:
        replaced = "; what it held before was deleted" if report.is_replaced else ""
        out(f"copied {report.rows:,} rows of {len(report.tables)} tables from {printable(report.source)} "
            f"to {printable(report.destination)} in {report.seconds:.1f} s "
            f"(schema version {report.schema_version}{replaced})")
    return 0


def _notes(report: CopyReport) -> None:
    if report.source_migrated_from is not None:
        err(f"note: the source's schema was migrated from version {report.source_migrated_from} to "
            f"{report.schema_version} before the copy")
    for what in report.left_out:
        err(f"note: not copied: {printable(what)}")
    if report.nul_replaced:
        err(f"note: {report.nul_replaced} text values held NUL characters, which PostgreSQL cannot store: "
            "each was written as U+FFFD")
