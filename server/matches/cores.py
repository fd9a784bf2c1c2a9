"""Fair time under load: at most one thinking seat per core.

Theory of operation
-------------------
A seat's move clock is wall time, and every live match's bots share the machine's cores. With
more bots thinking at once than there are cores, each gets a share of a core and its move
takes longer on the wall than on the CPU: an honest bot would time out because of other
matches, and a bot author could slow everyone else's bots by having his own think to its limit.

So a process that runs matches holds one :class:`CoreGate` of ``cores`` places (by default the
cores this process may run on). The turn of a seat that computes here (a sandboxed process;
not a remote agent, which thinks on its own machine) takes a place if one is free and gives it
back once its move is in, or timed out and its process killed. When every place is taken, the
turn starts all the same, without one: most moves take a moment (the bots that answer at once)
and never needed a core of their own. A move still thinking after ``PROVISIONAL_S``
(``runner.py``, 5 ms) is paused where it is (SIGSTOP: ``SeatProcess.pause``) and waits for a
place (in the order below); once handed one it goes on (SIGCONT) and keeps it to the end of the
move. A seat whose last move took that long will likely think again: its next turn, if no place
is free, waits for one before its clock starts, with no provisional start. A seat between turns
waits on its pipe and uses no CPU, so beyond the few milliseconds a provisional move may take,
the thinking seats never outnumber the cores: each computes on a core of its own, and its wall
time is its CPU time plus what the server itself takes. The time
a move was paused is recorded with it (``SeatTiming.wait_s``) and charged to nothing: neither
the move's budget nor the bank, and the seat's match deadline (``runTimeout``) moves on by as
much (``SeatClock.credit_pause``). A bot that spins past its own deadline still times out:
the pause only stops its clock with it. A link that cannot be paused waits for its place before
its clock starts instead.

Places are shared fairly between the users who started the matches (a challenge's user; the
ladder's matches count as one more): each match takes places through its :class:`CoreShare`,
named by its user, and a place freed goes straight to the user next in turn among those with a
turn waiting (round robin), to that user's turn that has waited longest. So a user who starts
many slow matches gets no more of the cores than any other user with a turn waiting: another
user's match moves at least once per round of the users, not once per round of every waiting
turn. A turn that is cancelled while it waits (its match stopped) leaves the queue, and
passes on a place it was handed meanwhile. Taking a free place does not yield to the event
loop: with cores to spare a move costs two counter updates.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Hashable

import anyio

__all__ = ["CoreGate", "CoreShare", "usable_cores"]


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class CoreGate:
    """``cores`` places for thinking seats, shared round robin between users; see the module docstring."""

    def __init__(self, cores: int) -> None:
        if cores < 1:
            raise ValueError(f"a core gate needs at least one place, not {cores}")
        self.cores = cores
        self.busy = 0  # places taken
        self.waiting = 0  # turns waiting for a place now
        # the turns waiting, by user, the users in turn order (a dict keeps insertion order)
        self._queues: dict[Hashable, deque[anyio.Event]] = {}

    def share(self, user: Hashable) -> CoreShare:
        """The places of a match started by ``user`` (None: the ladder's)."""
        return CoreShare(self, user)

    def try_acquire(self) -> bool:
        """Take a place if one is free now (and no turn waits for one), without waiting."""
        if self.busy < self.cores and not self.waiting:
            self.busy += 1
            return True
        return False

    async def acquire(self, user: Hashable = None) -> float:
        """Take a place for a turn of ``user``'s, waiting for one if none is free; how long it
        waited, in seconds."""
        if self.try_acquire():
            return 0.0
        started = time.monotonic()
        handed = anyio.Event()
        queue = self._queues.get(user)
        if queue is None:
            queue = self._queues[user] = deque()
        queue.append(handed)
        self.waiting += 1
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # handed a place as it was cancelled: the next turn gets it
                self.release()
            else:
                self._leave(user, handed)
            raise
        return time.monotonic() - started

    def release(self) -> None:
        """Give a place back: to the next user in turn with a turn waiting, if any."""
        if not self._queues:
            self.busy -= 1
            return
        user = next(iter(self._queues))
        queue = self._queues.pop(user)
        handed = queue.popleft()
        if queue:  # the user's next turn waits behind every other user's
            self._queues[user] = queue
        self.waiting -= 1
        handed.set()  # the place passes on: busy stays as it is

    def _leave(self, user: Hashable, handed: anyio.Event) -> None:
        queue = self._queues[user]
        queue.remove(handed)
        self.waiting -= 1
        if not queue:
            del self._queues[user]


class CoreShare:
    """A match's way to the places of a :class:`CoreGate`: its turns queue as its user's."""

    __slots__ = ("gate", "user")

    def __init__(self, gate: CoreGate, user: Hashable) -> None:
        self.gate = gate
        self.user = user

    def try_acquire(self) -> bool:
        return self.gate.try_acquire()

    async def acquire(self) -> float:
        return await self.gate.acquire(self.user)

    def release(self) -> None:
        self.gate.release()
