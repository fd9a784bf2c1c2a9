"""A sliding-window rate limiter, in memory, per key: a process's own first gate.

It counts the requests this process has seen, so it holds per process: the limits of the
whole arena (accounts per address, submissions and matches per user, across every front of a
cluster) are counted by storage from the rows they bound (``server/storage/quotas.py``). This
gate comes first and asks nothing of the database: a flood of requests over a limit costs
the database nothing on a process that has counted them already.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from server.storage.quotas import rate_limited

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
            raise rate_limited(limit, what, self.window_s)
        events.append(now)

    def refund(self, key: str) -> None:
        """Take back the last event counted for ``key``: the request it counted did nothing
        (it was refused after the check), so it should not use up the limit."""
        events = self._events.get(key)
        if events:
            events.pop()
