"""Every open WebSocket of the app, so that a draining server closes them all with 1001.

Theory of operation. Each WebSocket handler (a spectator, the lobby, a remote agent) runs its
work inside ``OpenSockets.open(ws)``: an ``OpenSocket`` whose cancel scope the work runs in.
When the server drains before it stops (``server/drain.py``), it first sets ``is_draining``:
from then on a socket whose stream ends (a spectator after its match's ``end``) closes with
``CLOSE_GOING_AWAY`` rather than ``CLOSE_NORMAL``, so that its client knows to come back to
another server, not that it is done. Once no match runs here any more, ``close_all`` refuses
new sockets (``ServerDraining``: an ``error`` frame and 1001) and ends the open ones: every
socket is cancelled at once and closed with ``CLOSE_GOING_AWAY``, except one that ends by
itself (``ends_by_itself``: a spectator whose match has ended, still sending the last events
and ``end``, or one sent a stored match), which is left to finish as it would have, within
``SEND_TIMEOUT_S`` (a spectator that does not read is dropped by then). Only then does the
server stop listening: uvicorn would close what is left with 1012 (service restart), and
without ``end``.

Limits. Every socket counts against its client address (the ASGI peer; behind a proxy listed
in ``forwarded_allow_ips``, the forwarded one): beyond ``per_address`` open at once, a new one
is refused with an ``error`` frame and 4429 (``RateLimited``). A spectator counts against its
match too: beyond ``per_match``, 1013, try again later (``Full``). Neither asks the database:
they bound what sockets cost this process (descriptors, memory, its event loop), which each
front protects for itself. What a socket may send is bounded by its handler, with a
:class:`FrameRate` (and the transport's frame size, ``max_frame_bytes``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from starlette.websockets import WebSocket

from protocol.errors import Full, RateLimited, ServerDraining
from server.http.errors import CLOSE_GOING_AWAY, CLOSE_NORMAL, close_socket
from server.matches.hub import SEND_TIMEOUT_S

__all__ = ["FrameRate", "OpenSocket", "OpenSockets"]

_CLOSE_S = 1.0  # close_socket gives up on a peer after this long


_K = TypeVar("_K")


def _never() -> bool:
    return False


class OpenSocket:
    """One WebSocket being served: its work runs in ``scope``."""

    __slots__ = ("ends_by_itself", "scope", "sockets")

    def __init__(self, sockets: OpenSockets) -> None:
        self.sockets = sockets
        self.scope = anyio.CancelScope()
        # Whether its handler is sure to end by itself within SEND_TIMEOUT_S: then a drain lets
        # it send what it has left rather than cut it off (set by the handler as it learns it).
        self.ends_by_itself: Callable[[], bool] = _never

    @property
    def close_code(self) -> int:
        """The code to close with when the socket's work is done: 1001 while the server drains."""
        return CLOSE_GOING_AWAY if self.sockets.is_draining else CLOSE_NORMAL


class OpenSockets:
    """The app's open WebSockets; see the module docstring."""

    def __init__(self, per_address: int = 2048, per_match: int = 2000) -> None:
        self.per_address = per_address  # open sockets of one client address, at most
        self.per_match = per_match  # spectators of one match, at most
        self.is_draining = False  # the server is draining: a socket that ends closes with 1001
        self.is_closed = False  # close_all began: no new socket is served
        self._open: set[OpenSocket] = set()
        self._by_address: Counter[str] = Counter()
        self._by_match: Counter[int] = Counter()
        self._emptied: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._open)

    @asynccontextmanager
    async def open(self, ws: WebSocket, *, match_id: int | None = None) -> AsyncIterator[OpenSocket]:
        """Serve ``ws`` (a spectator of ``match_id``, if given) for the block's duration, in its
        ``scope``: a drain cancels the block and closes the socket with 1001 (the block then
        ends without error).

        Raises:
            ServerDraining: the server is closing its sockets before it stops.
            RateLimited: its client address has ``per_address`` sockets open.
            Full: the match has ``per_match`` spectators.
        """
        if self.is_closed:
            raise ServerDraining("the server is shutting down: connect to another one, or again after its restart")
        address = ws.client.host if ws.client is not None else ""
        if self._by_address[address] >= self.per_address:
            raise RateLimited(f"at most {self.per_address} open WebSockets per client address; close one first")
        if match_id is not None and self._by_match[match_id] >= self.per_match:
            raise Full(f"match {match_id} has {self.per_match} spectators, the most it takes; try again later")
        sock = OpenSocket(self)
        self._open.add(sock)
        self._by_address[address] += 1
        if match_id is not None:
            self._by_match[match_id] += 1
        try:
            with sock.scope:
                yield sock
            if sock.scope.cancelled_caught:
                await close_socket(ws, CLOSE_GOING_AWAY)
        finally:
            self._open.discard(sock)
            _uncount(self._by_address, address)
            if match_id is not None:
                _uncount(self._by_match, match_id)
            if not self._open and self._emptied is not None:
                self._emptied.set()

    def start_draining(self) -> None:
        """From now on, a socket whose work ends closes with 1001 (going away)."""
        self.is_draining = True

    async def close_all(self) -> int:
        """Refuse new sockets and close the open ones with 1001, letting those that end by
        themselves finish first; returns how many were cut off."""
        self.is_draining = self.is_closed = True
        cut = 0
        for sock in list(self._open):
            if not sock.ends_by_itself():
                sock.scope.cancel()
                cut += 1
        with anyio.move_on_after(SEND_TIMEOUT_S + _CLOSE_S):
            await self._wait_empty()
        for sock in list(self._open):  # what is still there has overstayed its own deadline
            if not sock.scope.cancel_called:
                sock.scope.cancel()
                cut += 1
        with anyio.move_on_after(2 * _CLOSE_S):
            await self._wait_empty()
        return cut

    async def _wait_empty(self) -> None:
        while self._open:
            self._emptied = anyio.Event()
            await self._emptied.wait()
        self._emptied = None


def _uncount(counter: Counter[_K], key: _K) -> None:
    """One fewer of ``key``; a key counted down to none is removed (the counters stay as small
    as what is open)."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class FrameRate:
    """What a socket may send: ``per_s`` frames a second on average, in bursts of up to
    ``burst`` (a token bucket)."""

    def __init__(self, per_s: float, burst: float) -> None:
        self.per_s = per_s
        self.burst = burst
        self.tokens = burst
        self.last = time.monotonic()
        self.refused = 0  # frames over the rate so far

    def take(self) -> bool:
        """Count one frame: False when it is over the rate."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_s)
        self.last = now
        if self.tokens < 1.0:
            self.refused += 1
            return False
        self.tokens -= 1.0
        return True
