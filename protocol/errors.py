"""The one exception hierarchy of Agent Arena.

Every error the arena raises on purpose derives from :class:`ArenaError`::

    ArenaError
    ├── ProtocolError            a frame or body that does not decode or validate (has .code, .field)
    ├── GameError
    │   ├── UnknownGame          no game registered under that name
    │   ├── ConfigError          a configuration key or value the game does not accept
    │   │   └── ConfigOutOfRange a value outside its range, or not a finite number (has .key, .low, .high)
    │   └── IllegalAction        a well-formed action the rules forbid
    ├── AgentFault               an agent's own fault; ends its seat with .status (and .limit)
    │   ├── AgentTimeout         TIMEOUT: start-up or move deadline, overage bank spent
    │   ├── AgentCrashed         ERROR: exception, bad start-up, killed, limit hit
    │   └── AgentInvalid         INVALID: malformed or illegal reply
    ├── SandboxError
    │   ├── ValidationFailed     the static validator rejected the code (has .findings)
    │   └── LayerUnavailable     a required sandbox layer is not available here
    ├── NotFound                 (has .kind and .key)
    │   ├── MatchNotFound
    │   ├── AgentNotFound
    │   └── UserNotFound
    ├── Unauthorized             missing or wrong token
    ├── Forbidden                a valid token, but not the owner
    ├── RateLimited              too many requests of one kind
    ├── Full                     a place with room for so many is full (a match's spectators)
    ├── ServerDraining           the server is shutting down: it starts nothing new
    ├── Conflict                 the resource is not in a state that allows the request
    │   └── MatchOver            the match has already ended
    └── StorageError             the database refused an operation
        ├── NameTaken            a user name that is already registered
        └── LeaseLost            a worker's write to a match another worker has taken over

Errors that are an agent's fault become seat statuses and never escape a match; the
others map to HTTP statuses and close codes in ``server/http/errors.py``. A reason stored or shown
for one (a seat's, a match's) quotes at most a short prefix of it: :func:`short_reason`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .status import FaultLimit, SeatStatus

__all__ = [
    "MAX_REASON_CHARS",
    "AgentCrashed",
    "AgentFault",
    "AgentInvalid",
    "AgentNotFound",
    "AgentTimeout",
    "ArenaError",
    "ConfigError",
    "ConfigOutOfRange",
    "Conflict",
    "Finding",
    "Forbidden",
    "Full",
    "GameError",
    "IllegalAction",
    "LayerUnavailable",
    "LeaseLost",
    "MatchNotFound",
    "MatchOver",
    "NameTaken",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "SandboxError",
    "ServerDraining",
    "StorageError",
    "Unauthorized",
    "UnknownGame",
    "UserNotFound",
    "ValidationFailed",
    "describe_error",
    "short_reason",
]

# A reason quotes what it is about (an illegal move, an exception's message, a remote agent's
# report), and all of those are the agent's to choose: a megabyte quoted whole went into every
# list of matches, every lobby frame and every result that names it.
MAX_REASON_CHARS = 200


def short_reason(text: str, max_chars: int = MAX_REASON_CHARS) -> str:
    """``text`` as a stored or shown reason: its first ``max_chars`` characters, and an
    ellipsis when there was more; NUL (which PostgreSQL's text cannot hold) as U+FFFD."""
    text = text.replace("\0", "\ufffd")
    return text if len(text) <= max_chars else f"{text[:max_chars]}…"


def describe_error(exc: BaseException) -> str:
    """An exception as a short reason: its type and the start of its message. A task group's
    wrapper is looked through (to the first error it holds): it names none itself."""
    more = 0
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        more += len(exc.exceptions) - 1
        exc = exc.exceptions[0]
    text = short_reason(str(exc))
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described + (f" (and {more} more)" if more else "")


class ArenaError(Exception):
    """Root of every error Agent Arena raises on purpose."""

    code: str = "arena_error"


class ProtocolError(ArenaError):
    """A message that cannot be decoded or does not match its schema."""

    def __init__(self, message: str, *, code: str = "bad_message", field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class GameError(ArenaError):
    code = "game_error"


class UnknownGame(GameError):
    code = "unknown_game"


class ConfigError(GameError):
    code = "bad_config"


class ConfigOutOfRange(ConfigError):
    """A configuration value outside the operator-set range of its key (or not a number where
    one is expected); ``low`` and ``high`` bound the value, or the length of a text value."""

    code = "config_out_of_range"

    def __init__(self, message: str, *, key: str, low: float, high: float) -> None:
        super().__init__(message)
        self.key = key
        self.low = low
        self.high = high


class IllegalAction(GameError):
    code = "illegal_action"


class AgentFault(ArenaError):
    """The agent at a seat broke the rules of play; its seat ends with ``status``, and ``limit``
    says what fired, as the code that found the fault knows it."""

    status: SeatStatus = SeatStatus.ERROR
    code = "agent_fault"

    def __init__(self, message: str, *, limit: FaultLimit) -> None:
        super().__init__(message)
        self.limit = limit


class AgentTimeout(AgentFault):
    status = SeatStatus.TIMEOUT
    code = "timeout"


class AgentCrashed(AgentFault):
    status = SeatStatus.ERROR
    code = "crashed"


class AgentInvalid(AgentFault):
    status = SeatStatus.INVALID
    code = "invalid_action"

    def __init__(self, message: str) -> None:
        super().__init__(message, limit=FaultLimit.RULES)  # an INVALID seat broke the rules, always


class SandboxError(ArenaError):
    code = "sandbox_error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule the static validator found broken, at a place in the file."""

    line: int
    col: int
    rule: str
    message: str


class ValidationFailed(SandboxError):
    code = "validation_failed"

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


class LayerUnavailable(SandboxError):
    code = "layer_unavailable"


class NotFound(ArenaError):
    code = "not_found"
    kind = "resource"

    def __init__(self, key: object) -> None:
        super().__init__(f"{self.kind} {key!r} not found")
        self.key = key


class MatchNotFound(NotFound):
    kind = "match"


class AgentNotFound(NotFound):
    kind = "agent"


class UserNotFound(NotFound):
    kind = "user"


class Unauthorized(ArenaError):
    code = "unauthorized"


class Forbidden(ArenaError):
    code = "forbidden"


class RateLimited(ArenaError):
    code = "rate_limited"


class Full(ArenaError):
    """A place that holds so many (a match's spectators) has no room for one more now; the
    request may succeed later, when someone leaves."""

    code = "full"


class ServerDraining(ArenaError):
    """The server is draining before it stops (SIGTERM): it starts no new match and, at the
    end of the drain, takes no new socket; another server (or this one, restarted) will."""

    code = "draining"


class Conflict(ArenaError):
    code = "conflict"


class MatchOver(Conflict):
    code = "match_over"


class StorageError(ArenaError):
    code = "storage_error"


class NameTaken(StorageError):
    code = "name_taken"


class LeaseLost(StorageError):
    """A write fenced by a match's attempt that no longer holds: the lease ran out and another
    worker claimed the match (or it was stopped); the writer must stop running it."""

    code = "lease_lost"
