"""Every message on the wire, as frozen dataclasses tagged by ``type``.

Four channels, one union per direction:

* the seat pipe between the match runner and the bot runtime in a sandboxed child
  (``RunnerMsg`` down, ``SeatMsg`` up; the runtime speaks it with the standard library);
* the remote-agent WebSocket ``/ws/agent`` (``AgentClientMsg`` up, ``AgentServerMsg`` down);
* the spectator WebSocket ``/ws/matches/{id}`` (``SpectatorMsg`` down);
* the lobby WebSocket ``/ws/lobby`` (``LobbyMsg`` down).

A ``type`` tag is never reused for a different shape within one channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "PROTOCOL_VERSION",
    "Act",
    "ActionFrame",
    "AgentClientMsg",
    "AgentError",
    "AgentPatch",
    "AgentServerMsg",
    "ApiBody",
    "End",
    "ErrorFrame",
    "Event",
    "Hello",
    "Init",
    "LobbyMsg",
    "MatchEnd",
    "MatchEnded",
    "MatchStart",
    "MatchStarted",
    "NewAgent",
    "NewMatch",
    "NewUser",
    "Ping",
    "Pong",
    "RatingChanged",
    "RunnerMsg",
    "SeatAction",
    "SeatDebug",
    "SeatFailure",
    "SeatMsg",
    "SeatReady",
    "SeatTiming",
    "Snapshot",
    "SpectatorMsg",
    "StepRecord",
    "Turn",
    "Welcome",
]

PROTOCOL_VERSION = 1

JSON = Any


# -- records shared by several channels -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeatTiming:
    """Where one seat's time went in one step.

    ``allowance_s`` is the network allowance a remote seat was credited for this move (its
    connection's measured round trip, capped): added to the move's budget and not charged to
    the bank. ``None`` for sandboxed seats (and in steps stored before it existed).
    ``wait_s`` is how long a sandboxed seat's turn waited for a core before its clock started
    (``server/matches/cores.py``), charged to nothing. ``None`` for remote seats, for matches
    played without the server's core gate (``arena play``) and in steps stored before it existed.
    """

    wall_s: float
    cpu_s: float | None
    bank_s: float
    allowance_s: float | None = None
    wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a match as stored and streamed; ``steps[0]`` is the initial state.

    ``statuses`` are ``SeatStatus`` values. ``faults`` is set in a forfeit step only: per seat,
    the ``FaultLimit`` that ended it (``None`` for a seat that did not fault). Every other step,
    and a step stored before it was kept, has none, and its JSON leaves the key out
    (``codec.encode``). Both are plain strings on the wire.
    """

    step: int
    actions: list[JSON]
    statuses: list[str]
    rewards: list[float]
    state: dict[str, JSON]
    timing: list[SeatTiming | None] = field(default_factory=list)
    time: float | None = None  # when the step was played (Unix time); None in steps stored before it was kept
    faults: list[str | None] = field(default_factory=list)


# -- seat pipe: runner -> bot runtime ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Init:
    """First line to a seat: the bot's code, its seat, the seed and the limits it applies."""

    protocol_version: int
    seat: int
    seed: int
    code: str
    configuration: dict[str, JSON]
    limits: dict[str, JSON]
    type: Literal["init"] = "init"


@dataclass(frozen=True, slots=True)
class Act:
    step: int
    observation: dict[str, JSON]
    type: Literal["act"] = "act"


RunnerMsg = Init | Act


# -- seat pipe: bot runtime -> runner ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeatReady:
    type: Literal["ready"] = "ready"


@dataclass(frozen=True, slots=True)
class SeatAction:
    step: int
    action: JSON
    cpu_s: float = 0.0
    type: Literal["action"] = "action"


@dataclass(frozen=True, slots=True)
class SeatFailure:
    """The bot failed inside the runtime: ``kind`` is ``load``, ``no_agent``, ``exception``,
    ``memory`` or ``unserializable``; ``message`` is the exception's last line."""

    kind: str
    message: str
    step: int | None = None
    type: Literal["error"] = "error"


SeatMsg = SeatReady | SeatAction | SeatFailure


# -- remote agent WebSocket -------------------------------------------------------------------------
#
# Every frame about a match carries its ``match_id``; ``seat`` tells two seats of one match
# apart when one user plays both. ``turn.deadline`` is the time left for the move in seconds,
# counted from when the frame was sent (the server keeps the clock; clients' clocks differ).


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame of a remote agent: its token (unless sent in the ``Authorization``
    header) and optionally the agents this connection plays (default: every remote agent of
    the user). Sent later, it narrows the set again."""

    protocol_version: int = PROTOCOL_VERSION
    token: str | None = None
    agents: list[int] | None = None
    type: Literal["hello"] = "hello"


@dataclass(frozen=True, slots=True)
class ActionFrame:
    match_id: int
    step: int
    action: JSON
    seat: int | None = None
    type: Literal["action"] = "action"


@dataclass(frozen=True, slots=True)
class AgentError:
    """The agent failed to produce a move (its bot raised): the seat ends with ``ERROR``."""

    match_id: int
    step: int
    message: str
    seat: int | None = None
    type: Literal["agent_error"] = "agent_error"


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ``ping``, sent at once: the server measures the round trip itself."""

    nonce: str
    type: Literal["pong"] = "pong"


AgentClientMsg = Hello | ActionFrame | AgentError | Pong


@dataclass(frozen=True, slots=True)
class Welcome:
    user_id: int
    agents: list[int]
    protocol_version: int = PROTOCOL_VERSION
    type: Literal["welcome"] = "welcome"


@dataclass(frozen=True, slots=True)
class MatchStart:
    match_id: int
    agent_id: int
    game: str
    seat: int
    configuration: dict[str, JSON]
    seed: int | None = None
    type: Literal["match_start"] = "match_start"


@dataclass(frozen=True, slots=True)
class Turn:
    match_id: int
    step: int
    observation: dict[str, JSON]
    deadline: float
    seat: int | None = None
    type: Literal["turn"] = "turn"


@dataclass(frozen=True, slots=True)
class MatchEnd:
    match_id: int
    result: dict[str, JSON]
    seat: int | None = None
    type: Literal["match_end"] = "match_end"


@dataclass(frozen=True, slots=True)
class Ping:
    """The server's clock probe: answer with ``pong`` and the same nonce at once."""

    nonce: str
    type: Literal["ping"] = "ping"


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    code: str
    message: str
    match_id: int | None = None
    type: Literal["error"] = "error"


AgentServerMsg = Welcome | MatchStart | Turn | MatchEnd | Ping | ErrorFrame


# -- spectator WebSocket ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    match: dict[str, JSON]
    state: dict[str, JSON] | None
    events: list[JSON]
    type: Literal["snapshot"] = "snapshot"


@dataclass(frozen=True, slots=True)
class Event:
    """One step of the match, as ``StepRecord`` with its sequence number."""

    seq: int
    step: int
    actions: list[JSON]
    statuses: list[str]
    rewards: list[float]
    state: dict[str, JSON]
    timing: list[SeatTiming | None] = field(default_factory=list)
    time: float | None = None
    faults: list[str | None] = field(default_factory=list)
    kind: str = "step"
    type: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class End:
    seq: int
    result: dict[str, JSON]
    type: Literal["end"] = "end"


@dataclass(frozen=True, slots=True)
class SeatDebug:
    """Owner-private, on ``/ws/matches/{id}?seat=N``: what one seat printed since the last frame
    and its time for the move; ``seq`` is that of the ``event`` frame it follows."""

    seq: int
    seat: int
    step: int
    log: str
    timing: SeatTiming | None = None
    type: Literal["seat_debug"] = "seat_debug"


SpectatorMsg = Snapshot | Event | End | SeatDebug | ErrorFrame


# -- lobby WebSocket --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchStarted:
    match: dict[str, JSON]
    type: Literal["match_started"] = "match_started"


@dataclass(frozen=True, slots=True)
class MatchEnded:
    match: dict[str, JSON]
    type: Literal["match_ended"] = "match_ended"


@dataclass(frozen=True, slots=True)
class RatingChanged:
    """An agent's ladder rating after a rated match, sent after that match's ``match_ended``,
    one frame per seat. ``rating`` is the displayed, conservative number (``previous`` the one
    before the match; a new agent's is the default); ``mu`` and ``sigma`` are the model's skill
    estimate and its uncertainty; ``rated_matches`` counts the agent's rated matches so far."""

    agent_id: int
    game: str
    rating: float
    previous: float | None
    name: str
    owner: str
    match_id: int
    mu: float
    sigma: float
    rated_matches: int
    type: Literal["rating_changed"] = "rating_changed"


LobbyMsg = MatchStarted | MatchEnded | RatingChanged


# -- HTTP API request bodies (no ``type`` tag: the route names them) ---------------------------------


@dataclass(frozen=True, slots=True)
class NewUser:
    name: str


@dataclass(frozen=True, slots=True)
class NewAgent:
    name: str
    game: str
    code: str | None = None
    remote: bool = False


@dataclass(frozen=True, slots=True)
class NewMatch:
    game: str
    agents: list[int]
    config: dict[str, JSON] | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class AgentPatch:
    """``PATCH /api/agents/{id}``: rename or (dis)able one's own agent."""

    name: str | None = None
    disabled: bool | None = None


ApiBody = NewUser | NewAgent | NewMatch | AgentPatch
