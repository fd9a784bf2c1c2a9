"""One seat's clock through a match: the time per move, the overage bank and the match's deadline.

Each move is given ``actTimeout`` plus what is left of the seat's overage bank, never past the
whole match's ``runTimeout``; a remote seat also gets its connection's measured network
allowance, added to the budget and never charged to the bank. A move that arrives pays the bank
what it took beyond ``actTimeout`` (and the allowance); one that does not arrive within its
budget empties the bank and is a TIMEOUT, named for the limit that ran out. A turn that waited
for a core before its move was timed, or was paused during it (``server/matches/cores.py``), is
charged nothing for that: the seat's match deadline moves on by as much. The runner holds one :class:`SeatClock`
per seat and reads the monotonic clock itself: here the time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.errors import AgentTimeout
from protocol.messages import JSON, SeatTiming
from protocol.status import FaultLimit

from .seats import NetworkLink

__all__ = ["SeatClock"]


class SeatClock:
    """The clock of one seat. A move is timed by :meth:`start_move` and :meth:`stop_move`, then
    :meth:`time_out` if it did not arrive within its budget."""

    __slots__ = ("_allowance_s", "_budget_s", "_started", "_waited_s", "act_s", "bank_s", "network",
                 "run_deadline", "run_timeout_s", "thought_long")

    def __init__(self, config: Mapping[str, JSON], run_deadline: float, network: NetworkLink | None = None) -> None:
        """``config`` holds the match's time controls; ``run_deadline`` is when the match's
        ``runTimeout`` runs out (on the clock the times are given in); ``network`` is the seat's
        link when it plays over the network."""
        self.act_s = float(config["actTimeout"])
        self.bank_s = float(config["remainingOverageTime"])
        self.run_timeout_s = float(config["runTimeout"])
        self.run_deadline = run_deadline
        self.network = network
        self._allowance_s: float | None = None  # the network allowance of the move under way
        self._waited_s: float | None = None  # how long its turn waited for a core
        self._started = 0.0
        self._budget_s = 0.0
        # Its last move took a while of its own (the core gate's note: it waits for a core first).
        self.thought_long = False

    def start_move(self, now: float, waited_s: float | None = None) -> float:
        """Start timing a move at ``now``, after its turn waited ``waited_s`` for a core (None:
        it took none); the time it may take, in seconds."""
        # A remote seat's measured network allowance: more time for this move, never charged to the bank.
        self._allowance_s = self.network.move_allowance_s() if self.network is not None else None
        self._waited_s = waited_s
        if waited_s:
            self.run_deadline += waited_s
        self._started = now
        self._budget_s = min(self.act_s + (self._allowance_s or 0.0) + self.bank_s, self.run_deadline - now)
        return self._budget_s

    def credit_pause(self, paused_s: float) -> None:
        """The seat was paused ``paused_s`` during its move, for a core (``cores.py``): charged
        nothing, and the match's deadline moves on by as much."""
        self._started += paused_s
        self.run_deadline += paused_s
        self._waited_s = (self._waited_s or 0.0) + paused_s

    def stop_move(self, now: float) -> float:
        """The move ended at ``now``: the bank pays what it took beyond its time; its wall time."""
        wall_s = now - self._started
        self.bank_s = max(0.0, self.bank_s - max(0.0, wall_s - self.act_s - (self._allowance_s or 0.0)))
        return wall_s

    def time_out(self, step: int) -> AgentTimeout:
        """The move (of ``step``) did not arrive within its budget: the bank is spent; the fault,
        naming the limit that ran out (the match's time, or the move's)."""
        self.bank_s = 0.0
        if self._started + self._budget_s >= self.run_deadline:
            return AgentTimeout(f"match time limit reached (runTimeout {self.run_timeout_s:g} s)",
                                limit=FaultLimit.RUN_TIMEOUT)
        credit = f" + network allowance {self._allowance_s:.3g} s" if self._allowance_s is not None else ""
        return AgentTimeout(f"no move within {self._budget_s:.3g} s at step {step} "
                            f"(actTimeout {self.act_s:g} s + overage bank{credit})", limit=FaultLimit.ACT_TIMEOUT)

    def timing(self, wall_s: float, cpu_s: float | None) -> SeatTiming:
        """Where the seat's time went in the move just timed (``cpu_s`` as the seat measured it)."""
        allowance_s = None if self._allowance_s is None else round(self._allowance_s, 6)
        wait_s = None if self._waited_s is None else round(self._waited_s, 6)
        return SeatTiming(wall_s=round(wall_s, 6), cpu_s=cpu_s, bank_s=round(self.bank_s, 6), allowance_s=allowance_s,
                          wait_s=wait_s)
