"""The relay (``server/cluster/relay.py``) on the private PostgreSQL: a match stored by one storage
(a worker: its own pool and step writer) reaches the spectators of another process's hub (a
front: a hub and a relay with its own listening connection), ``seq`` contiguous from the
snapshot to ``end``; through a listening connection killed from the database side in the middle
of a match, and through notifications that never came.

A spectator here is a subscription's stream whose ``send`` keeps the decoded frames, as the hub's
own tests do. Every wait is bounded; the only server process killed is the relay's own session.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from websockets.asyncio.client import connect

from protocol import codec
from server.cluster import Relay
from server.matches.hub import Hub, LobbySubscription, MatchFeed, Subscription
from server.matches.manager import MatchManager
from server.sandbox import Limits, SeatLauncher
from server.storage import (
    LISTEN_APPLICATION_NAME,
    MatchRecord,
    MatchStatus,
    NewSeat,
    Notice,
    SeatResult,
    Storage,
    open_postgres,
)
from server.storage._pg_notify import EVERYTHING, MAX_PAYLOAD_BYTES, parse_notice, steps_payload
from tests.server.conftest import (
    api_client,
    create_user,
    quiet_settings,
    running_server,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)
from tests.storage.raw import query
from tests.storage.test_storage import make_step

pytestmark = pytest.mark.timeout(90)

JSON = Any
WAIT_S = 20.0  # every wait of these tests is bounded by this

RPS_CYCLE = """
def agent(observation, configuration):
    return observation.step % configuration.signs
"""


async def new_match(storage: Storage, game: str = "tictactoe", code: str = "x") -> MatchRecord:
    user = await storage.create_user(f"alice{time.monotonic_ns()}", f"h{time.monotonic_ns()}")
    a = await storage.save_agent(user.id, "a", game, code)
    b = await storage.save_agent(user.id, "b", game, code)
    return await storage.create_match(game, 1, {}, 7, [NewSeat(a.id, 1), NewSeat(b.id, 1)])


def results(match: MatchRecord) -> list[SeatResult]:
    return [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
            for s, r in zip(match.seats, [1.0, -1.0], strict=True)]


class Spectator:
    """A subscription's stream, its frames kept decoded; ``done`` once its stream is over."""

    def __init__(self, sub: Subscription | LobbySubscription) -> None:
        self.sub = sub
        self.frames: list[dict[str, JSON]] = []
        self.texts: list[str] = []
        self.done = anyio.Event()

    async def run(self) -> None:
        async def send(text: str) -> None:
            self.texts.append(text)
            self.frames.append(codec.decode_json(text))

        try:
            await self.sub.stream(send)
        finally:
            self.done.set()

    def of_type(self, kind: str) -> list[dict[str, JSON]]:
        return [f for f in self.frames if f["type"] == kind]


def watch(tg: anyio.abc.TaskGroup, sub: Subscription | LobbySubscription) -> Spectator:
    spectator = Spectator(sub)
    tg.start_soon(spectator.run)
    return spectator


def assert_contiguous(frames: Sequence[dict[str, JSON]], steps: int) -> None:
    """snapshot, then events of seq running on by one, then end: and every step of the match is
    in the snapshot's events or after it (the event of step i has seq i + 1)."""
    snapshot, *events, end = frames
    assert snapshot["type"] == "snapshot" and end["type"] == "end"
    assert snapshot["match"]["status"] not in ("finished", "aborted")
    seq = snapshot["seq"]
    assert [e["seq"] for e in snapshot["events"]] == list(range(seq - len(snapshot["events"]) + 1, seq + 1))
    assert [e["type"] for e in events] == ["event"] * len(events)
    assert [e["seq"] for e in events] == list(range(seq + 1, seq + 1 + len(events)))
    assert [e["step"] for e in [*snapshot["events"], *events]] == [e["seq"] - 1 for e in [*snapshot["events"],
                                                                                      *events]]
    assert end["seq"] == seq + len(events) + 1 == steps + 1
    assert end["result"]["steps"] == steps


async def wait_for(condition: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = anyio.current_time() + timeout_s
    while not condition():
        if anyio.current_time() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        await anyio.sleep(0.01)


async def terminate_listener(url: str, relay: Relay) -> int:
    """End the relay's listening session from the database side; the pid it had."""
    pid = relay.backend_pid
    conn = await asyncpg.connect(url)
    try:
        # By its pid (a session killed before may still be on its way out) and its name, as a check.
        rows = await conn.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE pid = $1 AND application_name = $2", pid, LISTEN_APPLICATION_NAME)
    finally:
        await conn.close()
    assert pid is not None and [tuple(row) for row in rows] == [(True,)]
    return pid


async def test_a_spectator_on_another_hub_sees_the_match_from_snapshot_to_end(postgres_url: str) -> None:
    hub = Hub()
    # No poll for the whole test: the notifications alone carry it.
    relay = Relay(hub, postgres_url, poll_interval_s=60.0, ping_interval_s=60.0)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            lobby = watch(tg, hub.subscribe_lobby())
            match = await new_match(worker)
            feed = await relay.follow(match.id)  # pending: a feed at seq 0
            assert isinstance(feed, MatchFeed) and feed.seq == 0
            assert await relay.follow(match.id) is feed  # once per front, however many spectators
            early = watch(tg, feed.subscribe())
            await worker.set_match_live(match.id, time.time())
            steps = [make_step(i) for i in range(300)]
            for i, step in enumerate(steps):
                await worker.append_steps(match.id, [step])
                if i == 150:
                    await wait_for(lambda: feed.seq > 100, "the first steps")
                    late = watch(tg, feed.subscribe())  # joins in the middle
                if i % 20 == 0:
                    await anyio.sleep(0.005)
            final = await worker.finish_match(match.id, MatchStatus.FINISHED, None, results(match), time.time())
            await early.done.wait()
            await late.done.wait()
            await wait_for(lambda: len(lobby.frames) >= 2, "the lobby's frames")
            tg.cancel_scope.cancel()
    assert_contiguous(early.frames, 300)
    assert_contiguous(late.frames, 300)
    assert early.frames[0]["seq"] == 0 and len(early.of_type("event")) == 300
    assert late.frames[0]["seq"] > 100
    stored = await_steps(postgres_url, match.id)
    assert [codec.decode_json(text) for text in stored] == [
        {k: v for k, v in e.items() if k not in ("seq", "kind", "type")} for e in early.of_type("event")]
    assert early.frames[-1]["result"]["status"] == "finished" and final.steps == 300
    assert [f["type"] for f in lobby.frames] == ["match_started", "match_ended"]
    assert [f["match"]["id"] for f in lobby.frames] == [match.id, match.id]
    assert relay.reconnects == 0 and relay.followed == []
    assert hub.feed(match.id) is None  # the feed is closed once the end is out


def await_steps(url: str, match_id: int) -> list[str]:
    return [str(row[0]) for row in query(url, "SELECT record FROM match_steps WHERE match_id = ? ORDER BY step",
                                         match_id)]


async def test_the_listening_connection_killed_mid_match_loses_nothing(postgres_url: str) -> None:
    hub = Hub()
    relay = Relay(hub, postgres_url, poll_interval_s=60.0, ping_interval_s=60.0)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            match = await new_match(worker)
            await worker.set_match_live(match.id, time.time())
            await worker.append_steps(match.id, [make_step(i) for i in range(40)])
            await worker.flush()
            feed = await relay.follow(match.id)  # in the middle: a snapshot of the recent steps
            assert feed is not None and feed.seq == 40
            spectator = watch(tg, feed.subscribe())
            killed: list[int] = []
            written = [40]  # steps queued so far
            away: list[tuple[int, int]] = []  # steps queued when the connection was killed, when it was back

            async def play() -> None:  # 600 steps over a second or so, in batches as a match makes them
                for i in range(40, 640):
                    await worker.append_steps(match.id, [make_step(i)])
                    written[0] = i + 1
                    if i % 2 == 0:
                        await anyio.sleep(0.003)

            async with anyio.create_task_group() as writers:
                writers.start_soon(play)
                for _ in range(2):  # twice, the second time on the connection opened after the first
                    await wait_for(lambda: relay.is_connected and feed.seq > 40 + 150 * (len(killed) + 1), "steps")
                    killed.append(await terminate_listener(postgres_url, relay))
                    at_kill = written[0]
                    await wait_for(lambda: relay.reconnects == len(killed) and relay.is_connected, "a reconnection")
                    away.append((at_kill, written[0]))
            await worker.finish_match(match.id, MatchStatus.FINISHED, None, results(match), time.time())
            await spectator.done.wait()
            tg.cancel_scope.cancel()
    assert_contiguous(spectator.frames, 640)
    assert spectator.frames[0]["seq"] == 40 and len(spectator.of_type("event")) == 600
    stored = await_steps(postgres_url, match.id)
    assert [codec.decode_json(text) for text in stored[40:]] == [
        {k: v for k, v in e.items() if k not in ("seq", "kind", "type")} for e in spectator.of_type("event")]
    assert relay.reconnects == 2 and len(set(killed)) == 2 and relay.backend_pid not in killed
    assert all(at_kill < back < 640 for at_kill, back in away)  # in the middle, and steps came meanwhile


async def test_steps_and_an_end_that_nobody_notified_arrive_with_the_poll(postgres_url: str) -> None:
    hub = Hub()
    relay = Relay(hub, postgres_url, poll_interval_s=0.3, ping_interval_s=0.1)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            match = await new_match(worker)
            await worker.set_match_live(match.id, time.time())
            feed = await relay.follow(match.id)
            assert feed is not None
            spectator = watch(tg, feed.subscribe())
            # Behind the storage's back: rows and an end with no notification (as if it were lost).
            rows = [(match.id, i, codec.encode(make_step(i)).decode()) for i in range(25)]
            for row in rows:
                query(postgres_url, "INSERT INTO match_steps (match_id, step, record) VALUES (?, ?, ?)", *row)
            await wait_for(lambda: feed.seq == 25, "the steps, from the poll")
            query(postgres_url, "UPDATE matches SET status = 'finished', steps = 25, finished_at = ? WHERE id = ?",
                  time.time(), match.id)
            await spectator.done.wait()
            tg.cancel_scope.cancel()
    assert_contiguous(spectator.frames, 25)


async def test_a_match_run_by_another_manager_reaches_this_hub_frame_for_frame(
    postgres_url: str, launcher: SeatLauncher,
) -> None:
    worker_hub, front_hub = Hub(), Hub()
    relay = Relay(front_hub, postgres_url, poll_interval_s=60.0)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(60):
            await tg.start(relay.run)
            manager = MatchManager(worker, worker_hub, tg, Limits(), launcher)
            user = await worker.create_user("bob", "h")
            agents = [await worker.save_agent(user.id, name, "rps", RPS_CYCLE) for name in ("p", "q")]
            match = await manager.start_match("rps", [a.id for a in agents], {"episodeSteps": 120}, pace_s=0.005)
            await wait_for(lambda: worker_hub.feed(match.id) is not None, "the worker's feed")
            worker_feed = worker_hub.feed(match.id)
            assert worker_feed is not None
            local = watch(tg, worker_feed.subscribe())
            front_feed = await relay.follow(match.id)
            assert front_feed is not None
            remote = watch(tg, front_feed.subscribe())
            await local.done.wait()
            await remote.done.wait()
            tg.cancel_scope.cancel()
    steps = remote.frames[-1]["seq"] - 1
    assert_contiguous(remote.frames, steps)
    assert_contiguous(local.frames, steps)
    assert steps >= 100 and remote.frames[0]["seq"] < 50
    # The events both got after their snapshots, and the end, byte for byte the same.
    common = min(len(local.texts), len(remote.texts)) - 1
    assert common >= 70 and remote.texts[-common:] == local.texts[-common:]


async def test_a_listening_connection_that_stops_answering_is_replaced(postgres_url: str) -> None:
    # The relay's server process stopped (SIGSTOP): the socket stays open and asyncpg sees nothing
    # wrong; only the watchdog's ping, unanswered within timeout_s, tells.
    hub = Hub()
    relay = Relay(hub, postgres_url, poll_interval_s=60.0, ping_interval_s=0.2, timeout_s=0.5)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            match = await new_match(worker)
            await worker.set_match_live(match.id, time.time())
            feed = await relay.follow(match.id)
            assert feed is not None and relay.backend_pid is not None
            spectator = watch(tg, feed.subscribe())
            await worker.append_steps(match.id, [make_step(i) for i in range(10)])
            await wait_for(lambda: feed.seq == 10, "the first steps")
            stopped = relay.backend_pid
            os.kill(stopped, signal.SIGSTOP)
            try:
                await worker.append_steps(match.id, [make_step(i) for i in range(10, 30)])  # notified to no one
                started = anyio.current_time()
                await wait_for(lambda: relay.reconnects == 1 and relay.is_connected, "a reconnection")
                replaced_s = anyio.current_time() - started
            finally:
                os.kill(stopped, signal.SIGCONT)  # it finds its client gone and ends
            await wait_for(lambda: feed.seq == 30, "the steps stored while the connection was dead")
            await worker.finish_match(match.id, MatchStatus.FINISHED, None, results(match), time.time())
            await spectator.done.wait()
            tg.cancel_scope.cancel()
    assert_contiguous(spectator.frames, 30)
    assert relay.backend_pid != stopped and replaced_s < 0.2 + 0.5 + 1.0  # a ping's interval and timeout, and slack


async def test_a_spectator_on_a_front_watches_a_match_a_worker_runs(postgres_url: str, tmp_path: Path) -> None:
    # The app in two roles on one database: the match is created through the front, claimed and
    # run by the worker, and watched over the front's WebSocket.
    front = quiet_settings(tmp_path, db=postgres_url, role="front")
    worker = quiet_settings(tmp_path, db=postgres_url, role="worker", worker_name="w1", claim_poll_s=0.05)
    async with running_server(worker), api_client(front) as client:
        user = await create_user(client, "carol")
        agents = [(await submit_agent(client, user, name, "rps", RPS_CYCLE))["id"] for name in ("p", "q")]
        match = await start_match(client, user, "rps", agents, {"episodeSteps": 150})
        frames: list[dict[str, JSON]] = []
        with anyio.fail_after(60):
            async with connect(ws_url(client, f"/ws/matches/{match['id']}"), proxy=None, open_timeout=20) as ws:
                async for text in ws:
                    frames.append(codec.decode_json(text))
        done = await wait_finished(client, match["id"])
        relay = (await client.get("/api/health")).json()["relay"]
    assert done["status"] == "finished" and done["worker"] == "w1"
    assert relay == {"connected": True, "reconnects": 0, "followed": 0}  # followed until its end
    assert_contiguous(frames, done["steps"])
    assert frames[0]["seq"] < done["steps"]  # it joined a live (or pending) match, not a finished one


def test_a_notification_names_what_changed_and_never_outgrows_postgresql() -> None:
    rows = [(12, 40, "{}"), (13, 7, "{}"), (12, 41, "{}")]
    assert steps_payload(rows) == "steps 12:41,13:7"
    assert parse_notice(steps_payload(rows)) == Notice(steps={12: 41, 13: 7})
    assert parse_notice("started 5") == Notice(started=(5,)) and parse_notice("ended 5") == Notice(ended=(5,))
    assert parse_notice("ended *") == Notice(ended=None)
    many = [(match_id, 10**9, "{}") for match_id in range(10**9, 10**9 + 1000)]  # too many to name
    assert steps_payload(many) == "steps *" and parse_notice("steps *") == Notice(steps=None)
    assert all(len(steps_payload(many[:n]).encode()) <= MAX_PAYLOAD_BYTES for n in (1, 100, 249, 250, 1000))
    assert parse_notice("resumed 5") == parse_notice("steps 1:x") == EVERYTHING  # a newer version's: read all


async def test_a_match_run_again_gives_its_spectators_a_fresh_snapshot(postgres_url: str, tmp_path: Path) -> None:
    # A front's spectator of a match whose worker was lost: the match is claimed again (here by
    # hand, as the queue's claim does it: the next attempt, its steps deleted) and played again
    # from step 0. The spectator's socket goes on with a fresh snapshot, then to the end.
    front = quiet_settings(tmp_path, db=postgres_url, role="front")
    async with open_postgres(postgres_url) as worker, api_client(front) as client:
        match = await new_match(worker)
        frames: list[dict[str, JSON]] = []

        async def spectate() -> None:
            async with connect(ws_url(client, f"/ws/matches/{match.id}"), proxy=None, open_timeout=20) as ws:
                async for text in ws:
                    frames.append(codec.decode_json(text))

        with anyio.fail_after(WAIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(spectate)
                await worker.set_match_live(match.id, time.time())
                await worker.append_steps(match.id, [make_step(i) for i in range(30)])
                await wait_for(lambda: bool(frames) and frames[-1].get("seq") == 30, "the first run's steps")
                query(postgres_url, "UPDATE matches SET attempt = attempt + 1, status = 'pending', steps = 0,"
                      " started_at = NULL WHERE id = ?", match.id)
                query(postgres_url, "DELETE FROM match_steps WHERE match_id = ?", match.id)
                await worker.set_match_live(match.id, time.time())
                again = [dataclasses.replace(make_step(100 + i), step=i) for i in range(20)]  # other moves
                await worker.append_steps(match.id, again)
                await wait_for(lambda: [f["type"] for f in frames].count("snapshot") == 2 and frames[-1]["seq"] == 20,
                               "the second run's steps")
                await worker.finish_match(match.id, MatchStatus.FINISHED, None, results(match), time.time())
    first_run = frames[:frames.index(next(f for f in frames[1:] if f["type"] == "snapshot"))]
    second_run = frames[len(first_run):]
    assert [f["type"] for f in first_run] == ["snapshot"] + ["event"] * (len(first_run) - 1)
    assert first_run[-1]["seq"] == 30
    assert_contiguous(second_run, 20)
    assert [e["actions"] for e in second_run[0]["events"] + second_run[1:-1]][-1] == [119, None]


async def test_a_match_a_spectator_follows_before_its_start_is_heard_still_starts_in_the_lobby(
    postgres_url: str,
) -> None:
    """The spectator's request opens the match's feed in the pass before its start is heard (here
    the notice is lost: the match goes live by a bare UPDATE); the next scan still announces it."""
    hub = Hub()
    relay = Relay(hub, postgres_url, poll_interval_s=0.3, ping_interval_s=60.0)
    async with open_postgres(postgres_url) as worker, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(relay.run)
            lobby = watch(tg, hub.subscribe_lobby())
            match = await new_match(worker)
            query(postgres_url, "UPDATE matches SET status = 'live', started_at = ? WHERE id = ?", time.time(),
                  match.id)
            feed = await relay.follow(match.id)
            assert isinstance(feed, MatchFeed)
            await wait_for(lambda: any(f["type"] == "match_started" for f in lobby.frames), "match_started")
            tg.cancel_scope.cancel()
    assert [(f["type"], f["match"]["id"]) for f in lobby.frames] == [("match_started", match.id)]
