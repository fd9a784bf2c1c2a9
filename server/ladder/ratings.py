"""Rating finished matches and announcing the new ratings on the lobby.

Theory of operation
-------------------
One task, started in the app's task group, does all the rating. The match manager calls
``Rater.match_finished`` (its ``on_finished`` callback) once it has published a finished
match's ``match_ended``; that only wakes the task, so it can neither block nor fail the
match. The task asks storage to rate every finished ladder match (``MatchRecord.rated``; the
scheduler's matches between distinct agents, see ``server/ladder/rules.py``) not rated yet, a batch at a time,
and publishes one ``rating_changed`` per rated seat, so they follow that match's
``match_ended``. Storage marks a match rated in the same transaction that stores its new
ratings (``server/storage/_ratings.py``): a match is rated exactly once whatever happens, and
the task's first pass at start-up rates what a crash left unrated (or a database from before
ratings). A failure is logged, recorded for ``GET /api/health`` (``server/health.py``)
and retried after a pause, never fatal to the server; the next pass that succeeds clears it.
The rules themselves (model, displayed number, who counts) are in ``server/ladder/rules.py``.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from protocol.messages import RatingChanged
from server.health import Component, Health, describe
from server.matches.hub import Hub
from server.storage import MatchRecord, RatedMatch, RatingChange, Storage

__all__ = ["Rater", "rating_frame"]

log = logging.getLogger(__name__)

# Small batches: a batch's frames reach the lobby at once, and a lobby queue holds 256 frames.
_BATCH_MATCHES = 25
_BATCH_PAUSE_S = 0.05
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 60.0


def rating_frame(match: RatedMatch, change: RatingChange) -> RatingChanged:
    """The lobby frame announcing one seat's new rating."""
    after = change.after
    return RatingChanged(
        agent_id=change.agent_id, game=after.game, rating=after.rating, previous=change.before.rating,
        name=change.name, owner=change.owner, match_id=match.match_id, mu=after.mu, sigma=after.sigma,
        rated_matches=after.matches,
    )


class Rater:
    """Rates finished matches in the background and announces each new rating."""

    def __init__(
        self, storage: Storage, hub: Hub, *, batch_matches: int = _BATCH_MATCHES, health: Health | None = None
    ) -> None:
        self.storage = storage
        self.health = health if health is not None else Health()
        self.hub = hub
        self.batch_matches = batch_matches
        self._wake = anyio.Event()

    def match_finished(self, record: MatchRecord) -> None:
        """The manager's ``on_finished`` callback: wake the rating task (never blocks or raises)."""
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Rate what is pending, then again each time a match finishes; runs until cancelled."""
        task_status.started()
        retry_s = _RETRY_MIN_S
        while True:
            # A fresh event before each pass: a match finishing during the pass wakes the next one.
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
            await wake.wait()

    async def rate_pending(self) -> int:
        """Rate every finished match not rated yet, announcing each rated seat; returns how many
        matches were processed (those not rated, one agent in every seat, included)."""
        total = 0
        while True:
            batch = await self.storage.rate_finished(self.batch_matches)
            for match in batch:
                for change in match.changes:
                    self.hub.publish_lobby(rating_frame(match, change))
                if match.changes:
                    log.debug("match %d rated: %s", match.match_id, ", ".join(
                        f"{c.name} {c.before.rating:.1f} -> {c.after.rating:.1f}" for c in match.changes))
            total += len(batch)
            if len(batch) < self.batch_matches:
                return total
            await anyio.sleep(_BATCH_PAUSE_S)  # a backlog: let lobby sockets send this batch's frames first
