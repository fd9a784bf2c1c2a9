"""The app-wide resources, created in the lifespan and reached through ``app.state.arena``."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Settings
from server.matches.hub import Hub
from server.matches.manager import MatchManager
from server.ratelimit import RateLimiter
from server.storage import Storage

__all__ = ["ArenaState"]


@dataclass(slots=True)
class ArenaState:
    settings: Settings
    storage: Storage
    hub: Hub
    manager: MatchManager
    limiter: RateLimiter
