"""Leadership: the one process of a cluster that runs the ladder's scheduler and the rater.

Theory of operation
-------------------
Every process of the cluster that has the ladder on holds a :class:`Leadership`: one
connection of its own (``open_leader_session``: not the storage's pool, whose connections are
shared and reset) that competes for the cluster's leader lock, a session-level advisory lock in
PostgreSQL. ``pg_try_advisory_lock`` never waits: one session gets it, the others are told no.
The one that holds it runs the leader's work (``lead``, started in a task group of its own);
the others try again every ``retry_s``, and read meanwhile who leads (:attr:`leader`).
PostgreSQL is the referee: the lock is held exactly as long as the holder's session lasts,
so no process decides on its own that another is gone.

The leader watches its connection: asyncpg reports one the server closed (``on_lost``: the
session was terminated, the socket closed), not one that stopped answering, so every
``ping_interval_s`` a ``SELECT 1`` must answer within ``timeout_s``. The moment either fails,
the work is cancelled and the connection dropped; the process goes back to trying, as any
other, after ``retry_s``. Losing leadership never ends the process.

What each way of failing does:

* the leader is killed (SIGKILL, a crash): its kernel closes the socket, the server ends the
  session and frees the lock; another process takes it at its next try, within ``retry_s``
  (plus a try's round trip) of the death;
* the leader's session is terminated (``pg_terminate_backend``, a restart of the server): the
  lock is free at once, and the old leader sees the connection closed (``on_lost``) and
  cancels its work before its next statement, so that it stops while another takes over;
* the network between leader and server fails: the leader stops its work within
  ``ping_interval_s + timeout_s`` (a ping that does not answer); the server frees the lock
  when TCP keepalives give up on the peer (about 11 s of silence, ``_pg_leader.py``), which is
  after the old leader stopped, so two never run at once but for a paused process (next);
* the leader is paused (SIGSTOP, a frozen VM): its kernel still answers TCP, so its session,
  and the lock, stay; the scheduler and the rater pause with it, and nobody else leads until
  it runs again or dies. PostgreSQL keeps a session-level lock until the session ends;
  a pause is not an end. After SIGCONT it carries on as leader (its pings answer).
  If the server ended the session meanwhile (terminated by an operator), the resumed process
  learns it from its connection before or right after the first pass of its work: a pass
  that overlaps the new leader's can at most start a match or two beyond the slots, each a
  match of its own (matches are rows; nothing is shared to corrupt).

The work must not end by itself: it runs until cancelled. Should it raise (a bug), the error
propagates and fails the app loudly, as any task's would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import anyio
from anyio.abc import TaskStatus

from protocol.errors import StorageError, describe_error
from server.storage import LeaderSession, open_leader_session

__all__ = ["PING_INTERVAL_S", "TIMEOUT_S", "Leadership"]

log = logging.getLogger(__name__)

T = TypeVar("T")

PING_INTERVAL_S = 1.0  # the leader checks its connection this often
TIMEOUT_S = 5.0  # a statement or a ping that takes longer means the connection is dead


class Leadership:
    """Competes for the leadership of the cluster whose database is at ``url``, as the process
    named ``name``, and runs ``lead()`` while it holds it; see the module docstring. Run
    :meth:`run` in a task group."""

    def __init__(
        self, url: str, lead: Callable[[], Coroutine[Any, Any, None]], *, name: str, retry_s: float,
        ping_interval_s: float = PING_INTERVAL_S, timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.lead = lead
        self.name = name
        self.retry_s = retry_s
        self.ping_interval_s = ping_interval_s
        self.timeout_s = timeout_s
        self.is_leader = False
        self.leader: str | None = None  # the name of the process that leads, as last seen
        self.terms = 0  # times this process became the leader
        self.is_connected = False
        self.backend_pid: int | None = None  # the server process of the connection

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Compete until cancelled; started after the first try (this process leads, or knows who does).

        Raises:
            StorageError: the first connection failed (later ones are tried again until one works).
        """
        is_started = False
        try:
            while True:
                lost = anyio.Event()
                try:
                    async with open_leader_session(self.url, self.name, lost.set) as session:
                        self.is_connected, self.backend_pid = True, session.backend_pid
                        while True:
                            is_leader = await self._bounded(session.try_lead())
                            if not is_leader:
                                self.leader = await self._bounded(session.leader())
                            if not is_started:
                                task_status.started()
                                is_started = True
                            if is_leader:
                                await self._hold(session, lost)  # returns never: raises once lost
                            with anyio.move_on_after(self.retry_s):
                                await lost.wait()
                            if lost.is_set():
                                raise StorageError("the server closed the leader's connection")
                except StorageError as exc:
                    if not is_started:
                        raise
                    log.warning("leadership of %s: %s; trying again in %g s", self.name, describe_error(exc),
                                self.retry_s)
                self.is_connected, self.leader = False, None
                await anyio.sleep(self.retry_s)
        finally:
            self.is_connected = self.is_leader = False

    async def _hold(self, session: LeaderSession, lost: anyio.Event) -> NoReturn:
        """Lead: run the work while the connection answers; cancel it the moment it does not.

        Raises:
            StorageError: the connection failed (the work is cancelled first).
        """
        self.is_leader, self.leader = True, self.name
        self.terms += 1
        log.warning("%s leads the cluster (term %d): it runs the ladder", self.name, self.terms)
        failure: StorageError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.lead)
                try:
                    await self._watch(session, lost)
                except StorageError as exc:
                    failure = exc
                tg.cancel_scope.cancel()
        finally:
            self.is_leader, self.leader = False, None
        assert failure is not None  # _watch returns only by raising
        log.warning("%s no longer leads the cluster: %s", self.name, describe_error(failure))
        raise failure

    async def _watch(self, session: LeaderSession, lost: anyio.Event) -> NoReturn:
        """Return never; raise as soon as the connection is closed or a ping fails.

        Raises:
            StorageError: the connection failed.
        """
        while True:
            with anyio.move_on_after(self.ping_interval_s):
                await lost.wait()
            if lost.is_set() or session.is_closed():
                raise StorageError("the server closed the leader's connection")
            await self._bounded(session.ping())

    async def _bounded(self, call: Awaitable[T]) -> T:
        """``call`` within ``timeout_s``.

        Raises:
            StorageError: it failed, or did not answer in time.
        """
        try:
            with anyio.fail_after(self.timeout_s):
                return await call
        except TimeoutError:
            raise StorageError(f"the leader's connection did not answer in {self.timeout_s:g} s") from None
