"""A sliding-window rate limiter, in memory, per key."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from protocol.errors import RateLimited

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows ``limit`` events per ``window_s`` for each key."""

    def __init__(self, window_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def check(self, key: str, limit: int, what: str) -> None:
        """Count one event for ``key``.

        Raises:
            RateLimited: ``limit`` events already happened within the window.
        """
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if len(events) >= limit:
            raise RateLimited(f"at most {limit} {what} per {self.window_s / 3600:g} h; try again later")
        events.append(now)

    def refund(self, key: str) -> None:
        """Take back the last event counted for ``key``: the request it counted did nothing
        (it was refused after the check), so it should not use up the limit."""
        events = self._events.get(key)
        if events:
            events.pop()
