"""``GET /metrics``: what one process of the arena is doing, in Prometheus' text format.

Theory of operation
-------------------
Each app has its own :class:`Metrics` with its own ``CollectorRegistry``, never the library's
global one: tests (and the benchmarks) run many apps in one process, and each must count only
its own. Three kinds of numbers feed it:

* What the arena already counts where it does the work is read when ``/metrics`` is scraped,
  by a collector (:class:`_ArenaCollector`), and costs nothing in between: the match manager's
  running matches and :class:`~server.matches.counts.MatchCounts` (moves, ended matches by
  status, seats' outcomes, queue claims), its internal errors, its core gate's places, the
  hub's live feeds and the seat launcher's starts and failures. A move is one integer
  increment on the match's path; nothing there looks up a label.
* HTTP requests and WebSockets are counted by :class:`MetricsMiddleware`, an ASGI middleware
  around the routes, labelled by the route's template (``/api/matches/{match_id}``, not the
  path: ids would make a series per match) or ``unmatched``. A socket counts as live from its
  ``accept`` to its end, by kind (``match`` spectators, ``lobby``, remote ``agent``); a socket
  the server closes is counted by its close code (a spectator dropped for falling behind, an
  error).
* Event-loop lag: :meth:`Metrics.watch_loop_lag` sleeps ``LOOP_LAG_INTERVAL_S`` again and again
  and records how late it wakes up. Every task of the process shares the loop, so a late
  wake-up is what a blocking call, or too much work between two awaits, costs everyone.

The process's own figures (CPU seconds, resident memory, open file descriptors) come from the
library's ``ProcessCollector`` on Linux.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.matches.counts import ENDED, OUTCOMES

if TYPE_CHECKING:
    from server.matches.hub import Hub
    from server.matches.manager import MatchManager
    from server.sandbox import SeatLauncher

__all__ = ["LOOP_LAG_INTERVAL_S", "Metrics", "MetricsMiddleware", "metrics_endpoint"]

LOOP_LAG_INTERVAL_S = 0.25  # how often the event loop's lag is measured
# A lag past a few milliseconds is felt by paced matches and spectators; past a second, by every deadline.
_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The WebSocket routes, by kind; another socket route is labelled by its template.
SOCKET_KINDS = {"/ws/matches/{match_id}": "match", "/ws/lobby": "lobby", "/ws/agent": "agent"}
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # "{match_id:id}" in a route's path: "{match_id}" in a label


class Metrics:
    """One app's metrics and their registry; the lifespan hands it what it counts (:meth:`watch`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.http_requests = Counter(
            "arena_http_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=self.registry)
        self.http_seconds = Histogram(
            "arena_http_request_duration_seconds", "Time to answer an HTTP request (its whole body sent), by route",
            ["route"], buckets=_HTTP_BUCKETS_S, registry=self.registry)
        self.sockets = Gauge(
            "arena_websockets", "Live WebSocket connections, by kind: match (spectators and seat owners' views), "
            "lobby, agent (remote agents)", ["kind"], registry=self.registry)
        self.socket_closes = Counter(
            "arena_websocket_closes", "WebSocket connections this server closed, by kind and close code",
            ["kind", "code"], registry=self.registry)
        for kind in SOCKET_KINDS.values():  # every kind from the start, at 0
            self.sockets.labels(kind)
        self.loop_lag = Histogram(
            "arena_event_loop_lag_seconds", f"How late the event loop woke a task that slept {LOOP_LAG_INTERVAL_S} s",
            buckets=_LAG_BUCKETS_S, registry=self.registry)
        self.loop_lag_last = Gauge(
            "arena_event_loop_lag_last_seconds", "The event loop's lag at its latest measure", registry=self.registry)
        self._arena = _ArenaCollector()
        self.registry.register(self._arena)

    def watch(self, manager: MatchManager, launcher: SeatLauncher, hub: Hub) -> None:
        """Report what these count, read at each scrape (the lifespan calls this once they exist)."""
        self._arena.sources = (manager, launcher, hub)

    async def watch_loop_lag(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Measure the event loop's lag every ``LOOP_LAG_INTERVAL_S``, until cancelled."""
        task_status.started()
        while True:
            slept_at = time.monotonic()
            await anyio.sleep(LOOP_LAG_INTERVAL_S)
            lag_s = max(0.0, time.monotonic() - slept_at - LOOP_LAG_INTERVAL_S)
            self.loop_lag.observe(lag_s)
            self.loop_lag_last.set(lag_s)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The registry's text in the format the scraper accepts (Prometheus' text format unless
        it asks for OpenMetrics), and its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: this process's metrics."""
    metrics: Metrics = request.app.state.metrics
    body, content_type = metrics.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


class _ArenaCollector:
    """The arena's own counts, read when the registry is collected (see the module docstring)."""

    def __init__(self) -> None:
        self.sources: tuple[MatchManager, SeatLauncher, Hub] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.sources is None:  # before the lifespan has started them
            return
        manager, launcher, hub = self.sources
        counts = manager.counts
        yield GaugeMetricFamily("arena_matches_live", "Matches this process runs now", value=len(manager.running))
        yield GaugeMetricFamily("arena_feeds_live", "Live match feeds on this process's hub (the matches it runs and, "
                                "on a front, those of other processes its spectators watch)", value=len(hub.feeds))
        ended = CounterMetricFamily("arena_matches_ended", "Matches this process ran (or stopped) and stored ended, "
                                    "by status", labels=["status"])
        for status in ENDED:
            ended.add_metric([status.value], counts.ended[status])
        yield ended
        yield CounterMetricFamily("arena_moves", "Steps recorded by the matches this process runs (each match's "
                                  "initial state aside)", value=counts.moves)
        outcomes = CounterMetricFamily("arena_seat_outcomes", "Seats of the matches this process stored ended, by "
                                       "how each ended", labels=["status"])
        for outcome in OUTCOMES:
            outcomes.add_metric([outcome.value], counts.outcomes[outcome])
        yield outcomes
        yield CounterMetricFamily("arena_match_internal_errors", "Matches aborted by the server's own fault",
                                  value=manager.internal_errors)
        yield CounterMetricFamily("arena_queue_claims", "Matches this worker claimed from the cluster's queue",
                                  value=counts.claims)
        started = CounterMetricFamily("arena_sandbox_seats_started", "Seat processes started, by how (forked from "
                                      "the zygote, or a fresh sandboxed interpreter)", labels=["how"])
        for how, count in launcher.started.items():
            started.add_metric([how], count)
        yield started
        yield CounterMetricFamily("arena_sandbox_seat_start_failures", "Seat processes that could not be started",
                                  value=launcher.start_failures)
        cores = manager.cores
        if cores is not None:
            yield GaugeMetricFamily("arena_core_gate_places", "Thinking seats allowed at once (one per core)",
                                    value=cores.cores)
            yield GaugeMetricFamily("arena_core_gate_busy", "Seats thinking now, each on a core of its own",
                                    value=cores.busy)
            yield GaugeMetricFamily("arena_core_gate_waiting", "Turns waiting for a core before their clock starts",
                                    value=cores.waiting)


class MetricsMiddleware:
    """Counts HTTP requests and WebSockets by route template (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[str, str] = {}  # a route's path -> its label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _route(self, scope: Scope) -> str:
        """The template of the route the router matched (it notes it in the scope), or ``unmatched``."""
        path = getattr(scope.get("route"), "path", None)
        if not isinstance(path, str):
            return "unmatched"
        label = self._templates.get(path)
        if label is None:
            label = self._templates[path] = _CONVERTOR.sub(r"{\1}", path) or "/"
        return label

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # unless a response starts: an error that escapes is answered 500 outside

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = self._route(scope)
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.http_seconds.labels(route).observe(time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        live: Gauge | None = None

        async def sending(message: Message) -> None:
            nonlocal live
            if message["type"] == "websocket.accept":
                live = self.metrics.sockets.labels(self._kind(scope))
                live.inc()
            elif message["type"] == "websocket.close":
                self.metrics.socket_closes.labels(self._kind(scope), str(message.get("code", 1000))).inc()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if live is not None:
                live.dec()

    def _kind(self, scope: Scope) -> str:
        route = self._route(scope)
        return SOCKET_KINDS.get(route, route)
