"""Seats: what the match runner talks to, one per player.

``AgentLink`` is the runner's whole view of a player: start it, ask it for a move, read its
log. ``ProcessSeat`` drives a sandboxed bot runtime over its pipes; a remote agent on a
WebSocket (``remote.RemoteSeat``) implements the same protocol, and ``NetworkLink`` too.
Deadlines are not enforced here: the runner wraps every call in a cancel scope.

:func:`open_links` opens the seats of one match, whatever each is: the one way the server,
``arena play`` and ``arena repro`` assemble a match before ``run_match``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from protocol import codec
from protocol.errors import AgentCrashed, AgentInvalid, ProtocolError
from protocol.messages import JSON, PROTOCOL_VERSION, Act, Init, SeatAction, SeatFailure, SeatReady
from protocol.status import FaultLimit
from server.sandbox import Limits, SeatLauncher, SeatProcess

__all__ = [
    "AgentLink", "NetworkLink", "ProcessSeat", "Reply", "SeatSource", "SeatStart", "TellsResult", "open_links",
    "open_process_seat",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeatStart:
    """What a seat needs to start: its index, the match seed and the configuration."""

    seat: int
    seed: int
    configuration: dict[str, JSON]


@dataclass(frozen=True, slots=True)
class Reply:
    action: JSON
    cpu_s: float | None = None


class AgentLink(Protocol):
    """A player as the runner sees it. Faults are raised as ``AgentFault`` subclasses."""

    async def start(self, start: SeatStart) -> None:
        """Bring the agent up until it is ready to move.

        Raises:
            AgentFault: it failed to load (ERROR).
        """
        ...

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        """Ask for one move.

        Raises:
            AgentFault: ERROR (crash, exception, limit) or INVALID (malformed reply).
        """
        ...

    def stop(self, reason: str) -> None:
        """Stop the agent at once (after a timeout), noting why in its log."""
        ...

    def log_text(self) -> str:
        """What the agent printed, for its owner."""
        ...


@runtime_checkable
class NetworkLink(Protocol):
    """A seat played over the network (a remote agent): the runner credits it, per move, an
    allowance for the round trip, measured by the server. It is added to the move's budget
    and not charged to the overage bank."""

    def move_allowance_s(self) -> float:
        """The allowance for the next move, in seconds (already capped)."""
        ...


@runtime_checkable
class TellsResult(Protocol):
    """A seat whose agent is told how its match ended (a remote agent)."""

    def finish(self, result: dict[str, JSON]) -> None:
        """Tell the agent ``result`` (never blocks)."""
        ...


_FAILURE_KIND = {
    "load": "failed to load",
    "no_agent": "no agent",
    "exception": "raised",
    "memory": "memory limit exceeded",
    "unserializable": "invalid action",
}
# What fired, by the runtime's failure kind (an unknown kind is a crash); "unserializable" is INVALID.
_FAILURE_LIMIT = {"exception": FaultLimit.EXCEPTION, "memory": FaultLimit.MEMORY}


class ProcessSeat:
    """A bot's code running in a sandboxed process, spoken to over line-delimited JSON."""

    def __init__(self, process: SeatProcess, code: str, limits: Limits) -> None:
        self.process = process
        self.code = code
        self.limits = limits

    async def start(self, start: SeatStart) -> None:
        init = Init(
            protocol_version=PROTOCOL_VERSION, seat=start.seat, seed=start.seed, code=self.code,
            configuration=start.configuration, limits=self.limits.for_runtime(),
        )
        await self.process.send_line(codec.encode(init))
        msg = await self._receive(step=None)
        if not isinstance(msg, SeatReady):
            raise AgentInvalid(f"expected 'ready' from the bot runtime, got {msg.type!r}")

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        await self.send_turn(step, observation)
        return await self.receive_move(step)

    async def send_turn(self, step: int, observation: dict[str, JSON]) -> None:
        """The first half of :meth:`act`: ask for the move of ``step``."""
        await self.process.send_line(codec.encode(Act(step=step, observation=observation)))

    async def receive_move(self, step: int) -> Reply:
        """The second half of :meth:`act`: the move of ``step``. Cancelled, it reads nothing: a
        reply is taken whole, so it may be called again."""
        msg = await self._receive(step)
        if not isinstance(msg, SeatAction):
            raise AgentInvalid(f"expected 'action' at step {step}, got {msg.type!r}")
        if msg.step != step:
            raise AgentInvalid(f"reply for step {msg.step} at step {step}")
        return Reply(action=msg.action, cpu_s=msg.cpu_s)

    async def _receive(self, step: int | None) -> SeatReady | SeatAction:
        line = await self.process.receive_line()
        try:
            msg = codec.decode_seat(line)
        except ProtocolError as exc:
            raise AgentInvalid(f"malformed reply: {exc}") from exc
        if isinstance(msg, SeatFailure):
            what = _FAILURE_KIND.get(msg.kind, msg.kind)
            where = "at start-up" if step is None else f"at step {step}"
            if msg.kind == "unserializable":
                raise AgentInvalid(f"{what} {where}: {msg.message}")
            raise AgentCrashed(f"{what} {where}: {msg.message}", limit=_FAILURE_LIMIT.get(msg.kind, FaultLimit.CRASH))
        return msg

    def pause(self) -> None:
        """Stop the seat's process where it is, using no CPU, until :meth:`resume`."""
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def stop(self, reason: str) -> None:
        self.process.note(reason)
        self.process.kill()

    def log_text(self) -> str:
        return self.process.log_text()


@asynccontextmanager
async def open_process_seat(
    launcher: SeatLauncher, code: str, limits: Limits, *, label: str = "seat"
) -> AsyncIterator[ProcessSeat]:
    """Start a sandboxed process for ``code`` (forked or fresh, as ``launcher`` does); it is killed
    and reaped when the block exits.

    Raises:
        LayerUnavailable: the launcher's mode is "fork" and its fork server cannot run the seat.
    """
    async with launcher.open_seat(limits, label=label) as process:
        yield ProcessSeat(process, code, limits)


SeatSource = str | AgentLink | AbstractContextManager[AgentLink]
"""One seat of a match to open: a bot's code (run in a sandboxed process), a link's context
manager (a remote seat: ``RemoteAgents.open_seat``), or a link that needs no opening."""


@asynccontextmanager
async def open_links(
    launcher: SeatLauncher, seats: Sequence[SeatSource], limits: Limits, *, label: str | None = None
) -> AsyncIterator[list[AgentLink]]:
    """The links of a match's seats, in seat order, open for the block; at its end every seat
    opened here is closed (a process killed and reaped, a remote agent told), in reverse order.

    Code runs in a process ``launcher`` starts, under ``limits``, labelled ``"{label} seat N"``.

    Raises:
        LayerUnavailable: the launcher's mode is "fork" and its fork server cannot run a seat.
    """
    async with AsyncExitStack() as stack:
        links: list[AgentLink] = []
        for index, seat in enumerate(seats):
            if isinstance(seat, str):
                name = f"{label} seat {index}" if label else f"seat {index}"
                links.append(await stack.enter_async_context(open_process_seat(launcher, seat, limits, label=name)))
            elif isinstance(seat, AbstractContextManager):
                links.append(stack.enter_context(seat))
            else:
                links.append(seat)
        yield links
