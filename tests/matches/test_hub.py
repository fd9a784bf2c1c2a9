"""The broadcast hub without sockets: frames byte for byte, joins at every point, slow spectators.

A spectator here is a ``Subscription.stream`` whose ``send`` appends to a list (or blocks, to
play a socket that takes no more frames): exactly what a socket's task runs, minus the socket.
"""

from __future__ import annotations

import gc
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from protocol import codec
from protocol.messages import Event, MatchStarted, SeatDebug, SeatTiming, StepRecord
from server.matches import hub as hub_module
from server.matches.hub import Hub, LobbySubscription, MatchFeed, Subscription, event_frame
from server.storage import EncodedStep

pytestmark = pytest.mark.timeout(60)

JSON = Any


def make_step(i: int, rng: random.Random | None = None) -> StepRecord:
    rng = rng or random.Random(i)
    timing: list[SeatTiming | None] = [
        SeatTiming(wall_s=rng.random(), cpu_s=rng.choice([None, 1e-6 * i]), bank_s=60.0 - i,
                   allowance_s=rng.choice([None, 0.25])),
        None,
    ]
    return StepRecord(
        step=i,
        actions=[rng.choice([None, 0, 1, "rock", {"cell": i}, [1.5, -2]]), None],
        statuses=rng.sample(["ACTIVE", "INACTIVE", "DONE", "TIMEOUT"], 2),
        rewards=[rng.choice([0.0, 1.0, -1.0, 0.5]), 1e-300 * i],
        state={"board": [rng.randrange(3) for _ in range(42)], "mark": 1 + i % 2, "note": "é\"\\ \u2028 ✓",
               "deep": {"a": [{"b": None}], "t": True}},
        timing=timing,
    )


def as_event(seq: int, r: StepRecord) -> Event:
    return Event(seq=seq, step=r.step, actions=r.actions, statuses=r.statuses, rewards=r.rewards, state=r.state,
                 timing=r.timing, time=r.time)


# -- one encoding, shared ---------------------------------------------------------------------------


def test_event_frame_is_the_encoded_event_byte_for_byte() -> None:
    rng = random.Random(4)
    for i in range(300):
        record = make_step(i, rng)
        step = EncodedStep.of(record)
        seq = rng.choice([1, 9, 10, 99, 12345, 10**12])
        frame = event_frame(seq, step)
        assert frame == codec.encode(as_event(seq, record)).decode()
        assert codec.decode_spectator(frame) == as_event(seq, record)
    # the empty-ish step too
    empty = StepRecord(step=0, actions=[], statuses=[], rewards=[], state={})
    assert event_frame(1, EncodedStep.of(empty)) == codec.encode(as_event(1, empty)).decode()


def test_an_encoded_step_is_the_stored_text_and_the_frame_holds_it() -> None:
    record = make_step(3)
    step = EncodedStep.of(record)
    assert step.text == codec.encode(record).decode()  # what the writer stored before, unchanged
    feed = MatchFeed(1, {"id": 1}, 16)
    feed.publish_step(step)
    assert step.text[1:-1] in feed.events[0]
    feed.publish_step(record)  # a plain StepRecord is encoded by the feed itself, the same way
    assert feed.events[1] == codec.encode(as_event(2, record)).decode()
    assert feed.state == record.state


# -- spectators --------------------------------------------------------------------------------------


@dataclass
class Spectator:
    """What one spectator's socket got, in order."""

    frames: list[JSON] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    async def send(self, frame: str) -> None:
        self.raw.append(frame)
        self.frames.append(json.loads(frame))

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if f["type"] != "seat_debug"]


async def settle() -> None:
    """Let every woken spectator task run (and send) before going on."""
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


def check_public_stream(s: Spectator, total: int) -> None:
    """snapshot, then every later event once in order, then end."""
    snapshot = s.frames[0]
    assert snapshot["type"] == "snapshot"
    assert [e["seq"] for e in snapshot["events"]] == list(range(1, snapshot["seq"] + 1))
    assert [f["type"] for f in s.frames[1:-1]] == ["event"] * (len(s.frames) - 2)
    assert s.frames[-1]["type"] == "end"
    assert s.seqs() == list(range(snapshot["seq"], total + 2))


async def test_a_spectator_joining_at_every_point_sees_a_gapless_stream() -> None:
    total = 40
    steps = [make_step(i) for i in range(total)]
    hub = Hub(queue_frames=64)
    spectators: list[tuple[Spectator, Subscription]] = []
    with hub.open_feed(7, {"id": 7}) as feed:
        async with anyio.create_task_group() as tg:
            for i, record in enumerate([None, *steps]):
                if record is not None:
                    feed.publish_step(EncodedStep.of(record))
                for burst in range(2):  # two joins at each point: one settled, one not yet
                    s = Spectator()
                    sub = feed.subscribe()
                    spectators.append((s, sub))
                    tg.start_soon(sub.stream, s.send)
                    if burst == 0:
                        await settle()
                if i % 3 == 0:
                    await settle()
            feed.publish_end({"winner": None}, {"id": 7, "status": "finished"})
            late = Spectator()  # joins after the end: snapshot and end at once
            sub = feed.subscribe()
            spectators.append((late, sub))
            tg.start_soon(sub.stream, late.send)

    reference = [codec.encode(as_event(i + 1, r)).decode() for i, r in enumerate(steps)]
    for n, (s, sub) in enumerate(spectators):
        check_public_stream(s, total)
        assert not sub.is_dropped and sub.is_done
        joined_at = s.frames[0]["seq"]
        assert joined_at == min(n // 2, total)
        # every frame byte for byte what encoding it whole gives; events so far in the snapshot
        assert s.raw[1:-1] == reference[joined_at:]
        assert [json.dumps(e) for e in s.frames[0]["events"]] == [json.dumps(json.loads(r)) for r in
                                                                  reference[:joined_at]]
    assert late.seqs() == [total, total + 1]
    assert late.frames[0]["match"]["status"] == "finished"


async def test_a_stuck_spectator_is_cut_off_while_200_others_get_everything(caplog: pytest.LogCaptureFixture) -> None:
    queue = 16
    total = 200
    never = anyio.Event()

    async def stuck_send(frame: str) -> None:
        if json.loads(frame)["type"] != "snapshot":
            await never.wait()  # a socket that takes no more frames

    hub = Hub(queue_frames=queue)
    others = [Spectator() for _ in range(200)]
    with caplog.at_level(logging.INFO, logger="server.matches.hub"), hub.open_feed(1, {"id": 1}) as feed:
        async with anyio.create_task_group() as tg:
            stuck = feed.subscribe()
            tg.start_soon(stuck.stream, stuck_send)
            subs = []
            for s in others:
                sub = feed.subscribe()
                subs.append(sub)
                tg.start_soon(sub.stream, s.send)
            await settle()
            for i in range(total):
                feed.publish_step(make_step(i))
                if 1 <= i <= queue:  # stuck on event 1 since; the match goes on regardless
                    assert not stuck.is_dropped
                    assert stuck in feed.sending
                await settle()
                if i == queue + 1:  # one event more than its bound: cut off at that publish
                    assert stuck.is_dropped and stuck not in feed.sending
            feed.publish_end({"winner": 0}, {"id": 1})

    assert stuck.is_dropped and stuck.is_done
    for s, sub in zip(others, subs, strict=True):
        check_public_stream(s, total)
        assert len(s.frames) == total + 2 and not sub.is_dropped
    dropped = [r.getMessage() for r in caplog.records if r.name == "server.matches.hub"]
    assert dropped == ["match 1: dropped a spectator that fell behind"]


async def test_a_spectator_that_wakes_too_far_behind_is_dropped() -> None:
    feed = MatchFeed(3, {"id": 3}, queue_frames=5)
    sub = feed.subscribe()
    for i in range(5):
        feed.publish_step(make_step(i))
    assert len(await sub.receive()) == 5  # exactly at its bound: still fine
    for i in range(5, 11):
        feed.publish_step(make_step(i))
    assert await sub.receive() == [] and sub.is_dropped and sub.is_done
    assert await sub.receive() == []


async def test_after_the_end_a_stuck_send_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "SEND_TIMEOUT_S", 0.2)
    never = anyio.Event()
    sent: list[str] = []

    async def send_then_stick(frame: str) -> None:
        sent.append(frame)
        if len(sent) > 2:
            await never.wait()

    feed = MatchFeed(4, {"id": 4}, queue_frames=100)
    sub = feed.subscribe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sub.stream, send_then_stick)
            for i in range(3):
                feed.publish_step(make_step(i))
                await settle()
            assert sub in feed.sending  # stuck on its third frame, well within its bound
            started = anyio.current_time()
            feed.publish_end({"winner": None}, {"id": 4})
    assert 0.15 < anyio.current_time() - started < 2
    assert sub.is_dropped
    assert not feed.sending


async def test_a_closed_feed_ends_every_stream_without_end() -> None:
    hub = Hub()
    s = Spectator()
    async with anyio.create_task_group() as tg:
        with hub.open_feed(2, {"id": 2}) as feed:
            sub = feed.subscribe()
            tg.start_soon(sub.stream, s.send)
            feed.publish_step(make_step(0))
            await settle()
        # the block exited without publish_end (the match task failed): the stream just ends
    assert [f["type"] for f in s.frames] == ["snapshot", "event"]
    assert sub.is_done and not sub.is_dropped
    assert hub.feed(2) is None


async def test_an_owner_view_gets_its_seat_debug_frames_in_place_and_others_are_not_woken() -> None:
    feed = MatchFeed(5, {"id": 5}, queue_frames=100)

    def debug(seat: int, log: str) -> None:
        feed.publish_seat_debug(SeatDebug(seq=feed.seq, seat=seat, step=feed.seq - 1, log=log))

    feed.publish_step(make_step(0))
    debug(1, "one-0")
    debug(0, "zero-0")
    view = feed.subscribe_seat(1)
    snapshot, *history = view.first
    assert json.loads(snapshot)["seq"] == 1 and [json.loads(h)["log"] for h in history] == ["one-0"]
    public = feed.subscribe()
    wakes: list[str] = []

    async def wait_public() -> None:
        wakes.append(str(await public.receive()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_public)
        await settle()
        debug(1, "one-late")  # a debug frame only: the public spectator sleeps on
        debug(0, "zero-late")
        await settle()
        assert wakes == []
        feed.publish_step(make_step(1))
        debug(1, "one-1")
        debug(0, "zero-1")
        feed.publish_step(make_step(2))
        feed.publish_step(make_step(3))
        debug(1, "one-3")
    assert len(wakes) == 1
    frames = [json.loads(f) for f in await view.receive()]
    assert [(f["type"], f["seq"], f.get("log")) for f in frames] == [
        ("seat_debug", 1, "one-late"), ("event", 2, None), ("seat_debug", 2, "one-1"), ("event", 3, None),
        ("event", 4, None), ("seat_debug", 4, "one-3"),
    ]
    feed.publish_end({"winner": None}, {"id": 5})
    assert [json.loads(f)["type"] for f in await view.receive()] == ["end"]
    assert await view.receive() == []


async def test_the_lobby_streams_in_order_keeps_only_what_it_needs_and_drops_the_stuck() -> None:
    hub = Hub(queue_frames=4)

    def started(i: int) -> MatchStarted:
        return MatchStarted(match={"id": i})

    fast = Spectator()
    never = anyio.Event()
    stuck_sent: list[str] = []

    async def stuck_send(frame: str) -> None:
        stuck_sent.append(frame)
        await never.wait()

    async with anyio.create_task_group() as tg:
        fast_sub, stuck_sub = hub.subscribe_lobby(), hub.subscribe_lobby()
        tg.start_soon(fast_sub.stream, fast.send)
        tg.start_soon(stuck_sub.stream, stuck_send)
        await settle()
        for i in range(30):
            hub.publish_lobby(started(i))
            await settle()
        assert stuck_sub.is_dropped and len(stuck_sent) == 1
        late: LobbySubscription = hub.subscribe_lobby()  # from now on only
        hub.publish_lobby(started(30))
        assert [json.loads(f)["match"]["id"] for f in await late.receive()] == [30]
        await settle()
        tg.cancel_scope.cancel()
    assert [f["match"]["id"] for f in fast.frames] == list(range(31))
    assert len(hub._lobby) <= 2 * hub.queue_frames


async def test_publishing_does_not_visit_the_spectators(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a thousand spectators waiting, a publish touches none of them (they wake and take)."""
    feed = MatchFeed(6, {"id": 6}, queue_frames=100)
    calls: list[str] = []
    original: Callable[[Subscription], list[str]] = Subscription._take

    def counting_take(self: Subscription) -> list[str]:
        calls.append("take")
        return original(self)

    monkeypatch.setattr(Subscription, "_take", counting_take)
    async with anyio.create_task_group() as tg:
        spectators = [Spectator() for _ in range(1000)]
        for s in spectators:
            sub = feed.subscribe()
            tg.start_soon(sub.stream, s.send)
        await settle()
        calls.clear()
        feed.publish_step(make_step(0))
        assert calls == []  # nothing per spectator inside publish
        await settle()
        assert all(len(s.raw) == 2 for s in spectators)  # each took its frame once woken
        feed.publish_end({"winner": None}, {"id": 6})
    assert all(s.seqs() == [0, 1, 2] for s in spectators)


# -- bounded memory: the window, the snapshot, and what a spectator keeps ------------------------------


async def test_a_long_match_keeps_a_window_and_a_late_joiner_gets_a_bounded_snapshot_then_every_event() -> None:
    window, snapshot_events, total = 40, 10, 500
    feed = MatchFeed(8, {"id": 8}, queue_frames=16, window_events=window, snapshot_events=snapshot_events)
    joined: list[tuple[Spectator, Subscription]] = []
    async with anyio.create_task_group() as tg:
        for i in range(total):
            feed.publish_step(make_step(i))
            assert len(feed.events) <= window  # never more in memory, however long the match
            if i in (5, 123, 499):
                s = Spectator()
                sub = feed.subscribe()
                joined.append((s, sub))
                tg.start_soon(sub.stream, s.send)
            await settle()
        feed.publish_end({"winner": None}, {"id": 8, "status": "finished"})

    assert feed.seq == total and len(feed.events) == window and feed.events.first == total - window
    reference = [codec.encode(as_event(i + 1, make_step(i))).decode() for i in range(total)]
    for s, sub in joined:
        snapshot = s.frames[0]
        seq = snapshot["seq"]
        events = snapshot["events"]
        assert len(events) == min(seq, snapshot_events)  # the most recent ones, at most the bound
        assert [e["seq"] for e in events] == list(range(seq - len(events) + 1, seq + 1))
        assert snapshot["state"] == make_step(seq - 1).state  # the current state
        assert [json.dumps(e) for e in events] == [json.dumps(json.loads(r)) for r in reference[seq - len(events):seq]]
        assert s.raw[1:-1] == reference[seq:]  # then every later event once, in order, then end
        assert s.seqs() == list(range(seq, total + 2)) and s.frames[-1]["type"] == "end"
        assert not sub.is_dropped


def test_a_snapshot_carries_about_snapshot_bytes_of_events_and_always_the_newest() -> None:
    feed = MatchFeed(9, {"id": 9}, queue_frames=16, snapshot_events=100, snapshot_bytes=3000)
    for i in range(50):
        feed.publish_step(make_step(i))
    snapshot = json.loads(feed.subscribe().first[0])
    events = snapshot["events"]
    assert 0 < len(events) < 50
    assert sum(len(codec.encode(e)) for e in events) <= 3000
    assert events[-1]["seq"] == snapshot["seq"] == 50
    huge = StepRecord(step=50, actions=["x" * 10_000, None], statuses=["INVALID", "DONE"], rewards=[-1.0, 1.0],
                      state={})
    feed.publish_step(huge)
    events = json.loads(feed.subscribe().first[0])["events"]
    assert [e["seq"] for e in events] == [51]  # larger than the bound alone, but it is the current step


async def test_a_spectator_lets_go_of_its_snapshot_once_sent() -> None:
    """A spectator that stays holds no copy of what it joined with (a long match's snapshot was
    hundreds of KB per spectator, for as long as it stayed)."""
    feed = MatchFeed(10, {"id": 10}, queue_frames=16)
    for i in range(100):
        feed.publish_step(make_step(i))
    sent: list[str] = []

    async def send(frame: str) -> None:
        sent.append(frame)

    sub = feed.subscribe()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sub.stream, send)
        await settle()
        feed.publish_step(make_step(100))
        await settle()
        assert [json.loads(f)["type"] for f in sent] == ["snapshot", "event"]
        assert sub.first == []
        gc.collect()
        # only this test's list refers to the snapshot now: not the subscription, not its stream's task
        assert gc.get_referrers(sent[0]) == [sent]
        feed.publish_end({"winner": None}, {"id": 10})


async def test_an_owner_view_of_a_long_match_gets_the_recent_debug_frames_and_then_each_in_place() -> None:
    feed = MatchFeed(11, {"id": 11}, queue_frames=8, window_events=20, snapshot_events=5)
    for i in range(300):
        feed.publish_step(make_step(i))
        feed.publish_seat_debug(SeatDebug(seq=feed.seq, seat=0, step=i, log=f"line {i}\n"))
        assert len(feed.debug[0]) <= feed.window_events + 2
    view = feed.subscribe_seat(0)
    snapshot, *history = [json.loads(f) for f in view.first]
    assert [e["seq"] for e in snapshot["events"]] == [296, 297, 298, 299, 300]
    assert [h["seq"] for h in history] == [296, 297, 298, 299, 300]  # the debug frames of those events
    feed.publish_step(make_step(300))
    feed.publish_seat_debug(SeatDebug(seq=feed.seq, seat=0, step=300, log="line 300\n"))
    frames = [json.loads(f) for f in await view.receive()]
    assert [(f["type"], f["seq"]) for f in frames] == [("event", 301), ("seat_debug", 301)]


def test_spectators_joining_between_two_steps_share_one_snapshot() -> None:
    """A crowd arriving at once costs one snapshot, not one each; the feed lets go of it at the next step."""
    feed = MatchFeed(12, {"id": 12}, queue_frames=16)
    for i in range(30):
        feed.publish_step(make_step(i))
    first, second = feed.subscribe(), feed.subscribe()
    assert first.first[0] is second.first[0]
    feed.publish_step(make_step(30))
    third = feed.subscribe()
    assert third.first[0] is not first.first[0] and json.loads(third.first[0])["seq"] == 31
    feed.match = {"id": 12, "status": "live"}  # the match document changed: a new snapshot shows it
    assert json.loads(feed.subscribe().first[0])["match"] == {"id": 12, "status": "live"}


async def test_a_feed_opened_again_replaces_the_one_before() -> None:
    # A relay's feed of a match this process then runs itself: the manager's replaces it, and the
    # relay's closing later does not take the manager's off the hub.
    hub = Hub()
    with hub.open_feed(1, {"id": 1}) as first:
        sub = first.subscribe()
        with hub.open_feed(1, {"id": 1}) as second:
            assert first.is_closed and hub.feed(1) is second
            assert [json.loads(f)["type"] for f in await sub.receive()] == []  # its stream is over
    assert hub.feed(1) is None
    with hub.open_feed(2, {"id": 2}) as relayed:
        relayed.start_at(40)  # opened in the middle of a match: the next event is step 40
        relayed.publish_stored([codec.encode(make_step(40)).decode()], {"s": 40})
        assert relayed.seq == 41 and relayed.state == {"s": 40}
        assert json.loads(relayed.subscribe().first[0])["events"][0]["seq"] == 41
