"""Limits on what a client may open and send over WebSockets, on a real server: sockets per
client address, spectators per match, frames a second on a read-only socket, and the size of
a frame (refused with an error frame, and cut by the transport far past the limit). Each
refusal is an ``error`` frame with a code and a close code; the server goes on serving others.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.errors import ConfigError
from server.config import Settings
from server.http.transport import TRANSPORT_FRAMES
from tests.server.conftest import (
    RPS_SLOW,
    api_client,
    create_user,
    start_match,
    submit_agent,
    ws_url,
)

JSON = Any
CLOSE_RATE_LIMITED = 4429
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_MESSAGE_TOO_BIG = 1009


def open_ws(url: str, **options: Any) -> connect:
    return connect(url, proxy=None, open_timeout=20, max_size=None, **options)


async def refusal(ws: ClientConnection) -> tuple[JSON, int | None]:
    """The error frame a refused socket gets (skipping what came before it) and its close code."""
    error = None
    with anyio.fail_after(10):
        try:
            async for raw in ws:
                frame = orjson.loads(raw)
                if frame["type"] == "error":
                    error = frame
        except ConnectionClosed:
            pass
    return error, ws.close_code


async def test_sockets_beyond_the_limit_per_client_address_are_refused(settings: Settings) -> None:
    async with api_client(replace(settings, sockets_per_address=3)) as client, AsyncExitStack() as stack:
        url = ws_url(client, "/ws/lobby")
        held = [await stack.enter_async_context(open_ws(url)) for _ in range(3)]
        async with open_ws(url) as extra:
            error, code = await refusal(extra)
        assert code == CLOSE_RATE_LIMITED, (code, error)
        assert error is not None and error["code"] == "rate_limited", error
        assert "3 open WebSockets per client address" in error["message"], error
        await held.pop().close()  # one closed: there is room again
        with anyio.fail_after(10):
            while True:
                async with open_ws(url) as again:
                    with anyio.move_on_after(0.5):
                        await again.recv()  # the lobby says nothing until something happens
                    if again.close_code is None:
                        break
                await anyio.sleep(0.05)  # the server may not have counted the close yet
        assert (await client.get("/api/health")).status_code == 200


async def test_a_full_match_refuses_one_more_spectator_until_one_leaves(settings: Settings) -> None:
    async with api_client(replace(settings, spectators_per_match=2)) as client, AsyncExitStack() as stack:
        alice = await create_user(client, "alice")
        a = (await submit_agent(client, alice, "a", "rps", RPS_SLOW))["id"]
        b = (await submit_agent(client, alice, "b", "rps", RPS_SLOW))["id"]
        match = await start_match(client, alice, "rps", [a, b], {"episodeSteps": 1000})
        url = ws_url(client, f"/ws/matches/{match['id']}")
        watching = []
        for _ in range(2):
            ws = await stack.enter_async_context(open_ws(url))
            assert orjson.loads(await ws.recv())["type"] == "snapshot"
            watching.append(ws)
        async with open_ws(url) as third:
            error, code = await refusal(third)
        assert code == CLOSE_TRY_AGAIN_LATER, (code, error)
        assert error is not None and error["code"] == "full", error
        assert f"match {match['id']} has 2 spectators" in error["message"], error
        # The lobby and other matches are not this match's spectators.
        async with open_ws(ws_url(client, "/ws/lobby")) as lobby:
            with anyio.move_on_after(0.3):
                await lobby.recv()
            assert lobby.close_code is None
        await watching.pop().close()
        with anyio.fail_after(10):
            while True:
                async with open_ws(url) as again:
                    frame = orjson.loads(await again.recv())
                if frame["type"] == "snapshot":
                    break
                await anyio.sleep(0.05)  # the server may not have counted the leaver yet
        # The two still watching were never disturbed.
        for ws in watching:
            assert orjson.loads(await ws.recv())["type"] == "event"
        await client.post(f"/api/matches/{match['id']}/abort", headers=alice.headers)


async def test_a_read_only_socket_that_sends_a_flood_is_cut_off(settings: Settings) -> None:
    async with api_client(replace(settings, read_only_frames_per_s=5)) as client:
        async with open_ws(ws_url(client, "/ws/lobby")) as ws:
            await ws.send("hello?")  # within the rate: answered
            first = orjson.loads(await ws.recv())
            assert first["code"] == "read_only", first
            for _ in range(50):
                try:
                    await ws.send("x")
                except ConnectionClosed:
                    break
            error, code = await refusal(ws)
        assert code == CLOSE_RATE_LIMITED, (code, error)
        assert error is not None and error["code"] == "rate_limited", error
        assert "more than 5 frames a second" in error["message"], error
        async with open_ws(ws_url(client, "/ws/lobby")) as other:  # the server serves others as before
            with anyio.move_on_after(0.3):
                await other.recv()
            assert other.close_code is None


async def test_a_frame_over_the_limit_gets_an_error_and_one_far_over_it_closes_the_socket(
    settings: Settings,
) -> None:
    limit = 1024
    async with api_client(replace(settings, max_frame_bytes=limit)) as client:
        alice = await create_user(client, "alice")
        headers = {"Authorization": f"Bearer {alice.token}"}
        async with open_ws(ws_url(client, "/ws/agent"), additional_headers=headers) as ws:
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            await ws.send(orjson.dumps({"type": "pong", "nonce": "x" * limit}).decode())
            with anyio.fail_after(10):
                while (frame := orjson.loads(await ws.recv()))["type"] != "error":
                    pass
            assert frame["code"] == "too_large" and f"under {limit} bytes" in frame["message"], frame
            # Still served: a small bad frame gets its own error.
            await ws.send("{}")
            with anyio.fail_after(10):
                while (frame := orjson.loads(await ws.recv()))["type"] != "error":
                    pass
            assert frame["code"] != "too_large", frame
            # Far past the limit the transport does not buffer it: the socket is closed.
            await ws.send("x" * (limit * TRANSPORT_FRAMES + 1))
            with anyio.fail_after(10), pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == CLOSE_MESSAGE_TOO_BIG
        assert (await client.get("/api/health")).status_code == 200


@pytest.mark.parametrize(("key", "value", "words"), [
    ("max_frame_bytes", 2 << 20, "at most the protocol's"),
    ("sockets_per_address", 0, "positive integer"),
    ("spectators_per_match", -1, "positive integer"),
    ("read_only_frames_per_s", 0, "positive integer"),
    ("max_body_bytes", 0, "positive integer"),
])
def test_limits_out_of_range_are_refused_at_start(tmp_path: Any, key: str, value: int, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings(db=str(tmp_path / "arena.db"), **{key: value})


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        port = client.base_url.port
        assert port is not None
        for _ in range(3):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(b"POST /api/matches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Authorization: Bearer " + alice.token.encode() +
                              b"\r\nContent-Length: 1000\r\n\r\n{\"game\":")
            await anyio.sleep(0.05)
            await stream.aclose()  # 990 bytes short
        await anyio.sleep(0.2)
        assert (await client.get("/api/health")).status_code == 200
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, [r.getMessage() for r in errors]
