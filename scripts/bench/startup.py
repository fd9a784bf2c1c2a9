"""Seat start-up: from asking for a seat until its bot says ``ready``, per seat-start mode.

A *seat-start mode* is one way of getting a sandboxed seat: a fresh process per seat with
every isolation layer the machine supports (the reference), the same with no layer, and
the fork server (seats forked from one warm zygote, a pool of them forked ahead of need).
Modes live in :data:`SEAT_MODES`; every benchmark that starts seats (start-up here, matches
in ``moves`` and ``kaggle``) takes its seats from a mode, so a new way of starting seats is
one more :func:`register_seat_mode` call and shows up as one more column. A mode's
``session`` is entered once around a whole benchmark (the fork server starts its zygote there)
and yields the function that opens one seat.

The modes alternate within each round, so a noisy machine slows them alike; the ratio rows
are per-round ratios against the reference mode.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from server.matches.games import get_game, resolve_config
from server.matches.seats import AgentLink, SeatStart, open_process_seat
from server.sandbox import Limits, SeatLauncher, serve_seats
from server.sandbox.forkserver import DEFAULT_POOL_SIZE
from server.sandbox.isolation import isolation_override, isolation_status
from server.sandbox.process import bot_python
from server.sandbox.view import RUNTIME_PATH

from ._common import Row, Section, ratios

__all__ = [
    "FORK_MODE",
    "REFERENCE_MODE",
    "SEAT_MODES",
    "SeatMode",
    "SeatOpener",
    "active_isolation_layers",
    "one_seat",
    "register_seat_mode",
    "run",
    "startup_ms",
]

INSTANT_BOT = "def agent(obs, config):\n    return 0\n"

SeatOpener = Callable[[str], AbstractAsyncContextManager[AgentLink]]
"""Opens one seat for a bot's code; the seat is stopped and reaped when the block exits."""


@dataclass(frozen=True, slots=True)
class SeatMode:
    """One way of starting seats."""

    name: str
    session: Callable[[], AbstractAsyncContextManager[SeatOpener]]
    is_full_sandbox: bool  # every layer on: used where a benchmark asks for "the full sandbox"
    description: str = ""


SEAT_MODES: dict[str, SeatMode] = {}
REFERENCE_MODE = "fresh, all layers"
FORK_MODE = "forkserver, all layers"


def register_seat_mode(mode: SeatMode) -> None:
    """Add a seat-start mode to every benchmark that starts seats (e.g. a fork server)."""
    SEAT_MODES[mode.name] = mode


@asynccontextmanager
async def _fresh_all_layers() -> AsyncIterator[SeatOpener]:
    # A fresh seat's default isolation: every layer this machine supports, probed once per process.
    launcher = SeatLauncher("fresh")

    @asynccontextmanager
    async def open_seat(code: str) -> AsyncIterator[AgentLink]:
        async with open_process_seat(launcher, code, Limits()) as seat:
            yield seat

    yield open_seat


@asynccontextmanager
async def _forkserver() -> AsyncIterator[SeatOpener]:
    # A zygote for this session (started here, off the clock) with its pool of seats forked ahead.
    async with serve_seats("fork", limits=Limits(), pool_size=DEFAULT_POOL_SIZE) as launcher:
        @asynccontextmanager
        async def open_seat(code: str) -> AsyncIterator[AgentLink]:
            async with open_process_seat(launcher, code, Limits()) as seat:
                yield seat

        yield open_seat


@asynccontextmanager
async def _fresh_no_layers() -> AsyncIterator[SeatOpener]:
    launcher = SeatLauncher("fresh")

    @asynccontextmanager
    async def open_seat(code: str) -> AsyncIterator[AgentLink]:
        # No bubblewrap (namespaces, seccomp, filesystem) and no restricted runtime (layer 2);
        # the runtime still sets its own rlimits, which cost nothing measurable.
        with isolation_override(None):
            async with open_process_seat(launcher, code, Limits(restricted=False)) as seat:
                yield seat

    yield open_seat


register_seat_mode(SeatMode(REFERENCE_MODE, _fresh_all_layers, True,
                            "a new bubblewrap + interpreter per seat, every layer the machine supports"))
register_seat_mode(SeatMode("fresh, no layers", _fresh_no_layers, False,
                            "a new interpreter per seat, without bubblewrap or the restricted runtime"))
register_seat_mode(SeatMode(FORK_MODE, _forkserver, True,
                            f"seats forked from one zygote in the outer layers, per-seat layers applied, "
                            f"{DEFAULT_POOL_SIZE} kept ready"))


def active_isolation_layers() -> list[str]:
    """The bubblewrap layers this machine supports (what "all layers" includes beyond layers 1-5)."""
    status = isolation_status(bot_python(), RUNTIME_PATH)
    return [name for name, state in status.items() if state.active]


_CONFIG = resolve_config(get_game("rps"), None)


async def one_seat(open_seat: SeatOpener, code: str = INSTANT_BOT) -> tuple[float, float]:
    """Start one seat: milliseconds until ready, and until it is closed again."""
    started = time.perf_counter()
    async with open_seat(code) as seat:
        await seat.start(SeatStart(seat=0, seed=1, configuration=_CONFIG))
        ready = time.perf_counter()
    closed = time.perf_counter()
    return (ready - started) * 1e3, (closed - started) * 1e3


async def startup_ms(mode: str = REFERENCE_MODE) -> float:
    """From asking ``mode`` for a seat until its bot says ready, in ms (one seat, one session)."""
    async with SEAT_MODES[mode].session() as open_seat:
        ready_ms, _ = await one_seat(open_seat)
    return ready_ms


async def run(quick: bool) -> Section:
    """Every registered mode, alternating within each round; ratios against the reference."""
    rounds = 12 if quick else 50
    section = Section("Seat start-up")
    layers = active_isolation_layers()
    section.notes.append(f"'all layers' on this machine: layers 1-5 plus {', '.join(layers) or 'no bubblewrap layer'}")
    ready: dict[str, list[float]] = {name: [] for name in SEAT_MODES}
    cycle: dict[str, list[float]] = {name: [] for name in SEAT_MODES}
    async with AsyncExitStack() as stack:
        openers = {name: await stack.enter_async_context(mode.session()) for name, mode in SEAT_MODES.items()}
        for open_seat in openers.values():  # warm-up: page cache, the seccomp filter, first imports
            for _ in range(2):
                await one_seat(open_seat)
        for _ in range(rounds):
            for name, open_seat in openers.items():
                ready_ms, closed_ms = await one_seat(open_seat)
                ready[name].append(ready_ms)
                cycle[name].append(closed_ms)
    for name, mode in SEAT_MODES.items():
        target = "<= 3 ms" if mode.is_full_sandbox and name != REFERENCE_MODE else ""
        if name == REFERENCE_MODE:
            target = "reference: the fork server >= 5x faster"
        section.add(Row(f"start-up to ready, {name}", "ms", ready[name], target))
    for name in SEAT_MODES:
        section.add(Row(f"start to closed (whole seat life), {name}", "ms", cycle[name]))
    for name, mode in SEAT_MODES.items():
        if name == REFERENCE_MODE:
            continue
        target = ">= 5x" if mode.is_full_sandbox else ""
        section.add(Row(f"speed-up of '{name}' over '{REFERENCE_MODE}' (ready)", "x",
                        ratios(ready[REFERENCE_MODE], ready[name]), target, is_ratio=True))
    section.notes.append(f"{rounds} seats per mode, modes alternating, each seat closed before the next starts; "
                         f"'{FORK_MODE}' keeps {DEFAULT_POOL_SIZE} seats forked ahead (server/sandbox/forkserver.py)")
    return section
