"""Resource limits of one seat, applied by the bot runtime to itself before the bot's code runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits for one seat for the whole match."""

    cpu_s: int = 120  # CPU seconds for the whole match (RLIMIT_CPU; SIGXCPU, then SIGKILL 1 s later)
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


_RUNTIME_KEYS = ("cpu_s", "memory_mb", "open_files", "restricted", "allow_numpy")
