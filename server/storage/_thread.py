"""A database thread: one thread that owns one ``sqlite3`` connection and runs whole transactions.

Theory of operation
-------------------
``sqlite3`` blocks, and the event loop must not, so every statement runs in a thread. Each
:class:`DatabaseThread` is one such thread owning one connection for the connection's whole
life: it is opened, used and closed in that thread, so ``check_same_thread`` stays on and a
call from anywhere else raises instead of racing.

The unit of work is a *job*: a synchronous ``fn(conn, *args)``, put on the thread's queue by
:meth:`DatabaseThread.run`, whose awaiter gets ``fn``'s result or exception. A job is a whole
transaction (``BEGIN ... COMMIT`` or a read), so a storage call costs one *trip* to the
thread. A trip is what costs: waking the thread, then waking the event loop with the result,
tens of microseconds of CPU, against a few for the SQL of a typical call.

The hand-off: a job carries an asyncio future of the awaiting task's loop, and the thread
hands the outcome back with ``loop.call_soon_threadsafe``, which wakes the loop. Three other
ways were ruled out. ``concurrent.futures.Future`` with ``asyncio.wrap_future`` (the bridge
``loop.run_in_executor`` uses) measured about 30 us more CPU per trip here (a lock and a
condition per future, callbacks chained both ways). ``anyio.to_thread.run_sync`` runs a
function on whichever worker thread of a shared pool is free: a connection would hop threads,
and each call would queue behind the pool's limiter. ``anyio.from_thread.run_sync`` from the
worker blocks the worker until the loop has run the callback, so the thread would idle while
the loop is busy instead of running the next job. This ties the module to asyncio; the server
runs on anyio's asyncio backend (under uvicorn).

Cancellation. A job, once queued, runs to its end in the thread, and its caller waits for it
shielded and gets its outcome, as ``anyio.to_thread.run_sync`` waits for its thread: a
cancellation takes effect at the caller's next checkpoint, after the job. So a call that
returns did its work, one cancelled before it queued its job did none, and nobody has to
guess in between (a match cancelled while its end is being stored gets the stored end back,
rather than a cancellation after the commit and then "already ended" when it stores an
abort). Since no transaction spans two jobs, no connection is ever left inside one either
(a cancelled ``BEGIN`` sent as a trip of its own could leave one open). Jobs run in the
order they were queued; the wait is one job behind those queued.

Closing queues a stop mark behind the jobs already queued: they all run, then the thread
closes the connection and ends; :meth:`DatabaseThread.close` waits for that (shielded) and
joins the thread. A job queued after :meth:`close` began is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Generic, TypeVar, TypeVarTuple

import anyio
import anyio.lowlevel

__all__ = ["DatabaseThread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _settle(future: asyncio.Future[Any], outcome: Any, is_error: bool) -> None:
    """Hand a job's outcome to its awaiter; in the loop's thread."""
    if future.done():  # cancelled by a plain asyncio cancellation meanwhile: nobody waits
        return
    if is_error:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Job(Generic[T]):
    """A function to run in the thread with the connection, and the future of its awaiter."""

    __slots__ = ("args", "fn", "future", "loop")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future: asyncio.Future[T] = loop.create_future()

    def run(self, conn: sqlite3.Connection) -> None:
        """Run the job and hand its outcome to the loop; in the thread."""
        # Only a plain asyncio cancellation of the awaiting task can cancel the future (anyio's
        # stop at the shield): then nobody waits for the job, so it is skipped. Read from this
        # thread, the state may be a moment old: an outcome nobody waits for is dropped by _settle.
        if self.future.cancelled():
            return
        outcome: Any
        try:
            outcome, is_error = self.fn(conn, *self.args), False
        except BaseException as exc:  # every outcome goes to the awaiter; the thread serves on
            outcome, is_error = exc, True
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, outcome, is_error)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass


class DatabaseThread:
    """One thread owning one ``sqlite3`` connection, running jobs in order; see the module docstring.

    Start one with :meth:`start`, end it with :meth:`close`.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, name: str) -> None:
        self._connect = connect
        self._jobs: SimpleQueue[_Job[Any] | None] = SimpleQueue()  # None: the stop mark
        # Once each in the thread's life, so the thread-safe kind: the thread sets them without
        # a loop. Claimed before anyone waits for them: an awaiter's cancellation cannot cancel them.
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._opened.set_running_or_notify_cancel()
        self._stopped.set_running_or_notify_cancel()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._is_closing = False
        self.jobs = 0  # jobs queued so far: the trips to this thread, for measurements and tests

    @classmethod
    async def start(cls, connect: Callable[[], sqlite3.Connection], *, name: str) -> DatabaseThread:
        """Start a thread whose connection ``connect()`` opens (called in that thread).

        Raises:
            Exception: whatever ``connect`` raised (the thread has then ended).
        """
        self = cls(connect, name=name)
        self._thread.start()
        try:
            await asyncio.wrap_future(self._opened)
        except BaseException:
            await self.close()  # still opening when cancelled: wait for it, then close it
            raise
        return self

    async def run(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(conn, *args)`` in the thread, after every job queued before it; its result.

        Once queued, the job runs to its end and this waits for it even if the caller is
        cancelled meanwhile (the cancellation takes effect at the caller's next checkpoint).

        Raises:
            anyio.ClosedResourceError: :meth:`close` has begun.
            BaseException: whatever ``fn`` raised.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()  # a caller cancelled already queues nothing
        if self._is_closing:
            raise anyio.ClosedResourceError(f"database thread {self._thread.name!r} is closed")
        job: _Job[T] = _Job(fn, args, asyncio.get_running_loop())
        self._jobs.put(job)
        self.jobs += 1
        with anyio.CancelScope(shield=True):
            result = await job.future
        return result

    async def close(self) -> None:
        """Run every job queued so far, close the connection and join the thread; idempotent.

        Raises:
            sqlite3.Error: closing the connection failed.
        """
        if not self._is_closing:
            self._is_closing = True
            self._jobs.put(None)
        with anyio.CancelScope(shield=True):
            await asyncio.wrap_future(self._stopped)
        # The thread has set its last future: it is returning, so this join is immediate.
        self._thread.join()

    def _work(self) -> None:
        """The thread: open the connection, run jobs until the stop mark, close the connection."""
        try:
            conn = self._connect()
        except BaseException as exc:
            self._opened.set_exception(exc)
            self._stopped.set_result(None)
            return
        self._opened.set_result(None)
        try:
            while (job := self._jobs.get()) is not None:
                job.run(conn)
        finally:
            try:
                conn.close()
            except BaseException as exc:
                self._stopped.set_exception(exc)
            else:
                self._stopped.set_result(None)
