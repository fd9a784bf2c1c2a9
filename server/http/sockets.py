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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from starlette.websockets import WebSocket

from protocol.errors import ServerDraining
from server.http.errors import CLOSE_GOING_AWAY, CLOSE_NORMAL, close_socket
from server.matches.hub import SEND_TIMEOUT_S

__all__ = ["OpenSocket", "OpenSockets"]

_CLOSE_S = 1.0  # close_socket gives up on a peer after this long


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

    def __init__(self) -> None:
        self.is_draining = False  # the server is draining: a socket that ends closes with 1001
        self.is_closed = False  # close_all began: no new socket is served
        self._open: set[OpenSocket] = set()
        self._emptied: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._open)

    @asynccontextmanager
    async def open(self, ws: WebSocket) -> AsyncIterator[OpenSocket]:
        """Serve ``ws`` for the block's duration, in its ``scope``: a drain cancels the block and
        closes the socket with 1001 (the block then ends without error).

        Raises:
            ServerDraining: the server is closing its sockets before it stops.
        """
        if self.is_closed:
            raise ServerDraining("the server is shutting down: connect to another one, or again after its restart")
        sock = OpenSocket(self)
        self._open.add(sock)
        try:
            with sock.scope:
                yield sock
            if sock.scope.cancelled_caught:
                await close_socket(ws, CLOSE_GOING_AWAY)
        finally:
            self._open.discard(sock)
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
