"""The broadcast hub: live fan-out of matches and of the lobby to spectators.

Theory of operation. Each live match has a ``MatchFeed``. The recorder publishes every step
to it once: the ``event`` frame is encoded a single time and the same text is queued for
every subscriber. Each subscriber has a bounded queue; a subscriber whose queue is full has
fallen behind and is dropped (its stream is closed and its socket handler closes the socket
with a close code), so a slow spectator never slows the match. A new subscriber gets a
``snapshot`` built from the frames so far (joined without re-encoding), then every later
frame, so ``seq`` runs on by one without gaps. The feed keeps its frames until the match has
ended and been stored; after that, spectators are served from storage.

A seat owner's debug view (``subscribe_seat``) is a subscriber like any other that also gets
that seat's ``seat_debug`` frames (its log lines and timing, published after each step), and
those so far when it joins. They never reach other subscribers and take no public ``seq``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from protocol import codec
from protocol.messages import End, Event, LobbyMsg, SeatDebug, StepRecord

__all__ = ["Hub", "MatchFeed", "Subscription", "snapshot_frame"]

log = logging.getLogger(__name__)

JSON = Any
DEFAULT_QUEUE_FRAMES = 256


@dataclass(slots=True)
class Subscription:
    """One spectator's queue. ``dropped`` is set when it fell behind and was cut off."""

    send: MemoryObjectSendStream[str]
    receive: MemoryObjectReceiveStream[str]
    dropped: bool = False
    is_full: bool = False  # dropped because its queue overflowed (not because it left)
    seat: int | None = None  # an owner's debug view of this seat also gets its seat_debug frames

    def offer(self, frame: str) -> bool:
        """Queue a frame without waiting; a full queue drops the subscriber."""
        if self.dropped:
            return False
        try:
            self.send.send_nowait(frame)
        except anyio.WouldBlock:
            self.dropped = self.is_full = True
            self.send.close()
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # The spectator's handler is gone (it left); close our end too, or it leaks.
            self.dropped = True
            self.send.close()
            return False
        return True


def _new_subscription(queue_frames: int) -> Subscription:
    send, receive = anyio.create_memory_object_stream[str](queue_frames)
    return Subscription(send, receive)


def snapshot_frame(seq: int, match: dict[str, JSON], state: JSON, events: list[str]) -> str:
    """A ``snapshot`` frame around already-encoded event frames."""
    head = codec.encode({"type": "snapshot", "seq": seq, "match": match, "state": state}).decode()
    return f'{head[:-1]},"events":[{",".join(events)}]}}'


@dataclass(slots=True)
class MatchFeed:
    """Frames of one live match and the spectators following it."""

    match_id: int
    match: dict[str, JSON]
    queue_frames: int
    events: list[str] = field(default_factory=list)
    state: JSON = None
    end: str | None = None
    subscribers: list[Subscription] = field(default_factory=list)
    debug: dict[int, list[str]] = field(default_factory=dict)  # seat_debug frames so far, by seat

    @property
    def seq(self) -> int:
        return len(self.events)

    def publish_step(self, record: StepRecord) -> None:
        """Encode a step once and offer it to every subscriber."""
        event = Event(
            seq=self.seq + 1, step=record.step, actions=record.actions, statuses=record.statuses,
            rewards=record.rewards, state=record.state, timing=record.timing,
        )
        frame = codec.encode(event).decode()
        self.events.append(frame)
        self.state = record.state
        self._fan_out(frame)

    def publish_seat_debug(self, msg: SeatDebug) -> None:
        """Keep a seat's debug frame and offer it to that seat's owner views only."""
        frame = codec.encode(msg).decode()
        self.debug.setdefault(msg.seat, []).append(frame)
        kept = []
        for sub in self.subscribers:
            if sub.seat != msg.seat or sub.offer(frame):
                kept.append(sub)
        self.subscribers = kept

    def publish_end(self, result: dict[str, JSON], match: dict[str, JSON]) -> None:
        """Send ``end`` and close every subscriber's stream."""
        self.match = match
        self.end = codec.encode(End(seq=self.seq + 1, result=result)).decode()
        self._fan_out(self.end)
        for sub in self.subscribers:
            sub.send.close()
        self.subscribers.clear()

    def _fan_out(self, frame: str) -> None:
        kept = []
        for sub in self.subscribers:
            if sub.offer(frame):
                kept.append(sub)
            elif sub.is_full:
                log.info("match %s: dropped a spectator that fell behind", self.match_id)
        self.subscribers = kept

    def subscribe(self) -> tuple[str, Subscription]:
        """The snapshot so far and a queue of every frame after it."""
        snapshot, _, sub = self.subscribe_seat(None)
        return snapshot, sub

    def subscribe_seat(self, seat: int | None) -> tuple[str, list[str], Subscription]:
        """For an owner's view of ``seat``: the snapshot, that seat's ``seat_debug`` frames so
        far, and a queue of every later frame, public or of that seat."""
        sub = _new_subscription(self.queue_frames)
        sub.seat = seat
        snapshot = snapshot_frame(self.seq, self.match, self.state, self.events)
        if self.end is not None:
            sub.offer(self.end)
            sub.send.close()
        else:
            self.subscribers.append(sub)
        return snapshot, list(self.debug.get(seat, ())) if seat is not None else [], sub


class Hub:
    """All live match feeds and the lobby, in one process.

    Several server processes would share this through a broker (Redis pub/sub) behind the
    same three calls: ``open_feed``, ``subscribe`` and ``publish_lobby``.
    """

    def __init__(self, queue_frames: int = DEFAULT_QUEUE_FRAMES) -> None:
        self.queue_frames = queue_frames
        self.feeds: dict[int, MatchFeed] = {}
        self.lobby: list[Subscription] = []

    @contextmanager
    def open_feed(self, match_id: int, match: dict[str, JSON]) -> Iterator[MatchFeed]:
        """A feed for a live match, removed when the block exits (after the match is stored)."""
        feed = MatchFeed(match_id, match, self.queue_frames)
        self.feeds[match_id] = feed
        try:
            yield feed
        finally:
            for sub in feed.subscribers:
                sub.send.close()
            del self.feeds[match_id]

    def feed(self, match_id: int) -> MatchFeed | None:
        return self.feeds.get(match_id)

    def subscribe_lobby(self) -> Subscription:
        sub = _new_subscription(self.queue_frames)
        self.lobby.append(sub)
        return sub

    def unsubscribe_lobby(self, sub: Subscription) -> None:
        if sub in self.lobby:
            self.lobby.remove(sub)
        sub.send.close()

    def publish_lobby(self, msg: LobbyMsg) -> None:
        frame = codec.encode(msg).decode()
        self.lobby = [sub for sub in self.lobby if sub.offer(frame)]
