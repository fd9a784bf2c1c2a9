"""Seat modes: how the seats of whoever runs matches start, held by one small object they pass down.

Theory of operation. A seat's process starts one of two ways: fresh (``fresh.py``: a sandboxed
interpreter per seat, tens of milliseconds) or forked (``forkserver.py``: from a warm zygote,
with a pool forked ahead of need, a few milliseconds). The seat mode (``Settings.seat_mode``,
:class:`SeatMode`) chooses:

* ``auto`` (the default): forked while the fork server runs here (every isolation layer is
  active and its zygote started), else fresh, with the reason in :meth:`SeatLauncher.status`;
* ``fork``: the fork server or nothing: it must start, and a seat it cannot fork is refused;
* ``fresh``: never the fork server.

Seats with a non-default interpreter or isolation (the test-only ``isolation_override``) start
fresh in ``auto``: the zygote runs the default ones only; ``fork`` refuses them.

Ownership. A :class:`SeatLauncher` holds the mode and the fork server that serves it, if any.
Whoever runs matches owns one and hands it to what opens seats: the app's lifespan gives it to
the match manager (and ``/api/health`` reads its status there), ``arena play``, ``repro`` and
``connect`` make their own, as do the tests and the benchmarks. Nothing here is process-wide.
:func:`serve_seats` is the owner for async code: the fork server starts off the event loop
when the block starts and stops, its seats killed and reaped, when it ends, after the matches
whose seats it forked. :meth:`SeatLauncher.launch` and :meth:`~SeatLauncher.close` are the same
for synchronous owners (a test session, ``arena doctor``). A launcher made directly around
another's fork server (another mode over the same zygote) owns nothing and closes nothing.

A zygote that died is started again by the next seat that asks for it, off the event loop, at
most once per interval (``ForkServer.restart_if_dead``); until then ``auto`` starts seats fresh.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from protocol.errors import LayerUnavailable, SandboxError

from .forkserver import DEFAULT_POOL_SIZE, ForkServer
from .fresh import DEFAULT_ISOLATION, IsolationChoice, open_fresh_seat
from .isolation import isolation_overridden
from .limits import Limits
from .process import SeatProcess

__all__ = ["DEFAULT_POOL_SIZE", "SeatLauncher", "SeatMode", "SeatModeStatus", "serve_seats"]

log = logging.getLogger(__name__)


class SeatMode(enum.StrEnum):
    AUTO = "auto"  # the fork server when it can run here, else fresh
    FORK = "fork"  # the fork server, or refuse
    FRESH = "fresh"  # a fresh sandboxed process per seat


@dataclass(frozen=True, slots=True)
class SeatModeStatus:
    """How a launcher's seats start: for ``/api/health`` and ``arena doctor``."""

    configured: str
    active: str  # "fork" or "fresh"
    reason: str
    pool_size: int = 0


class SeatLauncher:
    """Opens seats in one :class:`SeatMode`, forking them from its fork server when it has one.

    Made by :func:`serve_seats` or :meth:`launch`, which start the fork server the mode asks
    for and own it; made directly, it uses ``server`` (another owner's, or None) and owns nothing.
    """

    def __init__(self, mode: SeatMode | str = SeatMode.AUTO, server: ForkServer | None = None, *,
                 reason: str = "") -> None:
        """``reason``: why seats start fresh without a fork server, when they do.

        Raises:
            ValueError: not a seat mode.
        """
        self.mode = SeatMode(mode)
        self.server = server
        if not reason and server is None:
            reason = "seat_mode is 'fresh'" if self.mode is SeatMode.FRESH else "no fork server was started"
        self.reason = reason
        self._owns_server = False
        # Seats started since this launcher was made, by how ("fork", "fresh"), and those that
        # could not be started (GET /metrics reads them).
        self.started = {"fork": 0, "fresh": 0}
        self.start_failures = 0

    @classmethod
    def launch(
        cls, mode: SeatMode | str = SeatMode.AUTO, *, limits: Limits | None = None,
        pool_size: int = DEFAULT_POOL_SIZE, **switches: bool,
    ) -> SeatLauncher:
        """A launcher in ``mode`` with the fork server it needs started, owned by the caller, who
        must :meth:`close` it. Blocks until the zygote is ready (some 100 ms): run it off the event
        loop. The pool holds seats for ``limits``; ``switches``: the fork server's test-only
        ``seat_landlock`` and ``seat_seccomp``.

        Raises:
            LayerUnavailable: ``mode`` is "fork" and the fork server cannot run here.
            ValueError: not a seat mode.
        """
        chosen = SeatMode(mode)
        if chosen is SeatMode.FRESH:
            return cls(chosen)
        try:
            server = ForkServer.launch(pool_size=pool_size, pool_limits=limits, **switches)
        except LayerUnavailable as exc:
            if chosen is SeatMode.FORK:
                raise
            log.warning("seats start as fresh processes: %s", exc)
            return cls(chosen, reason=str(exc))
        launcher = cls(chosen, server)
        launcher._owns_server = True
        return launcher

    def close(self) -> None:
        """Stop the fork server this launcher started, if any: its seats are killed and reaped. Blocks briefly."""
        if self._owns_server and self.server is not None:
            self.server.close()

    async def fork_server(self) -> ForkServer | None:
        """The fork server the next seat forks from, started again if its zygote died (off the event
        loop); None: the seat starts fresh.

        Raises:
            LayerUnavailable: the mode is "fork" and the fork server does not run.
        """
        if self.mode is SeatMode.FRESH:
            return None
        server = self.server
        if server is not None and not server.is_alive:
            await anyio.to_thread.run_sync(server.restart_if_dead)
        if server is not None and server.is_alive:
            return server
        if self.mode is SeatMode.FORK:
            raise LayerUnavailable(f"the fork server is unavailable: {self.reason or (server and server.failure)}")
        return None

    @asynccontextmanager
    async def open_seat(
        self, limits: Limits, *, python: str | None = None, label: str = "seat",
        isolation: IsolationChoice = DEFAULT_ISOLATION,
    ) -> AsyncIterator[SeatProcess]:
        """Start a bot runtime for one seat, forked or fresh as the mode says; on exit kill it and reap it.

        ``python`` and ``isolation`` choose a fresh seat's interpreter and layers (by default the
        bot interpreter and every layer this machine supports; None: no bubblewrap at all). A seat
        given either, or started under ``isolation_override``, starts fresh in "auto".

        Raises:
            LayerUnavailable: the mode is "fork" and the fork server cannot run this seat.
        """
        is_started = False
        try:
            async with self._start_seat(limits, python, label, isolation) as seat:
                is_started = True
                yield seat
        except Exception:
            if not is_started:
                self.start_failures += 1
            raise

    @asynccontextmanager
    async def _start_seat(
        self, limits: Limits, python: str | None, label: str, isolation: IsolationChoice,
    ) -> AsyncIterator[SeatProcess]:
        if python is not None or isolation is not DEFAULT_ISOLATION or isolation_overridden():
            if self.mode is SeatMode.FORK:
                raise LayerUnavailable("the fork server runs seats with the default interpreter and isolation only")
        elif (server := await self.fork_server()) is not None:
            try:
                pending = await server.checkout(limits)
            except SandboxError as exc:
                if self.mode is SeatMode.FORK:
                    raise LayerUnavailable(str(exc)) from exc
                log.warning("%s: starting a fresh process instead (%s)", label, exc)
            else:
                async with server.open_seat(pending, limits, label) as seat:
                    self.started["fork"] += 1
                    yield seat
                return
        async with open_fresh_seat(limits, python=python, label=label, isolation=isolation) as fresh:
            self.started["fresh"] += 1
            yield fresh

    def status(self) -> SeatModeStatus:
        """How this launcher's seats start now, and why."""
        server = self.server
        if self.mode is SeatMode.FRESH:
            return SeatModeStatus(self.mode.value, "fresh", self.reason)
        if server is not None and server.is_alive:
            info = server.info
            reason = (f"seats forked from a zygote under bubblewrap (Python {info.get('python')}), layers applied "
                      f"per seat (session, rlimits, not dumpable, Landlock ABI {info.get('landlock_abi')}, seccomp "
                      f"with the seat's pid); {server.pool_size} kept ready"
                      f"{'; numpy preloaded (allow_numpy)' if server.has_numpy else ''}")
            return SeatModeStatus(self.mode.value, "fork", reason, server.pool_size)
        why = (server.failure if server is not None else None) or self.reason
        return SeatModeStatus(self.mode.value, "fresh", f"fork server unavailable: {why}")


@asynccontextmanager
async def serve_seats(
    mode: SeatMode | str = SeatMode.AUTO, *, limits: Limits | None = None, pool_size: int = DEFAULT_POOL_SIZE,
    **switches: bool,
) -> AsyncIterator[SeatLauncher]:
    """A seat launcher in ``mode`` for the block: its fork server, if any, starts here (off the
    event loop, with a pool for ``limits``) and stops when the block ends.

    For the app's lifespan (the matches' task group inside the block), ``arena play`` and other
    owners of matches. ``switches``: as for :meth:`SeatLauncher.launch`.

    Raises:
        LayerUnavailable: ``mode`` is "fork" and the fork server cannot run here.
        ValueError: not a seat mode.
    """
    launcher = await anyio.to_thread.run_sync(
        functools.partial(SeatLauncher.launch, mode, limits=limits, pool_size=pool_size, **switches))
    try:
        yield launcher
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(launcher.close)
