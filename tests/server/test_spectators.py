"""Spectators and the lobby over real WebSockets: ordering, consistency, slow clients, errors."""

from __future__ import annotations

import gc
import json
import logging
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from server.config import Settings
from tests.server.conftest import (
    RPS_CYCLE,
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.both_backends]

JSON = Any
CLOSE_NORMAL = 1000
CLOSE_TOO_SLOW = 4008
CLOSE_NOT_FOUND = 4404

# Sleeps while loading, so spectators can join before the first move, then plays steadily.
RPS_LOAD_SLOWLY = """
from time import sleep

sleep({load_s})

def agent(observation, configuration):
    sleep({move_s})
    return observation.step % configuration.signs
"""


def open_ws(url: str) -> connect:
    return connect(url, proxy=None, open_timeout=20, max_size=None)


@dataclass
class Watch:
    """Everything one spectator received, and how its socket was closed."""

    frames: list[JSON] = field(default_factory=list)
    close_code: int | None = None
    snapshot_seen: anyio.Event = field(default_factory=anyio.Event)
    notify_at_frames: int = 0  # set ``reached`` once this many frames arrived
    reached: anyio.Event = field(default_factory=anyio.Event)

    @property
    def snapshot(self) -> JSON:
        return self.frames[0]

    def events(self) -> list[JSON]:
        """The whole event log as this spectator saw it: the snapshot's events, then the live ones."""
        return [*self.snapshot["events"], *(f for f in self.frames[1:] if f["type"] == "event")]


async def watch(url: str, into: Watch) -> None:
    """Follow a spectator socket to its end, recording every frame."""
    async with open_ws(url) as ws:
        try:
            async for message in ws:
                into.frames.append(json.loads(message))
                into.snapshot_seen.set()
                if 0 < into.notify_at_frames <= len(into.frames):
                    into.reached.set()
        except ConnectionClosed:
            pass
        into.close_code = ws.close_code


def check_stream(w: Watch) -> list[JSON]:
    """The spectator contract: snapshot, gapless events, end; returns the full event log."""
    types = [f["type"] for f in w.frames]
    assert types[0] == "snapshot", types[:3]
    assert types[-1] == "end", types[-3:]
    assert set(types[1:-1]) <= {"event"}, types
    snapshot = w.snapshot
    assert set(snapshot) >= {"type", "seq", "match", "state", "events"}
    assert len(snapshot["events"]) == snapshot["seq"]
    assert [e["seq"] for e in snapshot["events"]] == list(range(1, snapshot["seq"] + 1))
    live = [f["seq"] for f in w.frames[1:]]
    assert live == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(live)))  # end is last + 1
    for seat in w.frames[-1]["result"]["seats"]:
        assert set(seat) >= {"name", "status", "reward", "reason"}
    assert w.close_code == CLOSE_NORMAL
    return w.events()


def as_step(event: JSON) -> JSON:
    """An ``event`` frame without its framing: what the replay stores for that step."""
    return {k: v for k, v in event.items() if k not in ("type", "seq", "kind")}


async def two_bots(client: httpx.AsyncClient, user: User, game: str, code: str, other: str | None = None) -> list[int]:
    first = await submit_agent(client, user, f"{game}-one", game, code)
    second = await submit_agent(client, user, f"{game}-two", game, other or code)
    return [first["id"], second["id"]]


async def test_many_spectators_see_the_same_gapless_stream(settings: Settings) -> None:
    early_n, late_n = 100, 100
    async with api_client(settings) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "rps", RPS_LOAD_SLOWLY.format(load_s=1.5, move_s=0.01))
        match = await start_match(client, user, "rps", agents, {"episodeSteps": 250}, seed=7)
        url = ws_url(client, f"/ws/matches/{match['id']}")
        early = [Watch(notify_at_frames=40) for _ in range(early_n)]
        late = [Watch() for _ in range(late_n)]
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for w in early:
                    tg.start_soon(watch, url, w)
                for w in early:
                    await w.snapshot_seen.wait()
                # Join the rest once the match is well under way.
                await early[0].reached.wait()
                for w in late:
                    tg.start_soon(watch, url, w)
        final = await wait_finished(client, match["id"])
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()

    assert final["status"] == "finished"
    stored = replay["steps"]
    assert len(stored) == 250  # steps 0..249: episodeSteps counts the initial one, as on Kaggle
    logs = [check_stream(w) for w in early + late]
    first = logs[0]
    assert [e["seq"] for e in first] == list(range(1, len(stored) + 1))
    for log in logs[1:]:
        assert log == first
    assert [as_step(e) for e in first] == stored
    for w in early + late:
        assert w.frames[-1]["result"]["seats"] == [
            {k: s[k] for k in ("agent_id", "name", "owner", "version", "status", "reward", "reason")}
            for s in replay["seats"]
        ]
    # The first group joined before any move, the second while the match was being played.
    assert all(w.snapshot["seq"] <= 1 for w in early)
    late_seqs = [w.snapshot["seq"] for w in late]
    assert min(late_seqs) > 1
    assert sum(1 for w in late if len(w.frames) > 2) > late_n // 2, late_seqs  # they saw live events


# -- a spectator that never reads -------------------------------------------------------------------


class RawSpectator:
    """A WebSocket client on a plain blocking socket that can stop reading entirely.

    It sends the upgrade request and then reads nothing until ``read_to_end``; with a tiny
    receive buffer the server soon cannot write to it any more.
    """

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        self.frames: list[JSON] = []
        self.saw_eof = False

    def read_to_end(self, timeout_s: float) -> None:
        """Read and parse until the server closes (close frame or EOF)."""
        self.sock.settimeout(timeout_s)
        while self.protocol.close_rcvd is None:
            data = self.sock.recv(1 << 16)
            if not data:
                self.saw_eof = True
                self.protocol.receive_eof()
                break
            self.protocol.receive_data(data)
            for item in self.protocol.events_received():
                if isinstance(item, Frame) and item.opcode is Opcode.TEXT:
                    self.frames.append(json.loads(bytes(item.data)))

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd is not None else None

    def close(self) -> None:
        self.sock.close()


async def test_a_spectator_that_never_reads_is_dropped_and_never_slows_the_match(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = quiet_settings(tmp_path, spectator_queue_frames=16)
    config = {"episodeSteps": 2000}
    # A small send buffer on the server's sockets (inherited from the listening socket): the
    # kernel then absorbs ~100 KB of a stalled client, not the ~4 MB loopback autotuning allows,
    # so a 2000-step match (~600 KB of frames) outgrows it.
    async with api_client(settings, send_buffer_bytes=16 << 10) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "rps", RPS_LOAD_SLOWLY.format(load_s=0.5, move_s=0), RPS_ROCK)

        baseline = await wait_finished(client, (await start_match(client, user, "rps", agents, config, seed=3))["id"])
        base_s = baseline["finished_at"] - baseline["started_at"]

        with caplog.at_level(logging.INFO, logger="server.matches.hub"):
            match = await start_match(client, user, "rps", agents, config, seed=3)
            port = client.base_url.port
            assert port is not None
            slow = RawSpectator(port, f"/ws/matches/{match['id']}")
            try:
                with anyio.fail_after(60):
                    final = await wait_finished(client, match["id"])
                slow_s = final["finished_at"] - final["started_at"]
                # Only now does the spectator start reading: it gets what was buffered, then the close.
                await anyio.to_thread.run_sync(slow.read_to_end, 15.0)
            finally:
                slow.close()

    assert final["status"] == "finished" and final["steps"] == baseline["steps"] == 2000
    assert slow_s <= 3 * base_s + 2.0, (slow_s, base_s)

    # The server cut it off: a gapless prefix of the stream, no `end`, then 4008 (or, when the
    # server gave up even on sending the close frame, the connection simply ends).
    frames = slow.frames
    assert frames and frames[0]["type"] == "snapshot"
    assert frames[0]["seq"] <= 1  # it joined before the first move
    assert [f["type"] for f in frames[1:]] == ["event"] * (len(frames) - 1)
    assert [f["seq"] for f in frames[1:]] == list(range(frames[0]["seq"] + 1, frames[0]["seq"] + len(frames)))
    assert len(frames) < 2000
    assert slow.close_code == CLOSE_TOO_SLOW or (slow.close_code is None and slow.saw_eof)
    assert any("dropped a spectator that fell behind" in r.getMessage() for r in caplog.records)


async def test_a_stalled_spectator_is_cut_off_while_200_others_get_everything(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The fan-out under load: 200 readers and one socket that takes nothing, on one match.

    The stalled one is cut off (4008, or the connection just ends) once its socket is full
    and it is more than the queue's bound behind; every reader gets the whole stream, frame
    for frame what the replay stores.
    """
    settings = quiet_settings(tmp_path, spectator_queue_frames=16)
    config = {"episodeSteps": 500}
    async with api_client(settings, send_buffer_bytes=16 << 10) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "rps", RPS_LOAD_SLOWLY.format(load_s=1.0, move_s=0), RPS_CYCLE)
        match = await start_match(client, user, "rps", agents, config, seed=11)
        port = client.base_url.port
        assert port is not None
        url = ws_url(client, f"/ws/matches/{match['id']}")
        readers = [Watch() for _ in range(200)]
        with caplog.at_level(logging.INFO, logger="server.matches.hub"), anyio.fail_after(80):
            stalled = RawSpectator(port, f"/ws/matches/{match['id']}")
            try:
                async with anyio.create_task_group() as tg:
                    for w in readers:
                        tg.start_soon(watch, url, w)
                final = await wait_finished(client, match["id"])
                await anyio.to_thread.run_sync(stalled.read_to_end, 15.0)
            finally:
                stalled.close()
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()

    assert final["status"] == "finished" and final["steps"] == 500
    for w in readers:
        assert [as_step(e) for e in check_stream(w)] == replay["steps"]
    frames = stalled.frames
    assert frames and frames[0]["type"] == "snapshot" and len(frames) < 500
    assert [f["seq"] for f in frames[1:]] == list(range(frames[0]["seq"] + 1, frames[0]["seq"] + len(frames)))
    assert stalled.close_code == CLOSE_TOO_SLOW or (stalled.close_code is None and stalled.saw_eof)
    assert sum("dropped a spectator that fell behind" in r.getMessage() for r in caplog.records) == 1


async def test_spectators_that_leave_mid_match(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Leaving (politely or by a reset) costs the match nothing and leaks nothing.

    Regression: the hub found a departed spectator's queue broken and dropped it without
    closing its own end; the stream leaked (``ResourceWarning: Unclosed
    MemoryObjectSendStream``, an error under this suite's ``filterwarnings``).
    """
    async with api_client(settings) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "rps", RPS_LOAD_SLOWLY.format(load_s=0.2, move_s=0.005))
        match = await start_match(client, user, "rps", agents, {"episodeSteps": 300})
        path = f"/ws/matches/{match['id']}"
        port = client.base_url.port
        assert port is not None
        stayer = Watch()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, ws_url(client, path), stayer)
            for _ in range(5):
                async with open_ws(ws_url(client, path)) as ws:
                    for _ in range(3):
                        await recv_json(ws)
            rude = [RawSpectator(port, path) for _ in range(5)]
            await anyio.sleep(0.2)
            for r in rude:  # close with a TCP reset, no closing handshake
                r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                r.close()
            async with open_ws(ws_url(client, "/ws/lobby")):
                pass
        final = await wait_finished(client, match["id"])
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        gc.collect()  # a leaked stream warns when collected

    assert final["status"] == "finished" and final["steps"] == 300
    assert [as_step(e) for e in check_stream(stayer)] == replay["steps"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- the lobby, read-only sockets, finished and unknown matches --------------------------------------


async def recv_json(ws: ClientConnection, timeout_s: float = 10) -> JSON:
    with anyio.fail_after(timeout_s):
        return json.loads(await ws.recv())


async def test_lobby_announces_matches_and_sockets_are_read_only(settings: Settings) -> None:
    async with api_client(settings) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "tictactoe", TICTACTOE_FIRST_FREE)
        async with open_ws(ws_url(client, "/ws/lobby")) as lobby:
            # A frame from the lobby client is refused, and the socket stays open.
            await lobby.send(json.dumps({"type": "hello"}))
            error = await recv_json(lobby)
            assert error["type"] == "error" and error["code"] == "read_only" and error["message"]
            await lobby.send("not even json")
            assert (await recv_json(lobby))["code"] == "read_only"

            match = await start_match(client, user, "tictactoe", agents)
            started = await recv_json(lobby)
            assert started["type"] == "match_started"
            assert started["match"]["id"] == match["id"] and started["match"]["status"] == "live"
            ended = await recv_json(lobby)
            assert ended["type"] == "match_ended"
            assert ended["match"]["id"] == match["id"] and ended["match"]["status"] == "finished"
            assert [s["status"] for s in ended["match"]["seats"]] == ["DONE", "DONE"]
            # By the time the lobby hears of the end, the match is stored.
            assert (await client.get(f"/api/matches/{match['id']}")).json()["status"] == "finished"


async def test_spectator_socket_is_read_only(settings: Settings) -> None:
    async with api_client(settings) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "rps", RPS_LOAD_SLOWLY.format(load_s=0.5, move_s=0.01), RPS_CYCLE)
        match = await start_match(client, user, "rps", agents, {"episodeSteps": 100})
        async with open_ws(ws_url(client, f"/ws/matches/{match['id']}")) as ws:
            assert (await recv_json(ws))["type"] == "snapshot"
            await ws.send(json.dumps({"type": "action", "action": 1}))
            frames = []
            while True:
                frame = await recv_json(ws)
                frames.append(frame)
                if frame["type"] in ("error", "end"):
                    break
            assert frames[-1]["type"] == "error" and frames[-1]["code"] == "read_only"
            # The stream goes on to its end after the refusal.
            with anyio.fail_after(20):
                async for message in ws:
                    frames.append(json.loads(message))
            assert frames[-1]["type"] == "end"
            assert ws.close_code == CLOSE_NORMAL
            events = [f for f in frames if f["type"] == "event"]
            assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))


async def test_finished_match_is_served_from_storage(settings: Settings) -> None:
    async with api_client(settings) as client:
        user = await create_user(client, "alice")
        agents = await two_bots(client, user, "tictactoe", TICTACTOE_FIRST_FREE)
        match = await start_match(client, user, "tictactoe", agents, seed=5)
        await wait_finished(client, match["id"])
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        w = Watch()
        with anyio.fail_after(10):
            await watch(ws_url(client, f"/ws/matches/{match['id']}"), w)

    assert [f["type"] for f in w.frames] == ["snapshot", "end"]
    events = check_stream(w)
    assert [as_step(e) for e in events] == replay["steps"]
    assert w.snapshot["state"] == replay["steps"][-1]["state"]
    assert w.snapshot["match"]["status"] == "finished"
    assert w.frames[-1]["seq"] == len(replay["steps"]) + 1
    assert [s["reward"] for s in w.frames[-1]["result"]["seats"]] == [1.0, -1.0]


async def test_unknown_match(settings: Settings) -> None:
    async with api_client(settings) as client:
        async with open_ws(ws_url(client, "/ws/matches/9999")) as ws:
            error = await recv_json(ws)
            assert error["type"] == "error" and error["code"] and error["message"]
            with anyio.fail_after(10), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == CLOSE_NOT_FOUND
