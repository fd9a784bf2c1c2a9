"""How a seat stands: its status in each step, and, when it broke the rules of play, what fired.

``SeatStatus`` is Kaggle's set, as every replay and frame spells it: ``ACTIVE`` (to move next)
and ``INACTIVE`` while the game runs, then ``DONE``, or one of the faults ``TIMEOUT``, ``ERROR``
and ``INVALID``, which lose the match. ``FaultLimit`` names what ended a faulty seat; it is set
where the fault is found (the runner's clock, the seat's process, the rules) and stored with
the step, so nobody has to read it back out of the human-readable reason. Both are string
enums: on the wire and in storage they are the same strings as ever.
"""

from __future__ import annotations

import enum

__all__ = ["FaultLimit", "SeatStatus", "is_fault"]


class SeatStatus(enum.StrEnum):
    """A seat's status after a step (``steps[k].statuses``) and at the end of a match."""

    ACTIVE = "ACTIVE"  # moves in the next step
    INACTIVE = "INACTIVE"  # waits while others move
    DONE = "DONE"  # the game ended by its rules, or another seat's fault
    TIMEOUT = "TIMEOUT"  # start-up or move deadline passed, overage bank spent
    ERROR = "ERROR"  # crash, exception, limit hit
    INVALID = "INVALID"  # an illegal or malformed action

    @property
    def is_fault(self) -> bool:
        """Whether the seat broke the rules of play (and so lost)."""
        return self in _FAULTS


_FAULTS = frozenset({SeatStatus.TIMEOUT, SeatStatus.ERROR, SeatStatus.INVALID})


def is_fault(value: object) -> bool:
    """Whether a status as a document holds it (any JSON value) is a fault: the renderer and
    the replay checker read files and frames that may hold anything."""
    return isinstance(value, str) and value in _FAULTS


class FaultLimit(enum.StrEnum):
    """What ended a faulty seat: a resource limit (named as in ``Limits``), a time control (named
    as in the game's configuration), the rules, or the bot itself."""

    CPU = "cpu_s"  # RLIMIT_CPU for the whole match
    MEMORY = "memory_mb"  # the address space (a MemoryError)
    OUTPUT = "output_bytes"  # everything the bot printed
    ACT_TIMEOUT = "actTimeout"  # a move's time and the overage bank
    AGENT_TIMEOUT = "agentTimeout"  # start-up
    RUN_TIMEOUT = "runTimeout"  # the whole match
    RULES = "rules"  # an illegal, oversized or malformed action or reply (INVALID)
    EXCEPTION = "exception"  # the bot's code raised during a move
    CRASH = "crash"  # any other way a bot stops: failed to load, exited, killed by a signal
