"""A worker's side of the match queue: the claim loop and the lease renewer.

Theory of operation
-------------------
:meth:`QueueWorker.run` is one task group of three tasks. The *claim loop* takes the next
claimable match from the queue (``MatchQueue.claim_match``: pending, or live with a lease run
out) whenever the worker runs fewer than ``max_matches`` matches, hands it to the match
manager, which runs it in the app's task group like any other, and waits ``poll_s`` when the
queue is empty or the worker full; a match of its own that ends (:meth:`QueueWorker.match_ended`)
ends that wait at once, so a full worker takes the next match without a poll's delay.
The *renewer* extends the leases of the matches the manager runs every third
of the lease; a match whose lease another worker took over (or that was stopped) is abandoned
at once: the manager cancels it without storing anything, since its writes would be refused
anyway. The *watchdog* covers what the renewer cannot see: a database that does not answer.
A storage call, once begun, runs to its end (it is shielded), so a renewal may hang; each
match's lease is counted from the start of its last successful renewal (or of its claim), on
this machine's monotonic clock, and a match whose lease may have run out here is abandoned
before another worker can have claimed it, whether or not the renewal ever answers.

A draining worker (``server/drain.py``) claims nothing more: the claim loop ends at its next
turn (a claim already under way is run like any other), while the renewer and the watchdog keep
the leases of the matches still running until they end, or the drain stops them, stored
``aborted``, as on one process. They are not handed back to the queue for another worker to
run again: that one would start them over from their seeds, after a whole lease (the queue has
no early release), and the drain timeout is the operator's bound on how long a match may hold
up a stop; set it above the longest match to lose none.

With ``url``, the worker also listens for the matches fronts store pending (``QUEUE_CHANNEL``,
notified in the transaction that stores one): a notification ends the claim loop's wait, so an
idle worker claims a new match at once; the poll remains for leases that run out, and for
notifications lost while the listening connection was down.
"""

from __future__ import annotations

import logging
import os

import anyio
from anyio.abc import TaskStatus

from protocol.errors import StorageError, describe_error
from server.matches.manager import MatchManager
from server.storage import QUEUE_CHANNEL, Lease, MatchQueue

from ._listening import keep_listening

__all__ = ["QueueWorker"]

log = logging.getLogger(__name__)

QUEUE_APPLICATION_NAME = "agent-arena-queue"  # the worker's listening connection in pg_stat_activity

# A match is abandoned when this share of its lease has passed since it was last known held:
# the rest is the margin for this machine's clock against the database's.
_SAFE_SHARE = 0.8


class QueueWorker:
    """Claims matches from the queue and keeps their leases; see the module docstring."""

    def __init__(
        self, queue: MatchQueue, manager: MatchManager, lease: Lease, *, max_attempts: int, max_matches: int = 0,
        poll_s: float = 0.25, url: str | None = None,
    ) -> None:
        self.queue = queue
        self.manager = manager
        self.lease = lease
        self.max_attempts = max_attempts
        self.max_matches = max_matches or 4 * (os.cpu_count() or 1)
        self.poll_s = poll_s
        self.url = url  # the database to listen on for new matches, if any
        self.claims = 0  # matches claimed since start
        self._held_at: dict[int, float] = {}  # match id -> when its lease was last known to hold
        self._ended = anyio.Event()  # set when a match of this worker ends: a place is free

    def match_ended(self) -> None:
        """A match this worker ran has ended: look for the next one now."""
        self._ended.set()

    def _queued(self, _payload: str) -> None:
        """A front stored a match for the workers: look for it now."""
        self._ended.set()

    async def _pause(self) -> None:
        """Wait ``poll_s``, or less if one of this worker's matches ends meanwhile."""
        with anyio.move_on_after(self.poll_s):
            await self._ended.wait()
        self._ended = anyio.Event()

    @property
    def renew_every_s(self) -> float:
        return self.lease.lease_s / 3

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Claim, renew and watch until cancelled."""
        async with anyio.create_task_group() as tg:
            if self.url is not None:
                await tg.start(keep_listening, self.url, {QUEUE_CHANNEL: self._queued}, QUEUE_APPLICATION_NAME,
                               self.match_ended)
            tg.start_soon(self._renew_leases)
            tg.start_soon(self._watch_leases)
            task_status.started()
            await self._claim_matches()

    async def _claim_matches(self) -> None:
        while True:
            if self.manager.is_draining:  # the renewer and the watchdog go on for what still runs
                log.info("%s claims no more matches: it is draining", self.lease.worker)
                return
            if len(self.manager.running) >= self.max_matches:
                await self._pause()
                continue
            started = anyio.current_time()
            try:
                # No deadline of our own here: a claim runs to its end once begun (storage calls
                # are shielded, each statement bounded by the storage), and a claim cut short
                # after its commit would hold a match nobody runs until its lease ran out.
                record = await self.queue.claim_match(self.lease, self.max_attempts)
            except StorageError as exc:
                log.error("cannot claim a match: %s", describe_error(exc))
                await self._pause()
                continue
            if record is None:
                await self._pause()
                continue
            self.claims += 1
            self._held_at[record.id] = started
            log.info("match_id=%s claimed by %s (attempt %d)", record.id, self.lease.worker, record.attempt)
            try:
                await self.manager.run_claimed(record)
            except Exception as exc:  # its agents are gone: the lease runs out, the queue gives up on it
                log.error("match_id=%s cannot be run: %s", record.id, describe_error(exc))

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(self.renew_every_s)
            running = list(self.manager.running)
            started = anyio.current_time()
            try:
                lost = await self.queue.renew_leases(self.lease, running)
            except StorageError as exc:
                log.error("cannot renew the leases of %d matches: %s", len(running), describe_error(exc))
                continue
            for match_id in running:
                if match_id in lost:
                    self._held_at.pop(match_id, None)
                    self.manager.abandon(match_id, "its lease was taken over by another worker, or it was stopped")
                else:
                    self._held_at[match_id] = started

    async def _watch_leases(self) -> None:
        safe_s = self.lease.lease_s * _SAFE_SHARE
        while True:
            await anyio.sleep(self.renew_every_s / 2)
            now = anyio.current_time()
            for match_id in list(self._held_at):
                if match_id not in self.manager.running:
                    del self._held_at[match_id]
            for match_id in list(self.manager.running):
                # A match started here (role all) is held from its creation: first seen now.
                held_at = self._held_at.setdefault(match_id, now)
                if now - held_at > safe_s:
                    del self._held_at[match_id]
                    self.manager.abandon(match_id, f"its lease could not be renewed for {now - held_at:.1f} s")
