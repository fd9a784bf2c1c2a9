"""The app-wide resources, created in the lifespan and reached through ``app.state.arena``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from server.config import Settings
from server.health import Health
from server.http.ratelimit import RateLimiter
from server.http.sessions import Sessions
from server.ladder.scheduler import LadderScheduler
from server.matches.hub import Hub
from server.matches.manager import MatchManager
from server.storage import Storage

if TYPE_CHECKING:
    from server.cluster import Relay
    from server.http.sockets import OpenSockets  # it imports the HTTP errors, which import this module

__all__ = ["ArenaState", "arena_state"]


@dataclass(slots=True)
class ArenaState:
    settings: Settings
    storage: Storage
    hub: Hub
    manager: MatchManager
    limiter: RateLimiter
    sockets: OpenSockets  # every WebSocket, closed with 1001 by a drain (server/drain.py)
    sessions: Sessions = field(default_factory=Sessions)  # token-authenticated sockets, closed on rotation
    health: Health = field(default_factory=Health)  # failures of storage and background tasks (/api/health)
    ladder: LadderScheduler | None = None  # the ladder's scheduler, unless the ladder is off
    relay: Relay | None = None  # in a cluster: the matches other processes run, on this hub


def arena_state(conn: HTTPConnection) -> ArenaState:
    """The app's resources, from a request or a WebSocket of it."""
    state: ArenaState = conn.app.state.arena
    return state
