"""The step log of a match: every step the runner records, kept and handed on as it is played.

``run_match`` hands each step (the initial state, every move, the last step) to its recorder.
:class:`StepLog` is that recorder wherever a match is played: it keeps the steps in order
(``arena play`` prints them, ``arena repro`` compares them with the recording), or not (a
server's match lives in storage, not in memory), and passes each one to its hooks as it comes.
The server's hooks are here: :func:`store_and_publish` appends the step to storage and to the
live feed, encoded once for both, and :class:`SeatDebugFeed` publishes what each seat printed
and its timing to the seat's owner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

from protocol.messages import SeatDebug, SeatTiming, StepRecord
from server.storage import EncodedStep, Storage

from .hub import MatchFeed
from .seats import AgentLink

__all__ = ["SeatDebugFeed", "StepHook", "StepLog", "store_and_publish"]

StepHook = Callable[[StepRecord], Awaitable[None]]
"""Called with every step as it is recorded, in order; a hook that raises ends the match."""


class StepLog:
    """The steps of one match, as ``run_match`` records them (it is the ``Recorder`` the runner takes).

    ``keep``: keep every step in :attr:`steps` (off for a match that storage keeps).
    ``keep_time``: keep when each step was played; off, a step's ``time`` is ``None``, so two
    runs with one seed give the same document (``arena play``).
    """

    def __init__(self, *hooks: StepHook, keep: bool = True, keep_time: bool = True) -> None:
        self.steps: list[StepRecord] = []
        self.hooks = hooks
        self.keep = keep
        self.keep_time = keep_time

    async def record_step(self, record: StepRecord) -> None:
        """Keep one step (as asked) and hand it to every hook, in order."""
        if not self.keep_time:
            record = dataclasses.replace(record, time=None)
        if self.keep:
            self.steps.append(record)
        for hook in self.hooks:
            await hook(record)


def store_and_publish(storage: Storage, match_id: int, feed: MatchFeed) -> StepHook:
    """A hook that appends each step to ``storage`` (its writer batches them) and publishes it on
    the match's live ``feed``, encoded once: storage keeps the text, spectators get it in a frame."""

    async def record(record: StepRecord) -> None:
        step = EncodedStep.of(record)
        await storage.append_steps(match_id, [step])
        feed.publish_step(step)

    return record


class SeatDebugFeed:
    """Publishes on a match's feed, after each step, what each seat printed since its last frame
    and its timing in that step (``seat_debug``: only the seat's owner sees it)."""

    def __init__(self, feed: MatchFeed, links: Sequence[AgentLink]) -> None:
        self.feed = feed
        self.links = links
        self.log_sent = [0] * len(links)  # characters of each seat's log already published
        self.step = 0

    async def after_step(self, record: StepRecord) -> None:
        """The hook: every seat's frame for the step just recorded."""
        self.step = record.step
        for seat in range(len(self.links)):
            timing = record.timing[seat] if seat < len(record.timing) else None
            self.publish(seat, timing)

    def publish(self, seat: int, timing: SeatTiming | None) -> None:
        """What the seat logged since its last frame, with its timing of this step (if it moved).

        A print of the move just made may still be in the pipe the log drains from: it then
        comes with the next frame (and the last one with :meth:`publish_rest`, after the match).
        """
        text = self.links[seat].log_text()
        delta, self.log_sent[seat] = text[self.log_sent[seat]:], len(text)
        if delta or timing is not None:
            self.feed.publish_seat_debug(SeatDebug(seq=self.feed.seq, seat=seat, step=self.step, log=delta,
                                                   timing=timing))

    def publish_rest(self) -> None:
        """After the match: what was still in the seats' pipes."""
        for seat in range(len(self.links)):
            self.publish(seat, None)
