"""Draining before a stop: SIGTERM (or a first Ctrl-C) lets the live matches finish.

Theory of operation
-------------------
Left to itself, uvicorn stops on SIGTERM or SIGINT by closing its listening sockets and every
open connection (a WebSocket with 1012, service restart, and no ``end``), then the app's
lifespan, whose task group cancels every match at once (each stored ``aborted``); then it
raises the signal again, so that the process ends 143 or 130. DESIGN.md ("Operations") asks
for a drain, and :class:`DrainingServer` is uvicorn's server with one:

1. The first SIGTERM or SIGINT ends uvicorn's main loop as a signal always did; its handler is
   the event loop's (``loop.add_signal_handler``), so it runs between callbacks, never in the
   middle of one. Before uvicorn's own shutdown, while the listening sockets still take
   requests, :func:`drain` runs.
2. The match manager starts no new match (``ServerDraining``: ``POST /api/matches`` gets 503),
   the ladder's scheduler and a worker's claim loop stop, ``GET /api/health`` says
   ``draining`` (503), and a WebSocket whose stream ends closes with 1001 (going away).
3. The live matches run on until they end, or until ``drain_timeout_s`` has passed: those still
   running then are stopped, each stored ``aborted`` with the reason, its seats killed and its
   spectators sent ``end``. A second signal stops them at once, the same way, with a reason
   that says so (an operator's Ctrl-C twice).
4. Every WebSocket still open is closed with 1001 (``server/http/sockets.py``); a spectator whose
   match has ended gets what is left of its stream, ``end`` included, first.
5. uvicorn's shutdown follows: it finds no WebSocket left to close with 1012, and the lifespan
   ends with no match running; the fork server and every seat process are reaped there, as at
   any shutdown, and whatever a failure left unfinished is stored aborted.

The signal is not raised again: a drained server has done what the signal asked, and the
process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import anyio
import uvicorn
from starlette.applications import Starlette

from server.state import ArenaState

__all__ = ["DrainingServer", "drain"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def drain(state: ArenaState, timeout_s: float, cut_short: anyio.CancelScope) -> None:
    """Drain the arena (steps 2 to 4 of the module docstring); ``cut_short`` cancelled (before
    or during the wait) stops the live matches without waiting any longer."""
    manager = state.manager
    manager.start_draining()
    state.sockets.start_draining()
    started = anyio.current_time()
    live = len(manager.running)
    if live:
        log.info("draining: no new match starts; %d live matches may finish within %g s", live, timeout_s)
    with cut_short, anyio.move_on_after(timeout_s):
        await manager.wait_idle()
    stopped = 0
    if manager.running:
        if cut_short.cancel_called:
            reason = f"server shut down: stopped by a second signal before the drain timeout ({timeout_s:g} s)"
        else:
            reason = f"server shut down: drain timeout ({timeout_s:g} s) passed"
        stopped = await manager.stop_all(reason)
        log.warning("drain: %d matches stopped (%s)", stopped, reason)
    cut = await state.sockets.close_all()
    log.info("drained in %.1f s: %d of %d live matches ended by themselves, %d stopped; %d sockets closed",
             anyio.current_time() - started, live - stopped, live, stopped, cut)


class DrainingServer(uvicorn.Server):
    """uvicorn's server that drains the arena ``app`` (made by ``create_app``) before it stops;
    see the module docstring."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app
        self.signals = 0  # SIGTERM and SIGINT received so far
        self._cut_short: anyio.CancelScope | None = None  # cancelled by a second signal

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT handled on the event loop while serving (uvicorn's own handler
        would raise them again at the end)."""
        self._cut_short = anyio.CancelScope()
        if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._signalled, sig)
        try:
            yield
        finally:
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)

    def _signalled(self, sig: int) -> None:
        self.signals += 1
        name = signal.Signals(sig).name
        if self.signals == 1:
            log.info("%s: draining before the stop (again to stop the live matches at once)", name)
            self.should_exit = True
        elif self._cut_short is not None and not self._cut_short.cancel_called:
            log.warning("%s again: stopping the live matches now", name)
            self._cut_short.cancel()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Drain, then shut down as uvicorn does (its listening sockets answer until then)."""
        state: ArenaState = self.app.state.arena
        cut_short = self._cut_short if self._cut_short is not None else anyio.CancelScope()
        try:
            await drain(state, state.settings.drain_timeout_s, cut_short)
        except Exception:  # our bug: the lifespan's end still stops (and stores aborted) what runs
            log.exception("the drain failed; shutting down without it")
        await super().shutdown(sockets)
