"""Remote agents: seats played over ``/ws/agent`` connections, and the registry joining them.

Theory of operation. A match with a remote agent gets a ``RemoteSeat`` for it, an
``AgentLink`` like a sandboxed seat: the runner starts it, asks it for moves under the same
cancel scopes (``actTimeout`` plus the overage bank), and stops it. A seat is *bound* to one
live ``AgentConnection`` of its agent's owner at a time; everything it has to say (``match_start``,
``turn``, ``match_end``) goes into that connection's outbox, which the socket handler
(``server/http/agent_ws.py``) drains. Nothing here waits on a socket, so a slow or dead client
never stalls a match: its seat simply gets no answer and the runner's deadline decides.

* ``start`` waits until a connection of the owner that plays the agent is there (the runner
  bounds the wait by ``agentTimeout``), binds to it and sends ``match_start``.
* ``act`` records the pending turn, sends it, and waits for ``deliver`` (an ``action`` frame the
  handler routed here) or ``fail`` (an ``agent_error`` frame).
* When a connection goes away its seats are unbound and rebound at once to another live
  connection of the owner playing the agent, or to the next one that attaches (a reconnect
  with the same token): the new connection gets ``match_start`` again and the pending
  ``turn`` with the time left. The deadline never stops running meanwhile.

Remote clocks. The handler pings each connection every few seconds with a random nonce and
measures the round trip itself; a client can only delay its pongs, never shorten them. A
remote seat is credited its connection's median round trip, capped at ``allowance_cap_s``,
per move: added to the move's budget and not charged to the bank (the runner does that,
see ``NetworkLink``), so network jitter does not eat a remote bot's bank, and claiming lag
gains it at most the cap.
"""

from __future__ import annotations

import enum
import logging
import secrets
import statistics
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from protocol import codec
from protocol.errors import AgentCrashed, RateLimited
from protocol.messages import JSON, MatchEnd, MatchStart, Ping, Turn
from protocol.status import FaultLimit

from .seats import Reply, SeatStart

__all__ = ["RTT_SAMPLES", "AgentConnection", "Refusal", "RefusalCode", "RemoteAgents", "RemoteSeat", "SeatAgent",
           "SeatNotes"]

log = logging.getLogger(__name__)

RTT_SAMPLES = 5  # the allowance is the median of this many latest round trips
_OUTSTANDING_PINGS = 8  # nonces remembered per connection; older pings count as lost
_REMEMBERED_MATCHES = 10_000  # finished match ids kept to tell "match over" from "unknown match"
_MAX_NOTES_BYTES = 16 << 10
_MAX_SOLICITED = 4096  # answers owed to a connection, at most
_MAX_REPORTED_ERROR = 2000  # characters of an agent_error message kept in the log and the reason


class AgentConnection:
    """One authenticated ``/ws/agent`` socket as the matches see it: an outbox of encoded
    frames, the agents it plays (``None``: all of its user's remote agents) and its measured
    round trips."""

    def __init__(self, user_id: int, agents: frozenset[int] | None, *, outbox_frames: int = 1024) -> None:
        self.user_id = user_id
        self.agents = agents
        self._send, self.outbox = anyio.create_memory_object_stream[str](outbox_frames)
        self.seats: set[RemoteSeat] = set()
        self.rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        self._pings: OrderedDict[str, float] = OrderedDict()
        self.is_broken = False
        self.on_broken: Callable[[], None] | None = None  # the handler's way to drop the socket
        # Frames the server asked for (a turn or a ping wants an answer): the rate limit spares
        # these, so a client playing many fast matches at once is never throttled for it.
        self.solicited = 0

    def plays(self, agent_id: int) -> bool:
        return self.agents is None or agent_id in self.agents

    def offer(self, msg: object) -> bool:
        """Queue a frame without waiting; a full outbox means the client stopped reading: drop it."""
        if isinstance(msg, Turn | Ping):
            self.solicited = min(self.solicited + 1, _MAX_SOLICITED)
        return self.offer_text(codec.encode(msg).decode())

    def take_solicited(self) -> bool:
        """Count one incoming frame against the answers the server asked for, if any are due."""
        if self.solicited <= 0:
            return False
        self.solicited -= 1
        return True

    def offer_text(self, frame: str) -> bool:
        if self.is_broken:
            return False
        try:
            self._send.send_nowait(frame)
        except anyio.WouldBlock:
            log.info("user %s: an agent connection stopped reading; dropped", self.user_id)
            self.is_broken = True
            if self.on_broken is not None:
                self.on_broken()
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.is_broken = True
            return False
        return True

    def ping(self) -> None:
        """Send a ``ping`` with a fresh nonce and remember when."""
        nonce = secrets.token_hex(8)
        self._pings[nonce] = time.monotonic()
        while len(self._pings) > _OUTSTANDING_PINGS:
            self._pings.popitem(last=False)
        self.offer(Ping(nonce=nonce))

    def pong(self, nonce: str) -> bool:
        """Record the round trip of the ping with ``nonce``; False for a nonce never sent (or too old)."""
        sent = self._pings.pop(nonce, None)
        if sent is None:
            return False
        self.rtts.append(time.monotonic() - sent)
        return True

    def rtt_s(self) -> float | None:
        """The median of the latest round trips, if any was measured."""
        return statistics.median(self.rtts) if self.rtts else None

    def close(self) -> None:
        """Close the outbox (both ends); frames offered later are dropped."""
        self._send.close()
        self.outbox.close()


class SeatNotes:
    """The arena's notes on a remote seat, its log (bounded: the client's words may be long)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._bytes = 0

    def add(self, text: str) -> None:
        line = f"[arena] {text}\n".replace("\0", "\ufffd")  # the client's words may hold anything
        if self._bytes + len(line) > _MAX_NOTES_BYTES:
            return
        self._lines.append(line)
        self._bytes += len(line)

    def text(self) -> str:
        return "".join(self._lines)

    def since(self, count: int) -> list[str]:
        """The notes after the first ``count`` (without their prefix and newline)."""
        return [line.removeprefix("[arena] ").removesuffix("\n") for line in self._lines[count:]]


class RefusalCode(enum.StrEnum):
    """Why a frame about a match is refused; the ``code`` of the ``error`` frame that says so."""

    UNKNOWN_MATCH = "unknown_match"  # no remote seat of the match is live here
    MATCH_OVER = "match_over"
    NOT_YOUR_SEAT = "not_your_seat"
    SEAT_REQUIRED = "seat_required"  # the connection plays several seats of the match: name one


@dataclass(frozen=True, slots=True)
class Refusal:
    """A frame refused: its error frame's code and message."""

    code: RefusalCode
    message: str


@dataclass(eq=False, slots=True)
class _PendingTurn:
    step: int
    observation: dict[str, JSON]
    started: float
    budget_s: float
    answered: anyio.Event = field(default_factory=anyio.Event)
    action: JSON = None
    failure: str | None = None

    def frame(self, seat: RemoteSeat) -> Turn:
        left = max(0.0, self.budget_s - (time.monotonic() - self.started))
        return Turn(match_id=seat.match_id, step=self.step, observation=self.observation, deadline=round(left, 4),
                    seat=seat.seat)


class SeatAgent(Protocol):
    """The agent a remote seat plays, as the seat needs it (an ``AgentRecord`` is one)."""

    @property
    def id(self) -> int: ...

    @property
    def user_id(self) -> int: ...

    @property
    def game(self) -> str: ...


class RemoteSeat:
    """An ``AgentLink`` (and a ``NetworkLink``) for a remote agent; made by ``RemoteAgents.open_seat``."""

    def __init__(self, registry: RemoteAgents, match_id: int, seat: int, agent: SeatAgent) -> None:
        self.registry = registry
        self.match_id = match_id
        self.seat = seat
        self.agent_id = agent.id
        self.user_id = agent.user_id
        self.game = agent.game
        self.conn: AgentConnection | None = None
        self.configuration: dict[str, JSON] = {}
        self.seed: int | None = None
        self.is_started = False
        self.is_finished = False
        self._bound = anyio.Event()
        self._turn: _PendingTurn | None = None
        self._last_step = 0  # the last step asked
        self._allowance_s = 0.0
        self.notes = SeatNotes()

    # -- AgentLink ---------------------------------------------------------------------------------

    async def start(self, start: SeatStart) -> None:
        """Wait for a connection that plays this agent (the runner bounds the wait), then bind."""
        self.configuration = start.configuration
        self.seed = start.seed
        self.is_started = True
        if self.conn is None:
            conn = self.registry.pick_connection(self)
            if conn is not None:
                self.bind(conn)
            else:
                self.note(f"waiting for a connection playing agent {self.agent_id}")
        await self._bound.wait()

    async def act(
        self, step: int, observation: dict[str, JSON], *, budget_s: float | None = None, waited_s: float = 0.0,
    ) -> Reply:
        """Send the turn (now, and again to any connection that binds before the answer) and wait.
        The agent is told the time it has left: ``budget_s`` (by default its ``actTimeout``, its
        bank and its network allowance) less ``waited_s``, the time the turn has waited already
        (a turn relayed from the worker that runs the match).

        Raises:
            AgentCrashed: the agent reported that its bot failed (an ``agent_error`` frame).
        """
        if budget_s is None:
            budget_s = float(self.configuration["actTimeout"]) + float(observation.get("remainingOverageTime", 0.0))
            budget_s += self._allowance_s
        turn = _PendingTurn(step, observation, time.monotonic() - waited_s, budget_s)
        self._turn = turn
        self._last_step = step
        if self.conn is not None:
            self.conn.offer(turn.frame(self))
        try:
            await turn.answered.wait()
        finally:
            self._turn = None
        if turn.failure is not None:
            # Whatever failed on the agent's machine (its bot raised, or crashed there) is its report.
            raise AgentCrashed(f"the remote agent reported an error at step {step}: {turn.failure}",
                               limit=FaultLimit.CRASH)
        return Reply(action=turn.action, cpu_s=None)

    def stop(self, reason: str) -> None:
        self.note(reason)
        self._turn = None

    def log_text(self) -> str:
        """The arena's notes on this seat (a remote bot's own output stays on its machine)."""
        return self.notes.text()

    def move_allowance_s(self) -> float:
        """The network allowance for the next move: the connection's median round trip, capped.

        While no connection is bound, the last one measured stays in force.
        """
        rtt = self.conn.rtt_s() if self.conn is not None else None
        if rtt is not None:
            self._allowance_s = min(rtt, self.registry.allowance_cap_s)
        return self._allowance_s

    # -- called by the registry and the socket handler ---------------------------------------------

    def note(self, text: str) -> None:
        self.notes.add(text)

    def bind(self, conn: AgentConnection) -> None:
        """Play on ``conn`` from now on: it gets ``match_start`` and the pending turn, if any."""
        if self.conn is not None:
            self.unbind()
        self.conn = conn
        conn.seats.add(self)
        conn.offer(MatchStart(match_id=self.match_id, agent_id=self.agent_id, game=self.game, seat=self.seat,
                              configuration=self.configuration, seed=self.seed))
        turn = self._turn
        if turn is not None and not turn.answered.is_set():
            self.note(f"resumed on a new connection at step {turn.step}")
            conn.offer(turn.frame(self))
        self._bound.set()

    def unbind(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.seats.discard(self)
        self._bound = anyio.Event()

    def pending_step(self) -> int | None:
        turn = self._turn
        return None if turn is None or turn.answered.is_set() else turn.step

    def deliver(self, step: int, action: JSON) -> str | None:
        """Hand the runner the answer to the pending turn; the reason it is refused, if it is."""
        turn = self._turn
        if turn is None or turn.answered.is_set():
            if step <= self._last_step:
                return f"step {step} of match {self.match_id} seat {self.seat} was already answered or is over"
            return f"no turn is pending for match {self.match_id} seat {self.seat}; step {step} was not asked"
        if step != turn.step:
            return f"match {self.match_id} seat {self.seat} is at step {turn.step}, not {step}"
        turn.action = action
        turn.answered.set()
        return None

    def fail(self, step: int, message: str) -> str | None:
        """The agent says its bot failed at ``step``: the seat ends with ERROR."""
        turn = self._turn
        if turn is None or turn.answered.is_set() or step != turn.step:
            return f"match {self.match_id} seat {self.seat} has no pending turn at step {step}"
        text = message[:_MAX_REPORTED_ERROR]
        self.note(f"the agent reported an error at step {step}: {text}")
        turn.failure = text
        turn.answered.set()
        return None

    def finish(self, result: dict[str, JSON]) -> None:
        """Tell the agent how the match ended."""
        if self.is_finished:
            return
        self.is_finished = True
        if self.conn is not None:
            self.conn.offer(MatchEnd(match_id=self.match_id, result=result, seat=self.seat))

    def hand_over(self) -> None:
        """Another process plays this seat from now on (a front in a cluster): end here without
        a word to the agent, which hears from the seat's new home."""
        self.is_finished = True


class RemoteAgents:
    """Live agent connections by user, and the remote seats of running matches."""

    def __init__(self, *, allowance_cap_s: float = 0.25, connections_per_user: int = 16) -> None:
        self.allowance_cap_s = allowance_cap_s
        self.connections_per_user = connections_per_user
        self.connections: dict[int, list[AgentConnection]] = {}
        # Called with each connection attached (a cluster's front looks for its user's seats then).
        self.on_attach: Callable[[AgentConnection], None] | None = None
        self._match_seats: dict[int, list[RemoteSeat]] = {}
        self._user_seats: dict[int, set[RemoteSeat]] = {}
        self._finished: OrderedDict[int, None] = OrderedDict()

    # -- connections -------------------------------------------------------------------------------

    def attach(self, conn: AgentConnection) -> None:
        """Register a connection and bind it every started seat of its user left without one.

        Raises:
            RateLimited: the user has ``connections_per_user`` connections already.
        """
        conns = self.connections.setdefault(conn.user_id, [])
        if len(conns) >= self.connections_per_user:
            if not conns:
                del self.connections[conn.user_id]
            raise RateLimited(f"at most {self.connections_per_user} agent connections per user")
        conns.append(conn)
        for seat in list(self._user_seats.get(conn.user_id, ())):
            if seat.is_started and not seat.is_finished and seat.conn is None and conn.plays(seat.agent_id):
                seat.bind(conn)
        if self.on_attach is not None:
            self.on_attach(conn)

    def detach(self, conn: AgentConnection, *, close: bool = True) -> None:
        """Forget a connection; its seats move to another live connection of the user, or wait."""
        conns = self.connections.get(conn.user_id, [])
        if conn in conns:
            conns.remove(conn)
        if not conns:
            self.connections.pop(conn.user_id, None)
        for seat in list(conn.seats):
            seat.unbind()
            if seat.is_finished:
                continue
            step = seat.pending_step()
            seat.note("connection lost" + (f" at step {step}" if step is not None else ""))
            other = self.pick_connection(seat)
            if other is not None:
                seat.bind(other)
            else:
                seat.note("waiting for a reconnect")
        if close:
            conn.close()

    def narrow(self, conn: AgentConnection, agents: frozenset[int] | None) -> None:
        """Change the agents a connection plays (a later ``hello``)."""
        self.detach(conn, close=False)
        conn.agents = agents
        self.attach(conn)

    def pick_connection(self, seat: RemoteSeat) -> AgentConnection | None:
        """The least busy live connection of the seat's owner that plays its agent."""
        return self.connection_for(seat.user_id, seat.agent_id)

    def connection_for(self, user_id: int, agent_id: int) -> AgentConnection | None:
        """The least busy live connection of ``user_id`` that plays ``agent_id``."""
        live = [c for c in self.connections.get(user_id, []) if not c.is_broken and c.plays(agent_id)]
        return min(live, key=lambda c: len(c.seats)) if live else None

    # -- seats -------------------------------------------------------------------------------------

    @contextmanager
    def open_seat(self, match_id: int, seat: int, agent: SeatAgent) -> Iterator[RemoteSeat]:
        """A remote seat for the block's duration; at its end the agent hears ``match_end``."""
        remote = RemoteSeat(self, match_id, seat, agent)
        self._match_seats.setdefault(match_id, []).append(remote)
        self._user_seats.setdefault(agent.user_id, set()).add(remote)
        try:
            yield remote
        finally:
            remote.finish({"match_id": match_id, "status": "aborted"})  # unless it was told the result
            remote.unbind()
            seats = self._match_seats.get(match_id, [])
            if remote in seats:
                seats.remove(remote)
            if not seats:
                self._match_seats.pop(match_id, None)
                self._finished[match_id] = None
                while len(self._finished) > _REMEMBERED_MATCHES:
                    self._finished.popitem(last=False)
            user_seats = self._user_seats.get(agent.user_id, set())
            user_seats.discard(remote)
            if not user_seats:
                self._user_seats.pop(agent.user_id, None)

    def seats_of(self, match_id: int) -> list[RemoteSeat]:
        return list(self._match_seats.get(match_id, ()))

    def is_finished(self, match_id: int) -> bool:
        """Whether remote seats of this match existed and the match is over (recently)."""
        return match_id in self._finished

    def agent_seat(self, conn: AgentConnection, match_id: int, seat: int | None, step: int) -> RemoteSeat | Refusal:
        """The seat a frame from ``conn`` about ``match_id`` is for, or why the frame is refused.

        ``UNKNOWN_MATCH`` means no remote seat of this match is live here (the caller tells a
        finished or foreign match apart).
        """
        seats = self.seats_of(match_id)
        if not seats:
            if self.is_finished(match_id):
                return Refusal(RefusalCode.MATCH_OVER, f"match {match_id} is over")
            return Refusal(RefusalCode.UNKNOWN_MATCH, f"no live match {match_id} has a remote seat")
        mine = [s for s in seats if s.user_id == conn.user_id and conn.plays(s.agent_id)]
        if seat is not None:
            mine = [s for s in mine if s.seat == seat]
        if not mine:
            where = f"seat {seat} of match {match_id}" if seat is not None else f"any seat of match {match_id}"
            return Refusal(RefusalCode.NOT_YOUR_SEAT, f"this connection does not play {where}")
        if all(s.is_finished for s in mine):  # ended, and its seats are being closed
            return Refusal(RefusalCode.MATCH_OVER, f"match {match_id} is over")
        if len(mine) > 1:
            pending = [s for s in mine if s.pending_step() == step]
            if len(pending) != 1:
                return Refusal(RefusalCode.SEAT_REQUIRED, f"you play several seats of match {match_id}: name the seat")
            mine = pending
        return mine[0]
