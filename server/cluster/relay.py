"""The relay: the matches other processes run, live on this process's hub (a front in a cluster).

Theory of operation
-------------------
In a cluster a match runs on a worker and its spectators sit on fronts. The worker's step
writer stores each batch of steps in one transaction that also notifies (``_pg_notify.py`` in
storage): the steps table is the replay log and the outbox, a notification only a wake-up. A
front holds one :class:`Relay`: one listening connection (``open_listener``) and, for each
match that a spectator of this front asked for (:meth:`Relay.follow`), a feed of the local hub,
opened by the relay as the match manager opens one for a match it runs. Spectators subscribe
to that feed like to any other; the relay is its only publisher.

One task does everything, in passes. A notification only records what it says (which matches
have new steps, which started or ended) and wakes the task; a pass then reads what is due, once
for this front however many spectators watch, in a few statements: the statuses of the matches
that may have ended, then the new steps of every followed match that has some (all in one
statement, each after the last step its feed has), and publishes them in step order, so ``seq``
runs on by one from each spectator's snapshot to ``end``. A match whose end is committed gets
its remaining steps first (a match's end commits after its steps, and the pass reads the
status before the steps), then ``end``, and its feed is closed. The lobby hears
``match_started`` and ``match_ended`` of the matches this process does not run: a match that
has a feed the relay did not open is the local manager's, which announces it itself (and whose
feed replaces the relay's, should this process take over a match the relay follows).

Rating changes follow the same way. A rated match is rated in the transaction that stores its
end, so once its end is committed its rating history is too: with the record of an ended match
the pass reads its changes and publishes ``match_ended``, then one ``rating_changed`` per rated
seat (``server/matches/lobby.py``), as the manager of the process that ran it does. A match
rated late by the backfill rater (finished unrated, by an older program) comes with a ``rated``
notice instead; the pass reads its changes then (a match of those not known ended yet is
checked first, so its end still goes out before them). A front announces a match's ratings
once: it remembers the last ``ANNOUNCED_MATCHES`` matches it announced, since a match rated by
the backfill right after its end may have its changes read with its end and then be notified
as rated too.

Nothing is lost with a notification. PostgreSQL drops those sent while a listener is
disconnected, and one may come late: after every (re)connection, and every
``poll_interval_s`` besides, a pass reads everything past what each feed has, checks every
followed match's status and compares the live matches with those it knows (the lobby's
backstop; the late ratings a ``rated`` notice lost while disconnected are not announced, the
leaderboard has them). The connection is watched: asyncpg reports one that the server closed, not one that
stopped answering, so each statement runs under ``timeout_s`` and, after ``ping_interval_s``
without one, a ``SELECT 1`` does; on any failure the connection is dropped and another opened,
after a back-off. A large catch-up is published a part at a time, with a pause for the
spectators' tasks between parts, so that none of them falls a whole queue behind at once.

A match run again from its seed (its worker was lost) starts its event log over under its next
attempt: the relay sees the attempt change along with the steps and closes the feed without
``end``; a spectator who comes back gets a fresh snapshot. A followed match keeps its feed (the
hub's window of frames) from the first demand until it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from protocol import codec
from protocol.errors import MatchNotFound, StorageError, describe_error
from protocol.messages import MatchStarted
from server.matches.documents import match_document, result_document
from server.matches.hub import Hub, MatchFeed
from server.matches.lobby import end_frames, rating_frames
from server.storage import Listener, MatchStatus, Notice, RatedMatch, open_listener

__all__ = ["ANNOUNCED_MATCHES", "FOLLOW_WAIT_S", "PING_INTERVAL_S", "POLL_INTERVAL_S", "TIMEOUT_S", "Relay"]

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_INTERVAL_S = 5.0  # a pass reads everything this often, whatever was notified (the backstop)
PING_INTERVAL_S = 2.0  # the connection is checked after this long without a statement
TIMEOUT_S = 10.0  # a statement or a ping that takes longer means the connection is dead
RECONNECT_MIN_S = 0.05  # the first back-off after losing the connection, doubled up to the max
RECONNECT_MAX_S = 5.0
FOLLOW_WAIT_S = 5.0  # follow() gives up after this long (the database cannot be reached)
READ_STEPS = 1000  # steps of one match read by one statement; the rest by the next ones
# Matches whose rating changes a relay remembers announcing: a late rating's notice follows the
# end it may have been read with within milliseconds, far fewer matches than this apart.
ANNOUNCED_MATCHES = 4096

_ENDED = (MatchStatus.FINISHED, MatchStatus.ABORTED)


@dataclass(slots=True)
class _Due:
    """What the next pass has to do, gathered from notifications (and the poll)."""

    steps: dict[int, int] = field(default_factory=dict)  # match id -> its newest step committed
    all_steps: bool = False
    started: set[int] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)  # matches whose status to check
    all_ended: bool = False
    rated: set[int] = field(default_factory=set)  # rated late, by the backfill
    scan: bool = False  # compare the live matches with those known

    @classmethod
    def everything(cls) -> _Due:
        return cls(all_steps=True, all_ended=True, scan=True)

    def add(self, notice: Notice) -> None:
        if notice.steps is None:
            self.all_steps = True
        else:
            for match_id, step in notice.steps.items():
                self.steps[match_id] = max(step, self.steps.get(match_id, -1))
        self.started.update(notice.started)
        if notice.ended is None:
            self.all_ended = True
        else:
            self.ended.update(notice.ended)
        self.rated.update(notice.rated)

    def is_empty(self) -> bool:
        return not (self.steps or self.all_steps or self.started or self.ended or self.all_ended or self.rated
                    or self.scan)


@dataclass(slots=True, eq=False)
class _Followed:
    """A match the relay follows: the feed it opened, the attempt its steps are of."""

    feed: MatchFeed
    attempt: int
    closing: ExitStack  # closes the feed and takes it off the hub
    is_stalled: bool = False  # a step is missing from storage: nothing more before the end


class Relay:
    """Publishes on ``hub`` the matches other processes run, read from the database at ``url``;
    see the module docstring. Run :meth:`run` in a task group; spectators call :meth:`follow`.

    ``worker``: the name this process runs matches under, if it runs any (role ``all``): a match
    claimed by that name is this process's own, whose feed its manager opens.
    """

    def __init__(
        self, hub: Hub, url: str, *, worker: str | None = None, poll_interval_s: float = POLL_INTERVAL_S,
        ping_interval_s: float = PING_INTERVAL_S, timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.hub = hub
        self.url = url
        self.worker = worker
        self.poll_interval_s = poll_interval_s
        self.ping_interval_s = ping_interval_s
        self.timeout_s = timeout_s
        self.is_connected = False
        self.reconnects = 0  # connections lost (and opened again) since start
        self.backend_pid: int | None = None  # the server process of the listening connection
        self._followed: dict[int, _Followed] = {}
        # Matches of other processes known live: the lobby hears their end (only theirs, so that
        # nothing the manager announces is announced twice).
        self._live: set[int] = set()
        self._requests: dict[int, anyio.Event] = {}  # follow() waiting for a pass to open these
        self._announced: dict[int, None] = {}  # the last matches whose ratings went out, oldest first
        self._due = _Due.everything()
        self._is_lost = False
        self._is_first_scan = True
        self._wake = anyio.Event()

    @property
    def followed(self) -> list[int]:
        """The matches whose feeds this relay publishes."""
        return list(self._followed)

    async def follow(self, match_id: int) -> MatchFeed | None:
        """The feed of a match another process runs, opened on first demand with its recent steps;
        ``None`` if the match has ended or does not exist (or the database was not reached in
        ``FOLLOW_WAIT_S``)."""
        followed = self._followed.get(match_id)
        if followed is None:
            event = self._requests.setdefault(match_id, anyio.Event())
            self._wake.set()
            with anyio.move_on_after(FOLLOW_WAIT_S):
                await event.wait()
            followed = self._followed.get(match_id)
        return followed.feed if followed is not None else None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Relay until cancelled; started once connected and caught up. On exit the feeds it
        opened are closed (their spectators' streams end).

        Raises:
            StorageError: the first connection failed (later ones are tried again until one works).
        """
        delay = RECONNECT_MIN_S
        is_started = False
        try:
            while True:
                try:
                    async with open_listener(self.url, self._on_notice, self._on_lost) as listener:
                        self._is_lost = False
                        self.backend_pid = listener.backend_pid
                        self._due = _Due.everything()  # whatever was notified while disconnected
                        await self._pass(listener)
                        self.is_connected = True
                        if not is_started:
                            task_status.started()
                            is_started = True
                        delay = RECONNECT_MIN_S
                        await self._serve(listener)
                except (StorageError, TimeoutError) as exc:
                    if not is_started:
                        raise
                    log.warning("relay: the listening connection failed (%s); connecting again in %.2f s",
                                describe_error(exc), delay)
                self.is_connected = False
                self.reconnects += 1
                await anyio.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX_S)
        finally:
            self.is_connected = False
            for followed in self._followed.values():
                followed.closing.close()
            self._followed.clear()
            for event in self._requests.values():
                event.set()

    # -- notifications (called by asyncpg in the event loop) ------------------------------------

    def _on_notice(self, notice: Notice) -> None:
        self._due.add(notice)
        self._wake.set()

    def _on_lost(self) -> None:
        self._is_lost = True
        self._wake.set()

    # -- the task --------------------------------------------------------------------------------

    async def _serve(self, listener: Listener) -> None:
        """Passes as notifications, follow requests and the poll ask, pings between; returns never.

        Raises:
            StorageError, TimeoutError: the connection failed.
        """
        now = anyio.current_time()
        next_poll, last_io = now + self.poll_interval_s, now
        while True:
            if self._is_lost or listener.is_closed():
                raise StorageError("the server closed the listening connection")
            now = anyio.current_time()
            if now >= next_poll:
                self._due.all_steps = self._due.all_ended = self._due.scan = True
                next_poll = now + self.poll_interval_s
            if self._requests or not self._due.is_empty():
                await self._pass(listener)
                last_io = anyio.current_time()
                continue
            if now - last_io >= self.ping_interval_s:
                await self._bounded(listener.ping())
                last_io = anyio.current_time()
                continue
            wake = self._wake
            with anyio.move_on_after(min(next_poll, last_io + self.ping_interval_s) - now):
                await wake.wait()
            if wake is self._wake:
                self._wake = anyio.Event()

    async def _bounded(self, call: Awaitable[T]) -> T:
        with anyio.fail_after(self.timeout_s):
            return await call

    async def _pass(self, listener: Listener) -> None:
        """Do what is due: open requested feeds, announce starts, read statuses, then steps, then ends."""
        due, self._due = self._due, _Due()
        for match_id, was in list(self._followed.items()):
            if self.hub.feed(match_id) is not was.feed:  # this process runs it now: its manager's feed
                self._drop(match_id, "this process runs it now")
        for match_id in list(self._requests):
            event = self._requests.pop(match_id)
            try:
                await self._open(listener, match_id)
            finally:
                event.set()
        if due.scan:
            live = await self._bounded(listener.live_ids())
            if self._is_first_scan:  # nobody listens to the lobby yet: no news of what runs already
                self._live = {m for m in live if not self._is_local(m)}
                self._is_first_scan = False
            due.started |= live - self._live
            due.ended |= self._live - live
        await self._announce_starts(listener, due.started)
        known = set(self._followed) | self._live
        due.ended |= due.rated  # a match rated late whose end is not out yet: its end first
        ended = await self._ended(listener, known if due.all_ended else due.ended & known)
        if due.all_steps:
            read = set(self._followed)
        else:
            read = {m for m, step in due.steps.items() if m in self._followed and step >= self._followed[m].feed.seq}
            read |= due.started & set(self._followed)  # run again from its seed? the steps tell
        await self._read_steps(listener, read | (set(ended) & set(self._followed)))
        if ended:
            records = await self._bounded(listener.matches(ended))
            rated = await self._bounded(listener.rating_changes(
                m for m, record in records.items() if record.rated and record.status is MatchStatus.FINISHED))
            # In the order they ended, which is the order they were rated in.
            for match_id, record in sorted(records.items(), key=lambda item: (item[1].finished_at or 0.0, item[0])):
                document = match_document(record)
                followed = self._followed.pop(match_id, None)
                if followed is not None:
                    followed.feed.publish_end(result_document(record), document)
                    followed.closing.close()
                self._live.discard(match_id)
                if self._is_ours(record.worker):
                    continue  # taken over and ended by this process: its manager announced it
                changes = self._unannounced(rated.get(match_id))
                for frame in end_frames(document, changes.changes if changes is not None else ()):
                    self.hub.publish_lobby(frame)
        late = sorted(due.rated - self._announced.keys())
        if late:
            rated = await self._bounded(listener.rating_changes(late))
            for match_id in late:
                changes = self._unannounced(rated.get(match_id))
                if changes is not None:
                    for frame in rating_frames(changes):
                        self.hub.publish_lobby(frame)

    def _unannounced(self, rated: RatedMatch | None) -> RatedMatch | None:
        """``rated`` unless its changes went out already (or it has none); remembered as out."""
        if rated is None or not rated.changes or rated.match_id in self._announced:
            return None
        self._announced[rated.match_id] = None
        if len(self._announced) > ANNOUNCED_MATCHES:
            del self._announced[next(iter(self._announced))]
        return rated

    def _is_local(self, match_id: int) -> bool:
        """Whether this process runs the match: it has a feed the relay did not open."""
        return self.hub.feed(match_id) is not None and match_id not in self._followed

    def _is_ours(self, worker: str | None) -> bool:
        """Whether a match claimed by ``worker`` is this process's (its feed opens, or has closed)."""
        return worker is not None and worker == self.worker

    async def _open(self, listener: Listener, match_id: int) -> None:
        """Follow a match: open its feed with its recent steps (unless it has ended or is local)."""
        if match_id in self._followed or self._is_local(match_id):
            return
        record = (await self._bounded(listener.matches([match_id]))).get(match_id)
        if record is None or record.status in _ENDED or self._is_local(match_id) or self._is_ours(record.worker):
            return
        # The tail and the attempt it is of are one statement; anything after it, the passes read.
        try:
            attempt, tail = await self._bounded(listener.last_steps(match_id, max(1, self.hub.snapshot_events)))
        except MatchNotFound:
            return
        closing = ExitStack()
        feed = closing.enter_context(self.hub.open_feed(match_id, match_document(record)))
        followed = self._followed[match_id] = _Followed(feed, attempt, closing)
        if tail:
            feed.start_at(tail[0][0])
            await self._publish(match_id, followed, tail)
        # Not marked live here: its start is the lobby's news, announced by _announce_starts (from
        # its notice or the next scan) whether or not a spectator here asked for it first.
        log.info("relay: following match_id=%s from step %d", match_id, feed.seq)

    async def _announce_starts(self, listener: Listener, started: set[int]) -> None:
        """``match_started`` for the matches of other processes that went live (once each); one
        that has ended already by then has only its end announced."""
        new = {m for m in started if m not in self._live and not self._is_local(m)}
        if not new:
            return
        records = await self._bounded(listener.matches(new))
        for match_id, record in sorted(records.items()):
            if self._is_ours(record.worker):
                continue  # this process's own
            if record.status in _ENDED:  # it ended meanwhile: known, so that its end (and ratings) go out
                self._live.add(match_id)
                continue
            if record.status is not MatchStatus.LIVE:
                continue  # claimed again, pending: it starts again
            self._live.add(match_id)
            document = match_document(record)
            followed = self._followed.get(match_id)
            if followed is not None:
                followed.feed.match = document
            self.hub.publish_lobby(MatchStarted(match=document))

    async def _ended(self, listener: Listener, candidates: set[int]) -> list[int]:
        """Of these matches, those whose end is committed."""
        if not candidates:
            return []
        statuses = await self._bounded(listener.statuses(candidates))
        return sorted(m for m, status in statuses.items() if status in _ENDED)

    async def _read_steps(self, listener: Listener, match_ids: set[int]) -> None:
        """Read and publish the new steps of these followed matches, all of them in one statement
        (and more statements for those that have more than ``READ_STEPS``)."""
        while match_ids:
            after = {m: self._followed[m].feed.seq - 1 for m in sorted(match_ids)
                     if m in self._followed and not self._followed[m].is_stalled}
            attempts, rows = await self._bounded(listener.steps_after(after, READ_STEPS))
            by_match: dict[int, list[tuple[int, str]]] = {}
            for match_id, step, text in rows:
                by_match.setdefault(match_id, []).append((step, text))
            match_ids = set()
            for match_id in after:
                followed = self._followed.get(match_id)
                if followed is None:
                    continue
                attempt = attempts.get(match_id, followed.attempt)
                if attempt != followed.attempt:
                    if followed.feed.seq:  # run again from its seed: what the feed has is of another run
                        self._drop(match_id, f"it is run again (attempt {attempt})")
                        continue
                    followed.attempt = attempt  # first claimed after the feed opened: nothing to undo
                steps = by_match.get(match_id, [])
                await self._publish(match_id, followed, steps)
                if len(steps) == READ_STEPS:
                    match_ids.add(match_id)

    async def _publish(self, match_id: int, followed: _Followed, steps: list[tuple[int, str]]) -> None:
        """Publish stored steps on the feed, in order from its next one, a part at a time."""
        feed = followed.feed
        texts: list[str] = []
        for step, text in steps:
            if step < feed.seq + len(texts):
                continue
            if step > feed.seq + len(texts):  # never, from one worker's writer: it commits in order
                log.error("relay: match_id=%s lacks step %d in storage; publishing nothing more before its end",
                          match_id, feed.seq + len(texts))
                followed.is_stalled = True
                break
            texts.append(text)
        part = max(1, self.hub.queue_frames // 2)
        for start in range(0, len(texts), part):
            if start:
                await anyio.lowlevel.checkpoint()  # the spectators' tasks take the last part before more comes
            chunk = texts[start:start + part]
            feed.publish_stored(chunk, codec.decode_json(chunk[-1], max_bytes=len(chunk[-1]))["state"])

    def _drop(self, match_id: int, why: str) -> None:
        followed = self._followed.pop(match_id)
        followed.closing.close()
        log.info("relay: stopped following match_id=%s: %s", match_id, why)
