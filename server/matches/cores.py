"""Fair time under load: at most one thinking seat per core.

Theory of operation
-------------------
A seat's move clock is wall time, and every live match's bots share the machine's cores. With
more bots thinking at once than there are cores, each gets a share of a core and its move
takes longer on the wall than on the CPU: an honest bot would time out because of other
matches, and a bot author could slow everyone else's bots by having his own think to its limit.

So a process that runs matches holds one :class:`CoreGate` of ``cores`` places (by default the
cores this process may run on). The turn of a seat that computes here (a sandboxed process;
not a remote agent, which thinks on its own machine) first takes a place, in the order the
turns asked for one, and only then does its clock start (``SeatClock.start_move``); it gives the
place back once its move is in, or timed out and its process killed. A seat between turns
waits on its pipe and uses no CPU, so the thinking seats never outnumber the cores: each
computes on a core of its own, and its wall time is its CPU time plus what the server itself
takes. The time a turn waited is recorded with the move (``SeatTiming.wait_s``) and charged to
nothing: neither the move's budget nor the bank, and the seat's match deadline
(``runTimeout``) moves on by as much. A bot that spins past its own deadline still times out:
the place only decides when its clock starts.

A place freed goes straight to the turn that has waited longest (first come, first served),
so no match starves another; a turn that is cancelled while it waits (its match stopped)
leaves the queue, and passes on a place it was handed meanwhile. Taking a free place does not
yield to the event loop: with cores to spare a move costs two counter updates.
"""

from __future__ import annotations

import os
import time
from collections import deque

import anyio

__all__ = ["CoreGate", "usable_cores"]


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class CoreGate:
    """``cores`` places for thinking seats, handed out first come, first served; see the module docstring."""

    def __init__(self, cores: int) -> None:
        if cores < 1:
            raise ValueError(f"a core gate needs at least one place, not {cores}")
        self.cores = cores
        self.busy = 0  # places taken
        self._waiting: deque[anyio.Event] = deque()

    @property
    def waiting(self) -> int:
        """Turns waiting for a place now."""
        return len(self._waiting)

    async def acquire(self) -> float:
        """Take a place, waiting for one if none is free; how long it waited, in seconds."""
        if self.busy < self.cores and not self._waiting:
            self.busy += 1
            return 0.0
        started = time.monotonic()
        handed = anyio.Event()
        self._waiting.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # handed a place as it was cancelled: the next turn gets it
                self.release()
            else:
                self._waiting.remove(handed)
            raise
        return time.monotonic() - started

    def release(self) -> None:
        """Give a place back: to the turn that has waited longest, if any."""
        if self._waiting:
            self._waiting.popleft().set()  # the place passes on: busy stays as it is
        else:
            self.busy -= 1
