"""Big documents on a real server: long matches, huge moves and large replays stay bounded.

A long match keeps a window of its events in memory and a late joiner gets a bounded
snapshot, then every event gap-free to ``end``; the rest is on ``GET .../events``. A huge
illegal move is INVALID with a short reason, and the documents that name its match stay
small. A large replay streams while the server goes on answering. In each test another
user's match, started before, finishes normally and ``GET /api/health`` stays ok.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from protocol.errors import MAX_REASON_CHARS
from server.app import create_app
from server.config import Settings
from tests.server.agent_client import hello, open_agent, recv, register_remote
from tests.server.conftest import (
    RPS_CYCLE,
    RPS_ROCK,
    RPS_SLOW,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

pytestmark = pytest.mark.timeout(180)

JSON = Any
WINDOW, SNAPSHOT_EVENTS = 300, 40  # the window is at least the spectator queue (256 by default)
HUGE_MOVE = """
def agent(observation, configuration):
    return "x" * 1_000_000
"""
# Quick, but not so quick that 4,000 steps are over before a spectator joins a quarter of the way in.
RPS_BRISK = """
from time import sleep

def agent(observation, configuration):
    sleep(0.0005)
    return observation.step % configuration.signs
"""
LONG_ILLEGAL_MOVE = """
def agent(observation, configuration):
    return "y" * 60_000
"""


def small_windows(tmp_path: Path) -> Settings:
    return quiet_settings(tmp_path, spectator_window_events=WINDOW, spectator_snapshot_events=SNAPSHOT_EVENTS)


class Bystander:
    """Another user's match, started before the abuse: it must finish normally."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.match_id = 0

    async def start(self) -> None:
        bob = await create_user(self.client, "bob")
        slow = await submit_agent(self.client, bob, "bob-slow", "rps", RPS_SLOW)
        rock = await submit_agent(self.client, bob, "bob-rock", "rps", RPS_ROCK)
        match = await start_match(self.client, bob, "rps", [slow["id"], rock["id"]], {"episodeSteps": 150}, seed=1)
        self.match_id = match["id"]

    async def check(self) -> None:
        final = await wait_finished(self.client, self.match_id, timeout_s=60)
        assert final["status"] == "finished" and final["steps"] == 150, final
        assert [s["status"] for s in final["seats"]] == ["DONE", "DONE"]
        await health_ok(self.client)


async def health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text


async def rps_pair(client: httpx.AsyncClient, user: User, first: str, second: str) -> list[int]:
    a = await submit_agent(client, user, f"{user.name}-a", "rps", first)
    b = await submit_agent(client, user, f"{user.name}-b", "rps", second)
    return [a["id"], b["id"]]


async def all_events(client: httpx.AsyncClient, match_id: int, before_seq: int, limit: int = 97) -> list[JSON]:
    """Every event with ``seq`` below ``before_seq``, from ``GET .../events``, page by page."""
    events: list[JSON] = []
    next_seq: int | None = 1
    while next_seq is not None and next_seq < before_seq:
        response = await client.get(f"/api/matches/{match_id}/events",
                                    params={"from": next_seq, "limit": min(limit, before_seq - next_seq)})
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next"}
        events += page["items"]
        next_seq = page["next"]
    return events


def as_step(event: JSON) -> JSON:
    return {k: v for k, v in event.items() if k not in ("type", "seq", "kind")}


async def test_a_late_joiner_of_a_long_match_gets_a_bounded_snapshot_then_every_event(tmp_path: Path) -> None:
    settings = small_windows(tmp_path)
    app = create_app(settings)
    steps = 4000
    async with api_client(settings, app=app) as client:
        bystander = Bystander(client)
        await bystander.start()
        alice = await create_user(client, "alice")
        agents = await rps_pair(client, alice, RPS_BRISK, RPS_ROCK)
        match = await start_match(client, alice, "rps", agents, {"episodeSteps": steps}, seed=5)
        hub = app.state.arena.hub
        most_in_memory = 0
        frames: list[JSON] = []
        raw_snapshot = ""
        with anyio.fail_after(120):
            while (feed := hub.feed(match["id"])) is None or feed.seq < 1000:  # well past the window
                most_in_memory = max(most_in_memory, len(feed.events) if feed is not None else 0)
                await anyio.sleep(0.005)
            async with connect(ws_url(client, f"/ws/matches/{match['id']}"), proxy=None, max_size=None) as ws:
                async for message in ws:
                    assert isinstance(message, str)
                    raw_snapshot = raw_snapshot or message
                    frames.append(json.loads(message))
                    live = hub.feed(match["id"])
                    if live is not None:  # the feed's memory, sampled as the match goes on
                        most_in_memory = max(most_in_memory, len(live.events))
                close_code = ws.close_code
        final = await wait_finished(client, match["id"])
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        snapshot = frames[0]
        older = await all_events(client, match["id"], snapshot["events"][0]["seq"])
        finished = [json.loads(m) async for m in frames_of(client, match["id"])]
        await bystander.check()

    assert final["status"] == "finished" and final["steps"] == steps and len(replay["steps"]) == steps
    assert most_in_memory <= WINDOW
    # The snapshot: the current state and the last SNAPSHOT_EVENTS events, nothing older.
    assert snapshot["type"] == "snapshot" and snapshot["seq"] >= 1000
    assert len(frames) > 100  # it joined while the match was live, and followed it to the end
    assert [e["seq"] for e in snapshot["events"]] == list(range(snapshot["seq"] - SNAPSHOT_EVENTS + 1,
                                                               snapshot["seq"] + 1))
    assert snapshot["state"] == snapshot["events"][-1]["state"] == replay["steps"][snapshot["seq"] - 1]["state"]
    assert len(raw_snapshot) < 64 * 1024  # 40 rps events and the match: not the 1,000 steps so far
    # Then every event gap-free to the end, and end.
    assert [f["type"] for f in frames[1:-1]] == ["event"] * (len(frames) - 2) and frames[-1]["type"] == "end"
    assert [f["seq"] for f in frames[1:]] == list(range(snapshot["seq"] + 1, steps + 2))
    assert close_code == 1000
    # The older events on demand: with the snapshot's and the live ones, the whole stored game.
    assert [e["seq"] for e in older] == list(range(1, snapshot["seq"] - SNAPSHOT_EVENTS + 1))
    whole = [*older, *snapshot["events"], *frames[1:-1]]
    assert [as_step(e) for e in whole] == replay["steps"]
    # The finished match, served from storage: as a late joiner after the end, bounded the same way.
    assert [f["type"] for f in finished] == ["snapshot", "end"]
    assert [e["seq"] for e in finished[0]["events"]] == list(range(steps - SNAPSHOT_EVENTS + 1, steps + 1))
    assert finished[0]["seq"] == steps and finished[1]["seq"] == steps + 1
    assert finished[0]["state"] == replay["steps"][-1]["state"]
    assert finished[0]["events"] == whole[-SNAPSHOT_EVENTS:]


async def frames_of(client: httpx.AsyncClient, match_id: int) -> AsyncIterator[str]:
    """The frames a spectator of the match gets, as text."""
    async with connect(ws_url(client, f"/ws/matches/{match_id}"), proxy=None, max_size=None) as ws:
        async for message in ws:
            assert isinstance(message, str)
            yield message


async def test_the_events_endpoint_pages_and_refuses_bad_ranges(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        agents = await rps_pair(client, alice, RPS_CYCLE, RPS_ROCK)
        match = await start_match(client, alice, "rps", agents, {"episodeSteps": 30}, seed=2)
        await wait_finished(client, match["id"])
        first = (await client.get(f"/api/matches/{match['id']}/events", params={"limit": 20})).json()
        rest = (await client.get(f"/api/matches/{match['id']}/events", params={"cursor": first["next"]})).json()
        past = (await client.get(f"/api/matches/{match['id']}/events", params={"from": 31})).json()
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        errors = [
            await client.get(f"/api/matches/{match['id']}/events", params=params)
            for params in ({"from": 0}, {"limit": 0}, {"limit": 1001}, {"from": "x"})
        ]
        missing = await client.get("/api/matches/9999/events")

    assert [e["seq"] for e in first["items"]] == list(range(1, 21)) and first["next"] == 21
    assert [e["seq"] for e in rest["items"]] == list(range(21, 31)) and rest["next"] is None
    assert past == {"items": [], "next": None}
    assert [as_step(e) for e in first["items"] + rest["items"]] == replay["steps"]
    assert all(e["type"] == "event" for e in first["items"])
    assert [r.status_code for r in errors] == [400, 400, 400, 400]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_a_huge_move_is_invalid_with_a_short_reason_and_the_documents_stay_small(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path)
    async with api_client(settings) as client:
        bystander = Bystander(client)
        await bystander.start()
        mallory = await create_user(client, "mallory")
        async with connect(ws_url(client, "/ws/lobby"), proxy=None, max_size=None) as lobby:
            huge = await start_match(client, mallory, "rps", await rps_pair(client, mallory, HUGE_MOVE, RPS_ROCK))
            ends: dict[int, str] = {}
            with anyio.fail_after(60):
                while huge["id"] not in ends:
                    message = await lobby.recv()
                    assert isinstance(message, str)
                    frame = json.loads(message)
                    if frame["type"] == "match_ended":
                        ends[frame["match"]["id"]] = message
        final = await client.get(f"/api/matches/{huge['id']}")
        listing = await client.get("/api/matches", params={"status": "finished"})
        replay = await client.get(f"/api/matches/{huge['id']}/replay")
        spectator = [m async for m in frames_of(client, huge["id"])]

        long_user = await create_user(client, "trent")
        long_agents = await rps_pair(client, long_user, LONG_ILLEGAL_MOVE, RPS_ROCK)
        long = await start_match(client, long_user, "rps", long_agents)
        long_final = await wait_finished(client, long["id"])
        await bystander.check()

    doc = final.json()
    seat = doc["seats"][0]
    assert (doc["status"], seat["status"], doc["seats"][1]["status"]) == ("finished", "INVALID", "DONE")
    assert "exceeds the limit of 65536 bytes" in seat["reason"] and len(seat["reason"]) <= MAX_REASON_CHARS + 1
    assert len(final.content) < 4096
    assert len(listing.content) < 16 * 1024 and huge["id"] in [m["id"] for m in listing.json()["items"]]
    assert len(ends[huge["id"]]) < 4096  # the lobby's match_ended
    assert len(replay.content) < 16 * 1024 and replay.json()["steps"][-1]["actions"][0] is None  # not stored
    assert sum(len(m) for m in spectator) < 16 * 1024
    # An illegal move under the size bound is stored as played, but its reason quotes a prefix only.
    reason = long_final["seats"][0]["reason"]
    assert long_final["seats"][0]["status"] == "INVALID"
    assert reason.startswith("illegal action at step 1") and "yyyy" in reason and reason.endswith("…")
    assert len(reason) == MAX_REASON_CHARS + 1


async def test_a_remote_agents_huge_action_and_error_message_get_short_reasons(settings: Settings) -> None:
    async with api_client(settings) as client:
        bystander = Bystander(client)
        await bystander.start()
        mallory = await create_user(client, "mallory")
        remote = await register_remote(client, mallory, "far", "rps")
        rock = await submit_agent(client, mallory, "rock", "rps", RPS_ROCK)
        async with open_agent(client, mallory) as ws:
            await hello(ws)
            finals = []
            for answer in ("action", "agent_error"):
                match = await start_match(client, mallory, "rps", [remote, rock["id"]], {"episodeSteps": 10})
                turn = await recv(ws, "turn")
                body: dict[str, JSON] = {"match_id": turn["match_id"], "step": turn["step"], "seat": turn["seat"]}
                if answer == "action":
                    body |= {"type": "action", "action": "\x1b[2J" + "z" * 1_000_000}
                else:
                    body |= {"type": "agent_error", "message": "Traceback\n" + "e" * 1_000_000}
                await ws.send(json.dumps(body))
                finals.append(await wait_finished(client, match["id"]))
        await bystander.check()

    invalid, error = (f["seats"][0] for f in finals)
    assert invalid["status"] == "INVALID" and "exceeds the limit of 65536 bytes" in invalid["reason"]
    assert error["status"] == "ERROR" and "the remote agent reported an error at step 1" in error["reason"]
    assert error["reason"].endswith("…")
    for seat in (invalid, error):
        assert len(seat["reason"]) <= MAX_REASON_CHARS + 1


async def test_a_large_replay_streams_while_the_server_answers(tmp_path: Path) -> None:
    """The replay of a long match is written a page at a time: with the client holding the
    response half-read (the server waits on the socket), other requests and another user's
    match go on, and the document that arrives in the end is the whole stored game."""
    settings = quiet_settings(tmp_path)
    steps = 10_000
    async with api_client(settings, send_buffer_bytes=64 << 10) as client:
        alice = await create_user(client, "alice")
        match = await start_match(client, alice, "rps", await rps_pair(client, alice, RPS_CYCLE, RPS_ROCK),
                                  {"episodeSteps": steps})
        await wait_finished(client, match["id"], timeout_s=120)
        bystander = Bystander(client)
        await bystander.start()
        async with client.stream("GET", f"/api/matches/{match['id']}/replay") as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers  # streamed, not built whole first
            chunks = response.aiter_raw(16 << 10)
            received = [await chunks.__anext__()]
            # The response is under way and this client reads nothing more for now: meanwhile
            # the server answers every other request, and another user's match plays through.
            for _ in range(20):
                await health_ok(client)
            await bystander.check()
            received += [chunk async for chunk in chunks]
        events = await all_events(client, match["id"], steps + 1, limit=1000)

    body = b"".join(received)
    assert len(received) > 2 and len(body) > 1 << 20
    doc = json.loads(body)
    assert {"game", "config", "seed", "seats", "steps"} <= set(doc)
    assert doc["game"] == "rps" and doc["config"]["episodeSteps"] == steps
    assert [s["name"] for s in doc["seats"]] == ["alice-a", "alice-b"]
    assert all(set(s) >= {"name", "status", "reward", "reason"} for s in doc["seats"])
    assert len(doc["steps"]) == steps and [s["step"] for s in doc["steps"]] == list(range(steps))
    assert doc["steps"] == [as_step(e) for e in events]
