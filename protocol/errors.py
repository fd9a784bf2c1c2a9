"""The one exception hierarchy of Agent Arena.

Every error the arena raises on purpose derives from :class:`ArenaError`::

    ArenaError
    ├── ProtocolError            a frame or body that does not decode or validate (has .code, .field)
    ├── GameError
    │   ├── UnknownGame          no game registered under that name
    │   ├── ConfigError          a configuration key or value the game does not accept
    │   └── IllegalAction        a well-formed action the rules forbid
    ├── AgentFault               an agent's own fault; ends its seat with .status
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
    └── StorageError             the database refused an operation
        └── NameTaken            a user name that is already registered

Errors that are an agent's fault become seat statuses and never escape a match; the
others map to HTTP statuses and close codes in ``server/routes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AgentCrashed",
    "AgentFault",
    "AgentInvalid",
    "AgentNotFound",
    "AgentTimeout",
    "ArenaError",
    "ConfigError",
    "Finding",
    "Forbidden",
    "GameError",
    "IllegalAction",
    "LayerUnavailable",
    "MatchNotFound",
    "NameTaken",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "SandboxError",
    "StorageError",
    "Unauthorized",
    "UnknownGame",
    "UserNotFound",
    "ValidationFailed",
]


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


class IllegalAction(GameError):
    code = "illegal_action"


class AgentFault(ArenaError):
    """The agent at a seat broke the rules of play; its seat ends with ``status``."""

    status: str = "ERROR"
    code = "agent_fault"


class AgentTimeout(AgentFault):
    status = "TIMEOUT"
    code = "timeout"


class AgentCrashed(AgentFault):
    status = "ERROR"
    code = "crashed"


class AgentInvalid(AgentFault):
    status = "INVALID"
    code = "invalid_action"


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


class StorageError(ArenaError):
    code = "storage_error"


class NameTaken(StorageError):
    code = "name_taken"
