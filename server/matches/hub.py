"""The broadcast hub: live fan-out of matches and of the lobby to spectators.

Theory of operation. Each live match has a ``MatchFeed``: a window of its latest ``event``
frames, each encoded once, and its ``end`` frame. Publishing appends to the window (the
oldest frame falls out of it) and wakes the spectators waiting for more, and that is all it
does: its cost does not grow with the number of spectators, so watching never slows the
match. Each spectator (a ``Subscription``) keeps its place in the log by position; its
socket's task, once woken, takes every frame it has not sent yet and sends them (one wake-up
sends them all), the same text objects for every spectator. A new spectator gets a
``snapshot`` of the current state with the most recent events (at most ``snapshot_events``
of them and about ``snapshot_bytes``, joined without re-encoding) and goes on from there, so
``seq`` runs on by one without gaps; older events are in storage, for whoever asks
(``GET /api/matches/{id}/events``). The snapshot belongs to the subscription until it is
sent, and no longer: a spectator that stays for hours holds no copy of what it joined with.

Bounded memory. A match may run for a very long time (hundreds of thousands of steps), so the
feed keeps only the last ``window_events`` frames. That is enough: a spectator more than
``queue_frames`` behind is dropped anyway, and a snapshot takes at most ``snapshot_events``,
so the window is at least both. The feed keeps its window until the match has ended and
been stored; after that, spectators are served from storage.

Slow spectators. A spectator more than ``queue_frames`` events behind the head is dropped
(``is_dropped``; its socket is closed with a close code): it notices itself when it wakes
up. One whose socket takes no more frames is stuck in a send and would never wake up, so
while it sends it is on the log's ``sending`` list (almost always empty: a socket that takes
frames takes a whole batch without waiting), and each publish cuts off those there that have
fallen too far behind. After the end, a send gets ``SEND_TIMEOUT_S``. There is no timer per
send: with a thousand spectators, arming one for each cost twice the rest of the fan-out.

A step reaches the hub already encoded (an ``EncodedStep``: the recorder encodes it once for
storage and the hub); its ``event`` frame is that JSON text with ``seq`` spliced in front and
the tag behind (:func:`event_frame`), byte for byte what encoding the ``Event`` would give.

A seat owner's debug view (``subscribe_seat``) is a spectator like any other that also gets
that seat's ``seat_debug`` frames (its log lines and timing, published after each step), each
right after the event it follows, and the recent ones when it joins (a window per seat, like
the events'). They never reach other spectators, take no public ``seq``, and do not wake them.

The lobby is a log of its own, of which only the last ``queue_frames`` frames are kept: a
lobby spectator further behind is dropped anyway.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Generic, TypeVar

import anyio

from protocol import codec
from protocol.messages import JSON, End, Event, LobbyMsg, SeatDebug, StepRecord
from server.storage import EncodedStep

__all__ = [
    "DEFAULT_QUEUE_FRAMES",
    "DEFAULT_SNAPSHOT_BYTES",
    "DEFAULT_SNAPSHOT_EVENTS",
    "DEFAULT_WINDOW_EVENTS",
    "SEND_TIMEOUT_S",
    "Hub",
    "LobbySubscription",
    "MatchFeed",
    "Subscription",
    "event_frame",
    "recent_frames",
    "snapshot_frame",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
DEFAULT_QUEUE_FRAMES = 256
# A snapshot carries this many recent events at most (a board drawing its last moves needs a
# few dozen; a long rps match's whole history would be megabytes), and about this many bytes.
DEFAULT_SNAPSHOT_EVENTS = 256
DEFAULT_SNAPSHOT_BYTES = 1 << 20
DEFAULT_WINDOW_EVENTS = 512  # event frames a live feed keeps in memory (about 0.4 KiB each for rps)
SEND_TIMEOUT_S = 5.0  # after the end, a socket that cannot take a batch of frames in this long is dropped

# event_frame splices a stored step into an ``Event``: that holds only while an Event is a
# StepRecord with ``seq`` before and two fixed fields after (orjson writes fields in order).
_EVENT_FIELDS = {f.name: f.default for f in dataclasses.fields(Event)}
if list(_EVENT_FIELDS) != ["seq", *(f.name for f in dataclasses.fields(StepRecord)), "kind", "type"]:
    raise ImportError("protocol.messages.Event is no longer StepRecord plus seq, kind and type: fix event_frame")
_EVENT_TAIL = codec.encode({"kind": _EVENT_FIELDS["kind"], "type": _EVENT_FIELDS["type"]}).decode()[1:]


def event_frame(seq: int, step: EncodedStep | str) -> str:
    """The ``event`` frame of a step, around its encoded text (equal to encoding the ``Event``).

    ``step`` is an ``EncodedStep`` or the stored text of one (a ``StepRecord`` encoded).
    """
    text = step if isinstance(step, str) else step.text
    return f'{{"seq":{seq},{text[1:-1]},{_EVENT_TAIL}'  # {"seq":N, the step's fields, "kind":..,"type":..}


def snapshot_frame(seq: int, match: dict[str, JSON], state: JSON, events: Iterable[str]) -> str:
    """A ``snapshot`` frame around already-encoded event frames."""
    head = codec.encode({"type": "snapshot", "seq": seq, "match": match, "state": state}).decode()
    return f'{head[:-1]},"events":[{",".join(events)}]}}'


def recent_frames(newest_first: Iterable[str], max_frames: int, max_bytes: int) -> list[str]:
    """The most recent frames a snapshot carries, oldest first: at most ``max_frames``, and no
    more than ``max_bytes`` of them, except that the newest one is always there (however large)."""
    frames: list[str] = []
    size = 0
    for frame in islice(newest_first, max_frames):
        size += len(frame) if frame.isascii() else len(frame.encode())  # bytes, as sent
        if frames and size > max_bytes:
            break
        frames.append(frame)
    frames.reverse()
    return frames


class _Window(Generic[_T]):
    """The last ``capacity`` items of an append-only log, addressed by their position in the
    whole log (the first item ever appended is at 0). Appending is O(1); reading the last n
    items is O(n)."""

    __slots__ = ("_items", "total")

    def __init__(self, capacity: int) -> None:
        self._items: deque[_T] = deque(maxlen=max(1, capacity))
        self.total = 0  # items appended so far

    def append(self, item: _T) -> None:
        self._items.append(item)
        self.total += 1

    @property
    def first(self) -> int:
        """Position of the oldest item still kept."""
        return self.total - len(self._items)

    def since(self, position: int) -> list[_T]:
        """The items from ``position`` on (from the oldest kept, if that one is gone), in order."""
        count = self.total - max(position, self.first)
        if count <= 0:
            return []
        if count == len(self._items):
            return list(self._items)
        return list(islice(reversed(self._items), count))[::-1]

    def newest_first(self) -> Iterator[_T]:
        return reversed(self._items)

    def __getitem__(self, position: int) -> _T:
        if not self.first <= position < self.total:
            raise IndexError(f"position {position} is outside the window {self.first}..{self.total - 1}")
        return self._items[position - self.first]

    def __len__(self) -> int:
        return len(self._items)


class _Wakeup:
    """One-shot wake-ups: ``wait`` until the next ``notify``. An event is made only when needed."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def event(self) -> anyio.Event:
        """The event the next ``notify`` sets; take it before checking for news, then wait on it."""
        if self._event is None:
            self._event = anyio.Event()
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()


class _Reader:
    """A spectator's place in a log of frames and its stream loop (match feeds and the lobby).

    Subclasses say how far behind the spectator is (``_lag``), what comes next (``receive``)
    and whether the log has ended (``_is_final``).
    """

    def __init__(self, sent: int, sending: set[_Reader], queue_frames: int, first: list[str] | None = None) -> None:
        # Frames to send before the log's (a snapshot): handed over to the stream, which lets go
        # of them once sent, so a spectator holds no copy of what it joined with.
        self.first = first if first is not None else []
        self.sent = sent  # frames of the log taken to send so far
        self.is_dropped = False  # fell more than queue_frames behind and was cut off
        self.is_done = False  # its stream is over: end taken, log closed or dropped
        self._sending = sending  # the log's spectators in the middle of a send
        self._queue_frames = queue_frames
        self._scope: anyio.CancelScope | None = None

    async def receive(self) -> list[str]:
        raise NotImplementedError

    def _lag(self) -> int:
        raise NotImplementedError

    def _is_final(self) -> bool:
        return False

    async def stream(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send ``first``, then every frame of the log as it comes, until the end (or until cut off).

        Raises:
            Whatever ``send`` raises (the spectator left).
        """
        try:
            with anyio.CancelScope() as self._scope:
                frames, self.first = self.first, []
                while True:
                    if self._is_final():
                        self.arm_timeout()
                    self._sending.add(self)
                    try:
                        for frame in frames:
                            await send(frame)
                    finally:
                        self._sending.discard(self)
                    frames = await self.receive()
                    if not frames:
                        break
            if self._scope.cancelled_caught and not self.is_dropped:  # timed out after the end
                self._drop()
        finally:
            self._scope = None

    def arm_timeout(self) -> None:
        """From now on, a send that cannot finish in ``SEND_TIMEOUT_S`` drops this spectator."""
        if self._scope is not None and self._scope.deadline == math.inf:
            self._scope.deadline = anyio.current_time() + SEND_TIMEOUT_S

    def check_stuck(self) -> None:
        """Called by the publisher for a spectator in the middle of a send: cut it off if it is
        too far behind (its socket takes no more frames)."""
        if self._lag() > self._queue_frames and not self.is_dropped:
            self._drop()
            if self._scope is not None:
                self._scope.cancel()

    def _drop(self) -> None:
        self.is_dropped = self.is_done = True
        log.info("%s: dropped a spectator that fell behind", self)


def _cut_off_stuck(sending: set[_Reader]) -> None:
    for reader in list(sending):
        reader.check_stuck()


@dataclass(slots=True, eq=False)
class MatchFeed:
    """Frames of one live match (a window of the latest); its spectators read them by position."""

    match_id: int
    match: dict[str, JSON]
    queue_frames: int  # a spectator this many events behind the head is dropped
    window_events: int = DEFAULT_WINDOW_EVENTS  # event frames kept (raised to the two bounds below)
    snapshot_events: int = DEFAULT_SNAPSHOT_EVENTS  # recent events a snapshot carries, at most
    snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES  # and about this many bytes of them
    state: JSON = None
    end: str | None = None
    is_closed: bool = False  # no frame will follow: the end is out, or the feed was removed
    sending: set[_Reader] = field(default_factory=set)  # spectators in the middle of a send
    # the event frames: the one at position i has seq i + 1
    events: _Window[str] = field(init=False)
    # seat -> its seat_debug frames, each with the seq of the event it follows
    debug: dict[int, _Window[tuple[int, str]]] = field(init=False, default_factory=dict)
    _public: _Wakeup = field(default_factory=_Wakeup)
    _seats: dict[int, _Wakeup] = field(default_factory=dict)  # owners' views, by seat
    # The snapshot of the current step (seq, the match document it shows, its text, its event
    # count): spectators who join between two steps share it (a crowd arriving at once would
    # otherwise build, and hold until sent, one each); dropped at the next step.
    _snapshot: tuple[int, dict[str, JSON], str, int] | None = None

    def __post_init__(self) -> None:
        # Every spectator that is not dropped, and every snapshot, reads inside the window.
        self.snapshot_events = max(0, self.snapshot_events)
        self.window_events = max(self.window_events, self.queue_frames, self.snapshot_events)
        self.events = _Window(self.window_events)

    @property
    def seq(self) -> int:
        return self.events.total

    def publish_step(self, step: EncodedStep | StepRecord) -> None:
        """Append a step's ``event`` frame (around its encoded text) and wake the spectators."""
        encoded = step if isinstance(step, EncodedStep) else EncodedStep.of(step)
        self.events.append(event_frame(self.seq + 1, encoded))
        self.state = encoded.record.state
        self._snapshot = None
        self._notify_all()
        if self.sending:
            _cut_off_stuck(self.sending)

    def start_at(self, seq: int) -> None:
        """Begin an empty feed's log after ``seq`` events (a relay opening the feed of a match
        played elsewhere, in its middle): the next event published gets ``seq + 1``.

        Raises:
            ValueError: the feed has events already.
        """
        if self.events.total:
            raise ValueError(f"match {self.match_id}: the feed has {self.events.total} events already")
        self.events.total = seq

    def publish_stored(self, texts: Sequence[str], state: JSON) -> None:
        """Append the ``event`` frames of steps another process stored (their stored texts, in
        order, the first being the next step) with the state after the last; wake spectators once."""
        if not texts:
            return
        for text in texts:
            self.events.append(event_frame(self.seq + 1, text))
        self.state = state
        self._snapshot = None
        self._notify_all()
        if self.sending:
            _cut_off_stuck(self.sending)

    def publish_seat_debug(self, msg: SeatDebug) -> None:
        """Keep a seat's debug frame for that seat's owner views (and wake only those)."""
        window = self.debug.get(msg.seat)
        if window is None:
            # one frame per step at most (and one after the match): the events' window holds
            # everything an owner's view that is not dropped still has to send
            window = self.debug[msg.seat] = _Window(self.window_events + 2)
        window.append((msg.seq, codec.encode(msg).decode()))
        wakeup = self._seats.get(msg.seat)
        if wakeup is not None:
            wakeup.notify()

    def publish_end(self, result: dict[str, JSON], match: dict[str, JSON]) -> None:
        """Publish ``end``: every spectator gets it after the last event, and then its stream ends."""
        self.match = match
        self.end = codec.encode(End(seq=self.seq + 1, result=result)).decode()
        self.close()

    def close(self) -> None:
        """No more frames: spectators get what is published so far, then their streams end."""
        if self.is_closed:
            return
        self.is_closed = True
        self._snapshot = None
        self._notify_all()
        for reader in self.sending:  # stuck in a send: no publish will come to cut them off
            reader.arm_timeout()

    def subscribe(self) -> Subscription:
        """A subscription whose stream sends the snapshot, then every frame after it."""
        return self.subscribe_seat(None)

    def subscribe_seat(self, seat: int | None) -> Subscription:
        """For an owner's view of ``seat``: a subscription whose stream sends the snapshot, that
        seat's recent ``seat_debug`` frames, then every later frame, public or of that seat."""
        snapshot, events = self._current_snapshot()
        first = [snapshot]
        debug_sent = 0
        if seat is not None:
            window = self.debug.get(seat)
            if window is not None:
                # the debug frames of the events the snapshot has (all of them when it has all)
                oldest_seq = self.seq - events + 1 if events < self.seq else 0
                first += [frame for seq, frame in window.since(0) if seq >= oldest_seq]
                debug_sent = window.total
        return Subscription(self, seat, self.seq, debug_sent, first)

    def _current_snapshot(self) -> tuple[str, int]:
        """The snapshot of the current step (shared by whoever joins before the next), and how
        many events it carries."""
        cached = self._snapshot
        if cached is not None and cached[0] == self.seq and cached[1] is self.match:
            return cached[2], cached[3]
        events = recent_frames(self.events.newest_first(), self.snapshot_events, self.snapshot_bytes)
        snapshot = snapshot_frame(self.seq, self.match, self.state, events)
        if not self.is_closed:
            self._snapshot = (self.seq, self.match, snapshot, len(events))
        return snapshot, len(events)

    def _wakeup(self, seat: int | None) -> _Wakeup:
        if seat is None:
            return self._public
        wakeup = self._seats.get(seat)
        if wakeup is None:
            wakeup = self._seats[seat] = _Wakeup()
        return wakeup

    def _notify_all(self) -> None:
        self._public.notify()
        for wakeup in self._seats.values():
            wakeup.notify()


class Subscription(_Reader):
    """One spectator's place in a match feed: the event frames (and, on an owner's view of a
    seat, that seat's debug frames) taken so far."""

    def __init__(
        self, feed: MatchFeed, seat: int | None, sent: int, debug_sent: int = 0, first: list[str] | None = None
    ) -> None:
        super().__init__(sent, feed.sending, feed.queue_frames, first)
        self.feed = feed
        self.seat = seat  # an owner's debug view of this seat also gets its seat_debug frames
        self.debug_sent = debug_sent

    def __str__(self) -> str:
        return f"match {self.feed.match_id}"

    async def receive(self) -> list[str]:
        """Every frame not taken yet, in order, waiting until there is one; ``[]`` once the
        stream is over (after ``end``, or when this spectator has fallen too far behind)."""
        feed = self.feed
        while not self.is_done:
            wakeup = feed._wakeup(self.seat).event()  # before looking: a publish after this sets it
            if self._lag() > feed.queue_frames:
                self._drop()
                return []
            frames = self._take()
            if feed.is_closed:  # and _take() has taken everything before the end
                self.is_done = True
                return [*frames, feed.end] if feed.end is not None else frames
            if frames:
                return frames
            await wakeup.wait()
        return []

    def _lag(self) -> int:
        return self.feed.seq - self.sent

    def _is_final(self) -> bool:
        return self.feed.is_closed

    def _take(self) -> list[str]:
        """The frames published since the last call, marked as taken (the caller has checked
        that this spectator is within ``queue_frames``, so they are all in the window)."""
        feed = self.feed
        debug = feed.debug.get(self.seat) if self.seat is not None else None
        if debug is None or self.debug_sent == debug.total:  # a public view, or no debug frame to interleave
            frames = feed.events.since(self.sent)
            self.sent = feed.seq
            return frames
        self.debug_sent = max(self.debug_sent, debug.first)  # private extras: the window bounds them too
        frames = []
        while self.sent < feed.seq or self.debug_sent < debug.total:
            # a seat_debug frame follows the event of its seq (it is never ahead of the log)
            if self.debug_sent < debug.total and debug[self.debug_sent][0] <= self.sent:
                frames.append(debug[self.debug_sent][1])
                self.debug_sent += 1
            else:
                frames.append(feed.events[self.sent])
                self.sent += 1
        return frames


class LobbySubscription(_Reader):
    """One lobby spectator's place in the lobby's log."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.lobby_seq, hub.lobby_sending, hub.queue_frames)
        self.hub = hub

    def __str__(self) -> str:
        return "lobby"

    async def receive(self) -> list[str]:
        """Every lobby frame not taken yet, waiting until there is one; ``[]`` once this
        spectator has fallen too far behind."""
        hub = self.hub
        while not self.is_done:
            wakeup = hub._lobby_wakeup.event()
            if self._lag() > hub.queue_frames:
                self._drop()
                return []
            if self.sent < hub.lobby_seq:
                frames = hub._lobby[len(hub._lobby) - self._lag():]
                self.sent = hub.lobby_seq
                return frames
            await wakeup.wait()
        return []

    def _lag(self) -> int:
        return self.hub.lobby_seq - self.sent


class Hub:
    """All live match feeds and the lobby, in one process.

    In a cluster, the matches other processes run reach this hub through a relay
    (``relay.py``), which opens their feeds and publishes what it reads from the database.
    """

    def __init__(
        self, queue_frames: int = DEFAULT_QUEUE_FRAMES, *, window_events: int = DEFAULT_WINDOW_EVENTS,
        snapshot_events: int = DEFAULT_SNAPSHOT_EVENTS, snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES,
    ) -> None:
        self.queue_frames = queue_frames
        self.window_events = window_events
        self.snapshot_events = max(0, snapshot_events)
        self.snapshot_bytes = max(0, snapshot_bytes)
        self.feeds: dict[int, MatchFeed] = {}
        self.lobby_seq = 0  # lobby frames published so far
        self.lobby_sending: set[_Reader] = set()  # lobby spectators in the middle of a send
        self._lobby: list[str] = []  # the last lobby frames (at least queue_frames of them)
        self._lobby_wakeup = _Wakeup()

    @contextmanager
    def open_feed(self, match_id: int, match: dict[str, JSON]) -> Iterator[MatchFeed]:
        """A feed for a live match, removed when the block exits (after the match is stored).

        A feed the match had already is closed and replaced (a relay's, of a match another
        process ran, that this process now runs; or this process's, of a match run again).
        """
        feed = MatchFeed(match_id, match, self.queue_frames, self.window_events, self.snapshot_events,
                         self.snapshot_bytes)
        replaced = self.feeds.get(match_id)
        if replaced is not None:
            replaced.close()
        self.feeds[match_id] = feed
        try:
            yield feed
        finally:
            feed.close()
            if self.feeds.get(match_id) is feed:
                del self.feeds[match_id]

    def feed(self, match_id: int) -> MatchFeed | None:
        return self.feeds.get(match_id)

    def subscribe_lobby(self) -> LobbySubscription:
        """A subscription to every lobby frame from now on."""
        return LobbySubscription(self)

    def publish_lobby(self, msg: LobbyMsg) -> None:
        self._lobby.append(codec.encode(msg).decode())
        self.lobby_seq += 1
        if len(self._lobby) > 2 * self.queue_frames:  # drop what only dropped spectators would read
            del self._lobby[:len(self._lobby) - self.queue_frames]
        self._lobby_wakeup.notify()
        if self.lobby_sending:
            _cut_off_stuck(self.lobby_sending)
