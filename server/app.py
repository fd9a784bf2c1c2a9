"""The Starlette application and its lifespan: storage, hub, matches, ratings and the scheduler.

The role (``Settings.role``) picks what runs: ``all`` everything; ``front`` the HTTP face and
WebSockets, storing matches for the workers to claim (no fork server, no matches run here);
``worker`` the seats' launcher, the match manager and the queue's claim loop
(``server/cluster/``), with ``GET /api/health`` as its only route. On PostgreSQL a process
runs its matches under a lease named for it (``Settings.default_worker_name``), also in
``all``; on start-up and at shutdown it aborts only the matches it holds itself. Every process
of a cluster with the ladder on competes to lead it (``server/cluster/leader.py``): the leader
alone runs the scheduler and the rater."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from protocol.errors import NameTaken
from server.bots import example_bots
from server.config import Settings
from server.health import Health
from server.http.api import health as health_endpoint
from server.http.auth import hash_token, new_token
from server.http.errors import exception_handlers
from server.http.fair import FairRequests
from server.http.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from server.http.names import EXAMPLES_USER
from server.http.ratelimit import RateLimiter
from server.http.routes import routes
from server.http.sockets import OpenSockets
from server.ladder.ratings import Rater
from server.ladder.scheduler import LadderScheduler, lead_ladder
from server.matches.cores import CoreGate, usable_cores
from server.matches.hub import Hub
from server.matches.manager import MatchManager
from server.matches.remote import RemoteAgents
from server.sandbox import serve_seats
from server.sandbox.layers import require_layers
from server.state import ArenaState
from server.storage import (
    AgentRecord,
    Lease,
    MatchRecord,
    Storage,
    is_postgres_url,
    open_storage,
)

__all__ = ["create_app", "seed_examples"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """The arena as an ASGI app; everything it owns lives inside its lifespan."""
    settings = settings or Settings()
    metrics = Metrics()  # this app's own registry: tests run many apps in one process

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Probing the sandbox layers starts a sandboxed interpreter: off the event loop, once.
        await anyio.to_thread.run_sync(functools.partial(
            require_layers, settings.require_layers, settings.limits, validates=settings.validate_submissions))
        # The seats' launcher and its fork server (if any) start first, off the event loop, and stop
        # after the matches; the match manager opens every seat through it.
        # A front runs no seats: a launcher without a fork server.
        seats = serve_seats(settings.seat_mode if settings.runs_matches else "fresh", limits=settings.limits,
                            pool_size=settings.seat_pool_size)
        is_cluster = is_postgres_url(settings.db)
        if is_cluster:  # the cluster's parts load asyncpg, which one process on SQLite does without
            from server.cluster import AgentDesk, Leadership, QueueWorker, Relay, SeatExchange
            from server.storage import PostgresStorage
        lease = Lease(settings.default_worker_name(), settings.lease_s) if settings.runs_matches else None
        # On SQLite the one process owns every match; on PostgreSQL only those its name holds.
        mine = lease.worker if is_cluster and lease is not None else None
        async with seats as launcher, open_storage(settings.db) as storage:
            if not is_cluster or mine is not None:
                aborted = await storage.abort_unfinished("server stopped while the match was live", worker=mine)
                if aborted:
                    log.warning("marked %d interrupted matches aborted", aborted)
            try:
                async with anyio.create_task_group() as tg:
                    hub = Hub(settings.spectator_queue_frames, window_events=settings.spectator_window_events,
                              snapshot_events=settings.spectator_snapshot_events,
                              snapshot_bytes=settings.spectator_snapshot_bytes)
                    remotes = RemoteAgents(allowance_cap_s=settings.remote_allowance_cap_s,
                                           connections_per_user=settings.remote_connections_per_user)
                    # Only the ladder's matches are rated (stored rated by the scheduler); the rater
                    # also finishes what a restart left (--no-ladder only stops scheduling).
                    health = Health()  # the background tasks record their failures here, for /api/health
                    rater = Rater(storage, hub, health=health)
                    ladder: LadderScheduler | None = None
                    worker: QueueWorker | None = None

                    def finished(record: MatchRecord) -> None:  # a match ended: rate it, fill its slot
                        rater.match_finished(record)
                        if ladder is not None:
                            ladder.match_finished(record)
                        if worker is not None:
                            worker.match_ended()

                    # In a cluster a remote agent's seat is played across the database: the process
                    # that runs the match relays it (exchange) to the front that holds the agent's
                    # connection (desk); see server/cluster/agents.py.
                    exchange: SeatExchange | None = None
                    if is_cluster and settings.runs_matches:
                        assert isinstance(storage, PostgresStorage)
                        exchange = SeatExchange(storage, settings.db, allowance_cap_s=settings.remote_allowance_cap_s)
                        await tg.start(exchange.run)
                    if is_cluster and settings.serves_http:
                        assert isinstance(storage, PostgresStorage)
                        await tg.start(AgentDesk(storage, settings.db, remotes).run)
                    manager = MatchManager(storage, hub, tg, settings.limits, launcher, on_finished=finished,
                                           remotes=remotes, max_action_bytes=settings.max_action_bytes,
                                           config_ranges=settings.config_ranges, lease=lease,
                                           runs_matches=settings.runs_matches, exchange=exchange,
                                           cores=CoreGate(settings.thinking_seats or usable_cores()))
                    metrics.watch(manager, launcher, hub)
                    await tg.start(metrics.watch_loop_lag)
                    # In a cluster with the ladder on, the rater runs on the elected leader (below).
                    if not (is_cluster and settings.ladder):
                        await tg.start(rater.run)
                    if is_cluster and lease is not None:
                        assert isinstance(storage, PostgresStorage)
                        worker = QueueWorker(storage, manager, lease, max_attempts=settings.max_attempts,
                                             max_matches=settings.worker_matches, poll_s=settings.claim_poll_s,
                                             url=settings.db)
                        await tg.start(worker.run)
                    # Every process with the ladder on has a scheduler: it runs here alone, or in a
                    # cluster on the leader, and answers GET /api/ladder everywhere.
                    if settings.ladder:
                        ladder = LadderScheduler(manager, settings, health=health, is_cluster=is_cluster)
                    # A front's spectators watch matches run anywhere in the cluster: the relay
                    # brings those of other processes to this hub (server/cluster/relay.py).
                    relay: Relay | None = None
                    if is_cluster and settings.serves_http:
                        relay = Relay(hub, settings.db, worker=lease.worker if lease is not None else None)
                        await tg.start(relay.run)
                    sockets = OpenSockets(per_address=settings.sockets_per_address,
                                          per_match=settings.spectators_per_match)
                    app.state.arena = ArenaState(settings, storage, hub, manager, RateLimiter(), sockets,
                                                 health=health, ladder=ladder, relay=relay)
                    if settings.seed_examples and settings.serves_http:
                        await seed_examples(storage)
                    if ladder is not None and is_cluster:
                        ladder.leadership = Leadership(
                            settings.db, functools.partial(lead_ladder, ladder, rater), retry_s=settings.leader_retry_s,
                            name=settings.worker_name or f"{socket.gethostname()}:{settings.port}")
                        await tg.start(ladder.leadership.run)
                    elif ladder is not None:
                        tg.start_soon(ladder.run)
                    try:
                        yield
                    finally:
                        tg.cancel_scope.cancel()
            finally:
                # A match stored just before the shutdown may be cancelled before its task ran
                # (and could store its own abort): nothing may stay pending or live.
                with anyio.CancelScope(shield=True):
                    try:
                        if not is_cluster or mine is not None:
                            await storage.abort_unfinished("server shut down before the match ended", worker=mine)
                    except Exception:  # a failing storage must not keep the fork server and the rest open
                        log.exception("could not mark the unfinished matches aborted at shutdown")

    # A worker answers only its health and metrics; everything else is a front's.
    served = routes if settings.serves_http else [Route("/api/health", health_endpoint),
                                                  Route("/metrics", metrics_endpoint)]
    app = Starlette(routes=served, exception_handlers=exception_handlers, lifespan=lifespan,
                    middleware=[Middleware(MetricsMiddleware, metrics=metrics),
                                Middleware(FairRequests, per_client=settings.requests_per_client,
                                           rate_per_s=settings.requests_per_client_s,
                                           burst=2 * settings.requests_per_client_s)])
    app.state.metrics = metrics
    return app


async def seed_examples(storage: Storage) -> list[AgentRecord]:
    """Store every example bot under the ``arena`` user (a new version only if its code changed).
    The fronts of a cluster seed one database as they start, maybe at once: a user or an agent
    another process stored meanwhile is taken as it is."""
    user = await storage.get_user_by_name(EXAMPLES_USER)
    if user is None:
        try:
            # Nobody holds this token: the examples' owner never signs in.
            user = await storage.create_user(EXAMPLES_USER, hash_token(new_token()))
        except NameTaken:
            user = await storage.get_user_by_name(EXAMPLES_USER)
            if user is None:
                raise
    existing, _ = await storage.list_agents(user_id=user.id, limit=200)
    by_name = {a.name: a for a in existing}
    stored = []
    for game, bots in example_bots().items():
        for name, code in bots:
            agent = by_name.get(name)
            if agent is None or agent.code != code:
                try:
                    agent = await storage.save_agent(user.id, name, game, code)
                except NameTaken:  # a new example that another process stored meanwhile
                    again, _ = await storage.list_agents(user_id=user.id, limit=200)
                    agent = next(a for a in again if a.name == name)
            stored.append(agent)
    return stored
