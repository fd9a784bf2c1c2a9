"""What the match manager has counted since the process started: moves recorded, matches ended
by status, seats' outcomes, matches claimed from the queue. Plain integers, bumped where the
manager already does the work; ``GET /metrics`` reads them when it is scraped (``server/http/metrics.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.messages import StepRecord
from protocol.status import SeatStatus
from server.storage import MatchRecord, MatchStatus

__all__ = ["ENDED", "OUTCOMES", "MatchCounts"]

ENDED = (MatchStatus.FINISHED, MatchStatus.ABORTED)  # how a match ends
OUTCOMES = (SeatStatus.DONE, SeatStatus.TIMEOUT, SeatStatus.ERROR, SeatStatus.INVALID)  # how a seat ends


@dataclass(slots=True)
class MatchCounts:
    """Counts of one process's matches since it started; every one only grows."""

    moves: int = 0  # steps recorded after each match's initial state
    claims: int = 0  # matches claimed from the queue (a cluster's workers)
    ended: dict[MatchStatus, int] = field(default_factory=lambda: dict.fromkeys(ENDED, 0))
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    async def count_step(self, record: StepRecord) -> None:
        """A step hook (``StepLog``): one move more, unless it is the initial state (step 0)."""
        if record.step:
            self.moves += 1

    def count_end(self, record: MatchRecord) -> None:
        """A match this process stored ended: its status and, if it was played out, its seats' outcomes."""
        if record.status in self.ended:
            self.ended[record.status] += 1
        for seat in record.seats:
            if seat.status is not None and seat.status in self.outcomes:
                self.outcomes[seat.status] += 1
