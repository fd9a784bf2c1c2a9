"""What ``GET /api/health`` reports beyond the sandbox: whether storage and the app's own
background work are doing their job.

Theory of operation. Nothing that fails inside one match or one pass of a background task may
end the app (DESIGN.md: bad input is never fatal to the server), but a failure that is only
logged leaves ``GET /api/health`` saying ``ok`` while, say, the ladder has stopped. So the
long-lived tasks (the ladder's scheduler, the rating task) catch their failures, record them
here with ``failed`` and retry; their next success clears the record with ``recovered``.
Storage is asked directly on every health call (a trivial read under a short deadline): it is
the one dependency everything else needs. A match that fails by the server's own fault is
stored ``aborted`` and counted by the match manager; the count and the last reason are shown
without changing the status (the server goes on), and tell the operator to read the log.

The status is ``ok`` (HTTP 200) when every component works; ``failing`` (503) when storage
does not answer, since then no request that reads or writes can succeed; ``degraded`` (503)
when storage works but a background task fails, so that a monitor probing the status code
alone sees it too. A server draining before it stops says ``draining`` (503) whatever else
holds, so that a load balancer sends new work elsewhere.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from protocol.errors import describe_error as describe
from protocol.messages import JSON
from server.matches.manager import MatchManager
from server.storage import Storage

__all__ = ["Component", "ComponentFailure", "Health", "HealthStatus", "describe", "health_report"]

log = logging.getLogger(__name__)

STORAGE_PING_S = 2.0  # a storage that cannot answer a trivial read within this is failing


class Component(enum.StrEnum):
    STORAGE = "storage"
    SCHEDULER = "scheduler"
    RATINGS = "ratings"


class HealthStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    DRAINING = "draining"  # the server stops soon (server/drain.py): send new work elsewhere


@dataclass(frozen=True, slots=True)
class ComponentFailure:
    """A component's current failure: the last reason, since when and how many times in a row."""

    reason: str
    since: float
    count: int


class Health:
    """Failures of the app's components as they happen, for ``GET /api/health``."""

    def __init__(self) -> None:
        self._failures: dict[Component, ComponentFailure] = {}

    def failed(self, component: Component, reason: str) -> None:
        """Record that ``component`` failed just now, and why (a repeat keeps the first time)."""
        previous = self._failures.get(component)
        since = previous.since if previous is not None else time.time()
        count = previous.count + 1 if previous is not None else 1
        self._failures[component] = ComponentFailure(reason, since, count)

    def recovered(self, component: Component) -> None:
        """Record that ``component`` works again."""
        if self._failures.pop(component, None) is not None:
            log.info("%s works again", component.value)

    def failures(self) -> Mapping[Component, ComponentFailure]:
        return dict(self._failures)


async def health_report(
    health: Health, storage: Storage, manager: MatchManager, *, has_scheduler: bool
) -> tuple[HealthStatus, JSON]:
    """The overall status and the ``components`` part of the health document (storage asked now)."""
    failures = dict(health.failures())
    try:
        with anyio.fail_after(STORAGE_PING_S):
            await storage.ping()
    except TimeoutError:
        failures[Component.STORAGE] = ComponentFailure(
            f"no answer to a trivial read within {STORAGE_PING_S:g} s", time.time(), 1)
        log.error("health: storage does not answer within %g s", STORAGE_PING_S)
    except Exception as exc:  # whatever storage raises, health must answer and say so
        failures[Component.STORAGE] = ComponentFailure(describe(exc), time.time(), 1)
        log.error("health: storage failing: %s", describe(exc))
    components: dict[str, JSON] = {}
    for component in Component:
        failure = failures.get(component)
        if failure is not None:
            components[component.value] = {"status": HealthStatus.FAILING.value, "reason": failure.reason,
                                           "since": failure.since, "failures": failure.count}
        elif component is Component.SCHEDULER and not has_scheduler:
            components[component.value] = {"status": "off", "reason": "the ladder is turned off (--no-ladder)"}
        else:
            components[component.value] = {"status": HealthStatus.OK.value}
    components["matches"] = {"status": HealthStatus.OK.value, "internal_errors": manager.internal_errors,
                             "last_internal_error": manager.last_internal_error}
    if Component.STORAGE in failures:
        status = HealthStatus.FAILING
    elif failures:
        status = HealthStatus.DEGRADED
    else:
        status = HealthStatus.OK
    return status, components
