"""Resource limits of one seat, applied by the bot runtime to itself before the bot's code runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "seat_cpu_s"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits for one seat for the whole match."""

    # CPU seconds for the whole match (RLIMIT_CPU; SIGXCPU, then SIGKILL 1 s later). This default is
    # for seats started outside a match's time controls (tools, tests): the server, `arena play`
    # and `arena connect` set it from the time controls with seat_cpu_s, so it never fires first.
    cpu_s: int = 120
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # everything the bot prints; past this the seat is cut off
    log_bytes: int = 64 << 10  # kept of that for the owner to read
    reply_bytes: int = 1 << 20  # one protocol line from the seat
    grace_s: float = 0.5  # between SIGTERM and SIGKILL
    restricted: bool = True  # layer 2, the restricted runtime; False only in tests that probe other layers
    allow_numpy: bool = False  # the operator's opt-in: numpy joins the modules a bot may import

    def for_runtime(self) -> dict[str, Any]:
        """The part the runtime applies to itself, as sent in the ``init`` message."""
        # Not dataclasses.asdict: it deep-copies every field, and this runs for every seat.
        return {key: getattr(self, key) for key in _RUNTIME_KEYS}


def seat_cpu_s(agent_timeout_s: float, run_timeout_s: float, grace_s: float) -> int:
    """The CPU limit under which no seat that keeps its time controls can be killed for CPU.

    A seat computes only while the runner waits on it: at start-up, for at most agentTimeout,
    and during its moves, all of which end by runTimeout (every move's deadline is capped by
    the match's). A seat past a deadline is stopped: SIGTERM, ``grace_s``, SIGKILL. A seat has
    one thread (seccomp refuses new threads and processes; numpy's BLAS is held to one thread),
    so its CPU time never exceeds that wall time. One more second covers the interpreter's start
    and exit and the granularity of RLIMIT_CPU. Give it the largest agentTimeout and runTimeout
    the ranges allow when the seat is prepared before its match is known (the fork server's pool).
    """
    return math.ceil(agent_timeout_s + run_timeout_s + 2 * grace_s) + 1


_RUNTIME_KEYS = ("cpu_s", "memory_mb", "open_files", "restricted", "allow_numpy")
