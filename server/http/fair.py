"""Fair admission of HTTP requests between clients: a few of each at a time, at a bounded rate.

Theory of operation
-------------------
One process serves every client on one event loop. A client that keeps many requests in
flight (a flood of match requests, each refused by a limit) would have as many tasks ready at
each turn of the loop as it has requests, and another client's request would wait behind all
of them at each of its own steps (reading its token, its body, storing its match); even
refused at once, a flood of requests keeps the loop busy with nothing else.

:class:`FairRequests` (an ASGI middleware) lets each client have ``per_client`` requests in
the app at a time, at ``rate_per_s`` a second on average (in bursts of up to ``burst``). Its
other requests wait, in the order they came, before anything of them is read, and cost
nothing meanwhile: a request over the rate is delayed, not refused, so a client that asks too
fast is slowed to the rate and gets every answer. A client is the token its
``Authorization`` header carries (users behind one address are apart) or, without one, its
address. Accounts are free, but an address makes few of them an hour
(``signups_per_address_hour``), so a flood through many accounts stays bounded too. A client
is forgotten once it has nothing in flight and its burst has come back. Only plain HTTP passes
here; WebSockets have limits of their own (``server/http/sockets.py``).
"""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["FairRequests"]

_SWEEP_EVERY = 1024  # requests between two sweeps of the clients forgotten


class _Client:
    __slots__ = ("last", "places", "requests", "tokens")

    def __init__(self, per_client: int, burst: float, now: float) -> None:
        self.places = anyio.Semaphore(per_client)
        self.requests = 0  # in the app or waiting for a place
        self.tokens = burst  # requests it may make at once (below 0: how far it is behind the rate)
        self.last = now


class FairRequests:
    """``per_client`` requests of each client in the app at a time, at ``rate_per_s``; see the
    module docstring."""

    def __init__(self, app: ASGIApp, per_client: int, rate_per_s: float, burst: float) -> None:
        self.app = app
        self.per_client = per_client
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clients: dict[bytes | str, _Client] = {}
        self._calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep(now)
        key = _client_key(scope)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(self.per_client, self.burst, now)
        client.tokens = min(self.burst, client.tokens + (now - client.last) * self.rate_per_s) - 1
        client.last = now
        client.requests += 1
        try:
            if client.tokens < 0:  # over the rate: its turn comes when the rate allows it
                await anyio.sleep(-client.tokens / self.rate_per_s)
            async with client.places:
                await self.app(scope, receive, send)
        finally:
            client.requests -= 1

    def _sweep(self, now: float) -> None:
        """Forget the clients with nothing in flight whose burst has come back."""
        for key, client in list(self._clients.items()):
            if not client.requests and client.tokens + (now - client.last) * self.rate_per_s >= self.burst:
                del self._clients[key]


def _client_key(scope: Scope) -> bytes | str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    client = scope.get("client")
    return str(client[0]) if client else ""
