"""Announcing rating changes on the lobby, and rating what was left unrated (the backfill).

Theory of operation
-------------------
A ladder match (``MatchRecord.rated``: the scheduler's matches between distinct agents, see
``server/ladder/rules.py``) is rated by storage in the transaction that stores its result
(``finish_match``): a match is never finished but unrated, whatever crashes. The process that
ran it announces its end, then one ``rating_changed`` per rated seat, on its own lobby
(``server/matches/manager.py``, with the frames of ``server/matches/lobby.py``); in a cluster
every other front reads them from the rating history when it learns of the end
(``server/cluster/relay.py``).

The :class:`Rater` is the backfill for finished ladder matches left unrated: a database from
before ratings were stored with results, or results stored by an older program (a worker not
yet upgraded). One task, started in the app's task group, asks storage to rate them, a batch
at a time, oldest end first; storage marks a match rated in the same transaction that stores
its new ratings, so each is rated exactly once whatever happens. It runs a pass at start-up,
when the manager reports a finished ladder match that came back without rating changes (its
``on_finished`` callback, which only wakes the task, so it can neither block nor fail the
match), and every ``BACKFILL_INTERVAL_S`` besides, for what other processes left. What it rates
is announced once per lobby: on SQLite (one process) it publishes the frames itself; on a
storage that several processes share, the pass notifies the fronts (``rated``) and every
front's relay, this process's included, announces it, so the task publishes nothing itself.
A failure is logged, recorded for ``GET /api/health`` (``server/health.py``) and retried after
a pause, never fatal to the server; the next pass that succeeds clears it.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from server.health import Component, Health, describe
from server.matches.hub import Hub
from server.matches.lobby import rating_frames
from server.storage import MatchQueue, MatchRecord, MatchStatus, Storage

__all__ = ["BACKFILL_INTERVAL_S", "Rater"]

log = logging.getLogger(__name__)

# Small batches: a batch's frames reach the lobby at once, and a lobby queue holds 256 frames.
_BATCH_MATCHES = 25
_BATCH_PAUSE_S = 0.05
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 60.0
BACKFILL_INTERVAL_S = 60.0  # a pass at least this often: what other processes (older programs) left unrated


class Rater:
    """Rates the finished matches left unrated, in the background, and announces each new rating."""

    def __init__(
        self, storage: Storage, hub: Hub, *, batch_matches: int = _BATCH_MATCHES, health: Health | None = None,
        is_announcing: bool | None = None, backfill_interval_s: float = BACKFILL_INTERVAL_S,
    ) -> None:
        self.storage = storage
        self.health = health if health is not None else Health()
        self.hub = hub
        self.batch_matches = batch_matches
        # Publish what it rates on this hub: unless the storage is shared by several processes (a
        # cluster), where the fronts' relays announce it from the pass's notice.
        self.is_announcing = not isinstance(storage, MatchQueue) if is_announcing is None else is_announcing
        self.backfill_interval_s = backfill_interval_s
        self._wake = anyio.Event()

    def match_finished(self, record: MatchRecord) -> None:
        """The manager's ``on_finished`` callback: wake the task if a finished ladder match came
        back unrated (never blocks or raises)."""
        if record.rated and record.status is MatchStatus.FINISHED and not record.rating_changes:
            self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Rate what is pending, then again when woken or every ``backfill_interval_s``; runs until cancelled."""
        task_status.started()
        retry_s = _RETRY_MIN_S
        while True:
            # A fresh event before each pass: a wake-up during the pass wakes the next one.
            wake = self._wake = anyio.Event()
            try:
                await self.rate_pending()
            except Exception as exc:  # a failure to rate must never take the server down: log, retry later
                self.health.failed(Component.RATINGS, f"cannot rate finished matches: {describe(exc)}")
                log.exception("could not rate finished matches; retrying in %.0f s", retry_s)
                await anyio.sleep(retry_s)
                retry_s = min(2 * retry_s, _RETRY_MAX_S)
                continue
            self.health.recovered(Component.RATINGS)
            retry_s = _RETRY_MIN_S
            with anyio.move_on_after(self.backfill_interval_s):
                await wake.wait()

    async def rate_pending(self) -> int:
        """Rate every finished match left unrated, announcing each rated seat (on SQLite); returns
        how many matches were processed (those not rated, one agent in every seat, included)."""
        total = 0
        while True:
            batch = await self.storage.rate_finished(self.batch_matches)
            for match in batch:
                if self.is_announcing:
                    for frame in rating_frames(match):
                        self.hub.publish_lobby(frame)
                if match.changes:
                    log.info("match_id=%d rated late: %s", match.match_id, ", ".join(
                        f"{c.name} {c.before.rating:.1f} -> {c.after.rating:.1f}" for c in match.changes))
            total += len(batch)
            if len(batch) < self.batch_matches:
                return total
            await anyio.sleep(_BATCH_PAUSE_S)  # a backlog: let lobby sockets send this batch's frames first
