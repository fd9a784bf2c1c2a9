"""The batching step writer, the same for every backend.

Theory of operation
-------------------
Steps are the hot path: a running match appends one step per turn. ``append_steps``
queues the rows without touching the database: a step comes already encoded (an
``EncodedStep``: the match's recorder encodes it once, and the hub builds the spectators'
frame around the same text) or is encoded here. One writer task (started by the storage's
``open_*`` in its task group, :func:`writing`) commits everything queued, for all matches, in
one transaction every ``BATCH_WINDOW_S`` or as soon as ``BATCH_ROWS`` are waiting. Every
queued row has a sequence number; ``_handled_seq`` is the last one the writer
has dealt with, so a *barrier* is "wait until ``_handled_seq`` reaches the last row I care
about". ``flush`` waits for every row, ``finish_match`` and ``get_steps`` for their match's
rows; a waiting barrier makes the writer write at once instead of waiting out the window.
So does a match's opening step (step 0, recorded as soon as the match is stored live): a
match listed live then has its opening state durable within a trip, not a window, and a
crash leaves every match it aborts a replay that shows at least its start.

What a batch costs. The SQL of a batch is cheap (about 0.1 ms for ten rows on SQLite); what
costs is waking up: each trip to the database (SQLite's writer thread, a PostgreSQL server)
wakes the event loop again with its answer, and the window's timer wakes the loop once more.
So a batch is one call of the backend's :data:`BatchWrite` (on SQLite one job on the writer
thread, on PostgreSQL one transaction of a few statements), the window is a plain sleep that
a barrier cancels (not a timeout, which would cancel every time), and the window is long
enough for many steps to share a commit; readers never wait it out.

Errors must not vanish. If a batch fails, the backend retries it match by match, so one bad
match (a duplicate step, an unknown match id) does not sink the rows of the others, and
returns the rows that still fail: they are dropped and remembered per match. The next
``finish_match`` of that match raises :class:`StorageError`, the next ``flush`` reports it
once, and ``close`` raises if nobody was told. Closing drains the queue first; rows are never
left behind on exit.

All of this state lives in one :class:`StepWriter`, which the storage owns and delegates to;
what is backend-specific is only the :data:`BatchWrite` it is given.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus

from protocol.codec import encode
from protocol.errors import LeaseLost, StorageError
from protocol.messages import StepRecord

from .base import EncodedStep

__all__ = ["BATCH_ROWS", "BATCH_WINDOW_S", "MAX_BATCH_ROWS", "MAX_QUEUED_ROWS", "BatchWrite", "StepRow", "StepWriter",
           "rows_by_match", "writing"]

log = logging.getLogger(__name__)

# Longest a queued step waits, so many turns of many matches share one commit. Nobody waits it
# out (barriers write at once, a match's end too): it only bounds what a crash loses. 10 ms
# rather than 5 halves the commits under steady load, each about 0.4 ms of CPU here.
BATCH_WINDOW_S = 0.010
BATCH_ROWS = 500  # write at once when this many steps are queued
MAX_BATCH_ROWS = 5_000  # one transaction holds the write lock for at most this many rows
MAX_QUEUED_ROWS = 50_000  # back-pressure: append_steps waits while the writer is this far behind


StepRow = tuple[int, int, str]  # (match_id, step, record): one match_steps row
# Writes a batch of rows, for every match in it, in one transaction (one trip to the database);
# if that fails, one transaction per match, so one bad match does not sink the others. Returns
# the rows that failed, per match, with why; raises only on a bug of our own.
BatchWrite = Callable[[Sequence[StepRow]], Awaitable[list[tuple[list[StepRow], Exception]]]]


def _row(match_id: int, step: StepRecord | EncodedStep) -> StepRow:
    if isinstance(step, EncodedStep):  # encoded once by the recorder, for the hub as well
        return (match_id, step.record.step, step.text)
    return (match_id, step.step, encode(step).decode())


def rows_by_match(rows: Sequence[StepRow]) -> dict[int, list[StepRow]]:
    """The rows of a batch grouped by match, in the order the matches first appear."""
    by_match: dict[int, list[StepRow]] = {}
    for row in rows:
        by_match.setdefault(row[0], []).append(row)
    return by_match


@asynccontextmanager
async def writing(writer: StepWriter, close: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``writer``'s task around the body, then ``close()`` (the storage's, which drains the writer).

    Raises:
        BaseException: what the body or ``close`` raised, as raised (not in a group).
    """
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            try:
                yield
            finally:
                await close()
    except BaseExceptionGroup as group:
        # The writer fails only on our own bug, so a group here nearly always holds just the
        # caller's exception (or close()'s): give it back as raised, not wrapped.
        if len(group.exceptions) != 1:
            raise
        exc = group.exceptions[0]
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context
            del exc, group


@dataclass(frozen=True, slots=True)
class _WriteFailure:
    """Steps of one match the writer could not store."""

    match_id: int
    steps: tuple[int, ...]
    cause: Exception

    def error(self) -> StorageError:
        lost = f"{len(self.steps)} step(s) ({min(self.steps)}..{max(self.steps)})"
        # A fenced write refused (another worker took the match over) stays a LeaseLost: the
        # match's runner stops it instead of storing an end.
        kind = LeaseLost if isinstance(self.cause, LeaseLost) else StorageError
        exc = kind(f"{lost} of match {self.match_id} were not stored: {self.cause}")
        exc.__cause__ = self.cause
        return exc


class StepWriter:
    """The step queue, its barriers and its writer task; see the module docstring."""

    def __init__(self, write_batch: BatchWrite) -> None:
        self._write_batch = write_batch  # the backend's; see BatchWrite
        self._queue: list[StepRow] = []
        self._seq = 0  # rows queued so far: the n-th row queued has sequence number n
        self._taken = 0  # rows the writer has taken off the queue: _queue[0] is row _taken + 1
        self._handled_seq = 0  # last sequence number the writer committed or gave up on
        self._last_seq: dict[int, int] = {}  # match id -> its last queued row
        self._wake = anyio.Event()  # rows arrived or closing
        self._window: anyio.CancelScope | None = None  # the writer waiting out the batch window
        self._progress = anyio.Event()  # a batch was handled; replaced after each one
        self._barriers = 0  # callers waiting on the writer
        self._opening_seq = 0  # the last opening step queued: the writer does not wait while it is queued
        self._failures: dict[int, _WriteFailure] = {}
        self._unreported: set[int] = set()  # failures neither flush nor finish_match reported yet
        self._is_closing = False
        self._writer_done = anyio.Event()
        self._drained = anyio.Event()  # drain() has written everything

    @property
    def is_closing(self) -> bool:
        """Whether :meth:`drain` has begun; no more steps are accepted."""
        return self._is_closing

    # -- the storage's side ------------------------------------------------------------------------

    async def append(self, match_id: int, steps: Sequence[StepRecord | EncodedStep]) -> None:
        """Queue steps of one match (encoding those not encoded yet); waits only while the queue is full.

        Raises:
            StorageError: the storage is closed.
        """
        if not steps:
            return
        self._check_open()
        rows = [_row(match_id, step) for step in steps]
        while len(self._queue) >= MAX_QUEUED_ROWS:  # the writer is far behind: slow the producers down
            await self._wait_handled(self._taken + 1)
            self._check_open()
        self._queue += rows
        self._seq += len(rows)
        self._last_seq[match_id] = self._seq
        self._wake.set()
        if rows[0][1] == 0:  # a match's opening step (steps come in order): see the module docstring
            self._opening_seq = self._seq
            self._hurry()
        elif len(self._queue) >= BATCH_ROWS:
            self._hurry()

    async def flush(self) -> None:
        """Wait until every step queued so far is handled, then report failures not yet reported.

        Raises:
            StorageError: steps of some match could not be stored (reported once here, and
                again by that match's ``finish_match``).
        """
        await self._wait_handled(self._seq)
        failures = [self._failures[m] for m in sorted(self._unreported) if m in self._failures]
        self._unreported.clear()
        if failures:
            detail = "; ".join(str(f.error()) for f in failures)
            raise StorageError(f"queued steps could not be stored: {detail}") from failures[0].cause

    async def wait_match(self, match_id: int) -> None:
        """Barrier: return once the writer has handled every step of the match queued so far.

        Raises:
            StorageError: the writer stopped with the match's steps still queued.
        """
        await self._wait_handled(self._last_seq.get(match_id, 0))

    def raise_failure(self, match_id: int) -> None:
        """Raise, and forget, the write failure of the match if it has one.

        Raises:
            StorageError: some of the match's steps could not be stored.
        """
        failure = self._failures.pop(match_id, None)
        if failure is not None:
            self._unreported.discard(match_id)
            raise failure.error()

    async def drain(self) -> None:
        """Refuse new steps, stop the writer task and write every queued step; call it shielded."""
        self._is_closing = True
        self._wake.set()
        self._hurry()
        await self._writer_done.wait()
        while self._queue:  # the writer was cancelled before draining: finish its work here
            await self._write_queue()
        self._drained.set()

    def raise_unreported(self) -> None:
        """After :meth:`drain`: raise if steps were lost and no caller has been told.

        Raises:
            StorageError: queued steps could not be stored and no caller has been told.
        """
        if self._unreported:
            failures = [self._failures[m] for m in sorted(self._unreported)]
            self._unreported.clear()
            detail = "; ".join(str(f.error()) for f in failures)
            raise StorageError(f"steps lost at close: {detail}") from failures[0].cause

    def _check_open(self) -> None:
        if self._is_closing:
            raise StorageError("storage is closed")

    def _hurry(self) -> None:
        """Make the writer stop waiting out the batch window and write at once."""
        if self._window is not None:
            self._window.cancel()

    # -- the writer task ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer task: commit the queue in batches until :meth:`drain` stops it."""
        task_status.started()
        try:
            while True:
                if not self._queue:
                    if self._is_closing:
                        return
                    self._wake = anyio.Event()
                    await self._wake.wait()
                    continue
                is_urgent = self._barriers or self._is_closing or self._opening_seq > self._taken
                if not (is_urgent or len(self._queue) >= BATCH_ROWS):
                    # A plain sleep that _hurry() may cut short: the usual case, a window run
                    # out, then costs no cancellation (a timeout would cancel every time).
                    with anyio.CancelScope() as self._window:
                        await anyio.sleep(BATCH_WINDOW_S)
                    self._window = None
                # Once taken off the queue a batch must be written and its outcome recorded (a few
                # milliseconds), or its rows would be neither handled nor failed.
                with anyio.CancelScope(shield=True):
                    await self._write_queue()
        finally:
            self._writer_done.set()
            self._progress.set()

    async def _write_queue(self) -> None:
        """Write (at most ``MAX_BATCH_ROWS`` of) the queue and wake the barriers."""
        if len(self._queue) <= MAX_BATCH_ROWS:
            batch, self._queue = self._queue, []
        else:
            batch, self._queue = self._queue[:MAX_BATCH_ROWS], self._queue[MAX_BATCH_ROWS:]
        if not batch:
            return
        self._taken += len(batch)
        for rows, exc in await self._write_batch(batch):
            self._record_failure(rows, exc)
        self._handled_seq = self._taken
        for match_id in {match_id for match_id, _, _ in batch}:
            if self._last_seq.get(match_id, 0) <= self._handled_seq:
                self._last_seq.pop(match_id, None)
        progress, self._progress = self._progress, anyio.Event()
        progress.set()

    def _record_failure(self, rows: Sequence[StepRow], exc: Exception) -> None:
        match_id = rows[0][0]
        steps = tuple(step for _, step, _ in rows)
        is_fenced_out = isinstance(exc, LeaseLost)
        log.log(logging.WARNING if is_fenced_out else logging.ERROR, "could not store %d step(s) of match_id=%s: %s",
                len(rows), match_id, exc)
        previous = self._failures.get(match_id)
        if previous is not None:
            steps = previous.steps + steps
            exc = previous.cause
        self._failures[match_id] = _WriteFailure(match_id, steps, exc)
        # Steps refused by the fence belong to a match another worker runs now: nothing is lost
        # that anybody must be told of (the runner stops that match when its lease is lost).
        if not is_fenced_out:
            self._unreported.add(match_id)

    async def _wait_handled(self, seq: int) -> None:
        """Barrier: return once the writer has handled every row up to ``seq``."""
        if self._handled_seq >= seq:
            return
        self._barriers += 1
        try:
            while self._handled_seq < seq:
                if self._writer_done.is_set():
                    if self._is_closing:
                        await self._drained.wait()  # drain() writes what the writer left
                    if self._handled_seq < seq:
                        raise StorageError("the step writer has stopped; queued steps were not written")
                    return
                self._hurry()
                await self._progress.wait()
        finally:
            self._barriers -= 1
