"""Fair admission of HTTP requests between clients (``server/http/fair.py``): a few of each
client in the app at a time, the rest waiting in order, and a client over its rate slowed, not
refused, while another client is served at once. The middleware is driven directly around an
app that records what it sees, and then on a real server."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest

from protocol.errors import ConfigError
from server.config import Settings
from server.http.fair import FairRequests
from tests.server.conftest import api_client, create_user

Scope = dict[str, Any]


class Recorder:
    """An ASGI app that holds each request until released, and notes who was inside when."""

    def __init__(self) -> None:
        self.inside: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.order: list[str] = []
        self.release = anyio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        who = scope["path"]
        self.order.append(who)
        self.inside[who] = self.inside.get(who, 0) + 1
        self.most[who] = max(self.most.get(who, 0), self.inside[who])
        try:
            await self.release.wait()
        finally:
            self.inside[who] -= 1


def request(token: str | None, who: str, address: str = "10.0.0.1") -> Scope:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {"type": "http", "path": who, "headers": headers, "client": (address, 1234)}


async def call(app: FairRequests, scope: Scope) -> None:
    await app(scope, _nothing, _nothing)


async def _nothing(*_: Any) -> None:
    return None


async def test_a_client_has_its_few_requests_inside_and_another_client_gets_in_at_once() -> None:
    inner = Recorder()
    app = FairRequests(inner, per_client=2, rate_per_s=1000, burst=1000)
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call, app, request("flood", "flood"))
        await anyio.sleep(0.05)
        assert inner.inside == {"flood": 2}  # eight wait outside, costing nothing
        tg.start_soon(call, app, request("other", "other"))
        await anyio.sleep(0.05)
        assert inner.inside == {"flood": 2, "other": 1}  # not behind the flood's eight
        inner.release.set()
    assert inner.most == {"flood": 2, "other": 1}
    assert inner.order.count("flood") == 10


async def test_without_a_token_a_client_is_its_address() -> None:
    inner = Recorder()
    app = FairRequests(inner, per_client=1, rate_per_s=1000, burst=1000)
    async with anyio.create_task_group() as tg:
        for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
            tg.start_soon(call, app, request(None, address, address))
        await anyio.sleep(0.05)
        assert inner.inside == {"10.0.0.1": 1, "10.0.0.2": 1}
        inner.release.set()


async def test_a_client_over_its_rate_is_slowed_to_it_not_refused() -> None:
    inner = Recorder()
    inner.release.set()
    app = FairRequests(inner, per_client=100, rate_per_s=20, burst=10)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(30):  # ten in the burst, twenty more at twenty a second
            tg.start_soon(call, app, request("fast", "fast"))
    assert time.monotonic() - started >= 0.9
    assert inner.order.count("fast") == 30
    # Another client meanwhile was never slowed: its own burst is whole.
    started = time.monotonic()
    for _ in range(5):
        await call(app, request("calm", "calm"))
    assert inner.order.count("calm") == 5


async def test_a_client_that_calls_one_at_a_time_still_keeps_to_the_rate() -> None:
    """Nothing in flight between its calls: the client's state must outlive them, or it would
    start each call with a whole burst."""
    inner = Recorder()
    inner.release.set()
    app = FairRequests(inner, per_client=4, rate_per_s=50, burst=5)
    started = time.monotonic()
    for _ in range(30):
        await call(app, request("serial", "serial"))
    assert time.monotonic() - started >= (30 - 5) / 50 * 0.9


async def test_on_a_real_server_a_flood_is_answered_in_full_and_slowed(settings: Settings) -> None:
    rate = 20
    async with api_client(replace(settings, requests_per_client=2, requests_per_client_s=rate)) as client:
        alice = await create_user(client, "alice")
        started = time.monotonic()
        statuses: list[int] = []

        async def ask() -> None:
            statuses.append((await client.get("/api/agents", headers=alice.headers)).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(3 * rate):
                tg.start_soon(ask)
        elapsed = time.monotonic() - started
        assert statuses == [200] * (3 * rate)
        assert elapsed >= (3 * rate - 2 * rate) / rate * 0.9  # past the burst, at the rate
        async with httpx.AsyncClient(base_url=client.base_url, trust_env=False) as other:
            assert (await other.get("/api/health")).status_code == 200


@pytest.mark.parametrize("key", ["requests_per_client", "requests_per_client_s"])
def test_the_request_limits_must_allow_a_request(tmp_path: Any, key: str) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        Settings(db=str(tmp_path / "arena.db"), **{key: 0})
