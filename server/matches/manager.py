"""Starting and supervising matches inside the app: storage, seats, runner and hub together.

``MatchManager.start_match`` checks the request, stores the match as ``pending`` and runs it
in the app's task group. Each running match owns its seats (sandboxed processes, or remote
seats bound to agent connections through ``RemoteAgents``) and its hub feed; it records
every step to storage (through the batching writer) and to the feed as it happens, and after
each step publishes to the seats' owners what each seat printed meanwhile and its timing
(``seat_debug``, shown only on owners' debug views). At the end the logs and the result are
stored (a ladder match rated with them, in the same transaction), and only once the whole
game is durable are ``end``, the lobby's ``match_ended`` and the rating changes announced.

A match ends one way or another, and only that match: a seat's fault is a result; a match
stopped by ``stop_match`` (its seat's owner or an operator) or failing by the server's own
fault (a bug, a game plugin that raises, storage refusing a step) is stored ``aborted`` with
the reason, its seats are killed and its spectators get ``end``. Nothing raised inside a match
reaches the app's task group, where it would end every other match and the app with them.

In a cluster (PostgreSQL) a match runs under a lease: ``start_match`` stores it claimed by
this process (``lease``), or, on a front (``runs_matches`` False), stores it pending for a
worker and runs nothing; a worker's claim loop hands the matches it claims to ``run_claimed``.
A match whose lease is lost (``abandon``, or a write refused with ``LeaseLost``) stops without
storing or announcing anything: another worker runs it again, or it was stopped.

A server that drains before it stops (``server/drain.py``) calls ``start_draining``: from then
on ``start_match`` refuses (``ServerDraining``) while the matches running go on; ``wait_idle``
returns once none is left, and ``stop_all`` stops those still running at the drain's end, each
stored ``aborted`` with the reason and ended for its spectators like any stopped match.

A user's challenge comes with a ``ChallengeQuota``: the user's matches at once and per hour,
and the live seats of every account signed up from the user's address. Storage counts them
from the matches it keeps when it stores the challenge (``server/storage/quotas.py``), so they
hold across every process of a cluster, and a match's seats are free again once it is stored
finished or aborted, however it ends.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from protocol.errors import (
    AgentNotFound,
    ArenaError,
    ConfigError,
    LeaseLost,
    MatchOver,
    ServerDraining,
    describe_error,
)
from protocol.messages import JSON, MatchStarted
from server.sandbox import Limits, SeatLauncher
from server.storage import (
    AgentRecord,
    ChallengeQuota,
    Lease,
    MatchRecord,
    MatchStatus,
    NewSeat,
    SeatResult,
    Storage,
)

from .cores import CoreGate
from .counts import MatchCounts
from .documents import match_document, result_document
from .games import ConfigRanges, get_game, resolve_config
from .hub import Hub, MatchFeed
from .lobby import end_frames
from .recorder import SeatDebugFeed, StepLog, store_and_publish
from .remote import RemoteAgents
from .runner import DEFAULT_MAX_ACTION_BYTES, MatchResult, MatchSpec, run_match
from .seats import AgentLink, SeatSource, TellsResult, open_links

__all__ = ["MatchManager", "SeatRelay"]

log = logging.getLogger(__name__)


class SeatRelay(Protocol):
    """Where the remote seats of a cluster's matches are played (``server/cluster/agents.py``)."""

    def open_seat(self, record: MatchRecord, seat: int, agent: AgentRecord) -> AbstractContextManager[AgentLink]:
        """The seat's link for the block's duration."""
        ...


class MatchManager:
    """Runs matches in the app's task group; one per server process."""

    def __init__(
        self, storage: Storage, hub: Hub, task_group: TaskGroup, limits: Limits, launcher: SeatLauncher,
        on_finished: Callable[[MatchRecord], Any] | None = None, remotes: RemoteAgents | None = None,
        max_action_bytes: int = DEFAULT_MAX_ACTION_BYTES, config_ranges: ConfigRanges | None = None,
        lease: Lease | None = None, runs_matches: bool = True, exchange: SeatRelay | None = None,
        cores: CoreGate | None = None,
    ) -> None:
        self.storage = storage
        # The seats of every match run here think on a core of their own (cores.py).
        self.cores = cores
        # In a cluster the remote seats are relayed to the fronts that hold their agents' connections.
        self.exchange = exchange
        # Who runs the matches started here (stored claimed by it), unless this process only
        # stores them for the workers (a front: runs_matches False).
        self.lease = lease
        self.runs_matches = runs_matches
        self.config_ranges = config_ranges if config_ranges is not None else ConfigRanges()
        self._stops: dict[int, _Stop] = {}  # running matches that can still be stopped, by id
        self.internal_errors = 0  # matches aborted by the server's own fault since start
        self.counts = MatchCounts()  # moves, ends and outcomes since start (GET /metrics)
        self.last_internal_error: str | None = None
        self.max_action_bytes = max_action_bytes  # one action, as JSON (see runner.MatchSpec)
        self.hub = hub
        self.task_group = task_group
        self.limits = limits
        self.launcher = launcher  # opens the seats of every match (the lifespan owns it and its fork server)
        self.on_finished = on_finished
        self.remotes = remotes if remotes is not None else RemoteAgents()
        self.running: dict[int, MatchRecord] = {}
        self.is_draining = False  # the server stops soon: no new match starts (start_draining)
        self._idle: anyio.Event | None = None  # set when the last running match ends (wait_idle)

    async def start_match(
        self, game: str, agent_ids: Sequence[int], config: dict[str, JSON] | None = None, *,
        seed: int | None = None, pace_s: float = 0.0, tags: dict[str, JSON] | None = None,
        rated: bool = False, quota: ChallengeQuota | None = None,
    ) -> MatchRecord:
        """Check and store a new match, then run it in the background. ``rated`` marks a ladder
        match (stored rated only between distinct agents); ``quota`` makes it a user's
        challenge, stored only within the user's and its holder's limits.

        Raises:
            UnknownGame, ConfigError: bad game or configuration.
            AgentNotFound: an unknown agent id.
            RateLimited, ConfigError: ``quota``'s limits leave no room for it.
            ServerDraining: the server is draining before it stops.
        """
        if self.is_draining:
            raise ServerDraining("the server is shutting down and starts no new match; start it on another "
                                 "server, or again after this one restarts")
        game_cls = get_game(game)
        resolved = resolve_config(game_cls, config, self.config_ranges.for_game(game_cls))
        if len(agent_ids) != game_cls.num_seats:
            raise ConfigError(f"{game} needs {game_cls.num_seats} agents, got {len(agent_ids)}")
        found = await self.storage.get_agents(agent_ids)  # one query, each at its current version
        missing = [agent_id for agent_id in agent_ids if agent_id not in found]
        if missing:
            raise AgentNotFound(missing[0])
        agents = [found[agent_id] for agent_id in agent_ids]
        for agent in agents:
            if agent.game != game:
                raise ConfigError(f"agent {agent.id} ({agent.name!r}) plays {agent.game}, not {game}")
            if agent.disabled:
                raise ConfigError(f"agent {agent.id} ({agent.name!r}) is disabled by its owner")
        seed = secrets.randbits(31) if seed is None else seed
        if pace_s > 0:  # stored with it: whichever process runs the match (again) keeps its pace
            tags = {**(tags or {}), "pace_s": pace_s}
        record = await self.storage.create_match(
            game, game_cls.rules_version, resolved, seed,
            [NewSeat(agent.id, agent.version) for agent in agents], tags, rated=rated,
            lease=self.lease if self.runs_matches else None, quota=quota,
        )
        if not self.runs_matches:  # stored pending: a worker claims and runs it
            return record
        self.running[record.id] = record
        self.task_group.start_soon(self._run, record, agents, pace_s)
        return record

    async def run_claimed(self, record: MatchRecord) -> None:
        """Run a match this process claimed from the queue, with its seats' stored versions and
        the pace stored with it; one whose agent is gone is stored aborted with the reason instead.

        Raises:
            LeaseLost: the match was taken over before it could be stored aborted.
            StorageError: storage failed.
        """
        found = await self.storage.get_agents([seat.agent_id for seat in record.seats])
        agents: list[AgentRecord] = []
        try:
            for seat in record.seats:
                agent = found.get(seat.agent_id)
                if agent is None:
                    raise AgentNotFound(seat.agent_id)
                if agent.version != seat.version:
                    code = await self.storage.get_agent_code(seat.agent_id, seat.version)
                    agent = dataclasses.replace(agent, version=seat.version, code=code)
                agents.append(agent)
        except AgentNotFound as exc:
            await self._store_abort(record, f"aborted: {exc}")
            return
        self.counts.claims += 1
        self.running[record.id] = record
        self.task_group.start_soon(self._run, record, agents, _stored_pace(record))

    def abandon(self, match_id: int, reason: str) -> None:
        """Stop running a match whose lease this process lost, without storing anything: another
        worker runs it now (or it was stopped), and its writes from here are refused anyway."""
        stop = self._stops.get(match_id)
        if stop is None or match_id not in self.running:
            return
        log.warning("match_id=%s abandoned: %s", match_id, reason)
        stop.is_lost = True
        stop.scope.cancel()

    def start_draining(self) -> None:
        """Start no new match from now on (``start_match`` raises ``ServerDraining``); the
        ladder's scheduler and a worker's claim loop see ``is_draining`` and stop too."""
        self.is_draining = True

    async def wait_idle(self) -> None:
        """Return once no match runs here."""
        while self.running:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def stop_all(self, reason: str) -> int:
        """Stop every running match as ``stop_match`` does, each stored ``aborted`` with
        ``reason`` (a match whose result is being stored ends as it was); return once they have
        ended, or after ``_STOP_WAIT_S``; how many were stopped."""
        stopped = 0
        for match_id in list(self.running):
            stop = self._stops.setdefault(match_id, _Stop())  # its task may not have run yet
            if stop.is_playing:
                stop.reason = stop.reason or reason
                stop.scope.cancel()
                stopped += 1
        with anyio.move_on_after(_STOP_WAIT_S):
            await self.wait_idle()
        return stopped

    async def stop_match(self, match_id: int, reason: str) -> MatchRecord:
        """Stop a pending or live match: its seats are killed and it is stored ``aborted`` with
        ``reason`` (the first stop's, if two race); returns the stored match.

        Raises:
            MatchNotFound: no such match.
            MatchOver: the match has ended already, or ended before the stop reached it.
        """
        record = await self.storage.get_match(match_id)
        if match_id not in self.running:
            if record.status in (MatchStatus.PENDING, MatchStatus.LIVE):  # no task runs it (cannot be played)
                return await self._store_abort(record, reason)
            raise MatchOver(f"match {match_id} is {record.status.value} already; only a pending or live match "
                            "can be stopped")
        stop = self._stops.setdefault(match_id, _Stop())
        if not stop.is_playing:
            raise MatchOver(f"match {match_id} has ended already (its result is being stored)")
        stop.reason = stop.reason or reason
        stop.scope.cancel()
        with anyio.move_on_after(_STOP_WAIT_S):
            await stop.done.wait()
        final = await self.storage.get_match(match_id)
        if final.status is MatchStatus.FINISHED:
            raise MatchOver(f"match {match_id} is finished: it ended before it could be stopped")
        return final  # aborted; or still live if its seats are slow to die, and stopping

    async def _run(self, record: MatchRecord, agents: list[AgentRecord], pace_s: float) -> None:
        spec = MatchSpec(record.game, record.config, record.seed, match_id=record.id, pace_s=pace_s,
                         max_action_bytes=self.max_action_bytes)
        stop = self._stops.setdefault(record.id, _Stop())  # stop_match may have come first
        try:
            with self.hub.open_feed(record.id, match_document(record)) as feed:
                try:
                    final = await self._play_and_store(spec, record, agents, feed, stop)
                except LeaseLost:
                    raise
                except ArenaError as exc:
                    log.exception("match %s aborted", record.id)
                    final = await self._store_abort(record, f"aborted: {exc}")
                except anyio.get_cancelled_exc_class():
                    try:
                        await self._store_abort(record, "server shut down while the match was live")
                    except LeaseLost:  # another worker runs it now: nothing of ours to store
                        pass
                    raise
                except Exception as exc:  # our own bug, or a game plugin's: this match ends, the others go on
                    log.exception("match %s failed by an internal error; stored aborted", record.id)
                    self._count_internal_error(record.id, exc)
                    final = await self._store_abort(record, f"aborted by an internal error: {describe_error(exc)}")
                document = match_document(final)
                feed.publish_end(result_document(final), document)
        except LeaseLost as exc:  # its lease ran out and another worker took it over: not ours to end
            log.warning("match_id=%s stopped here: %s", record.id, exc)
            return
        except Exception as exc:  # even its abort could not be stored or announced (storage gone?)
            log.exception("match %s: its end could not be stored or announced", record.id)
            self._count_internal_error(record.id, exc)
            return
        finally:
            stop.is_playing = False
            stop.done.set()
            self._stops.pop(record.id, None)
            self.running.pop(record.id, None)
            if not self.running and self._idle is not None:
                self._idle.set()
                self._idle = None
        try:
            for frame in end_frames(document, final.rating_changes):  # match_ended, then its rating changes
                self.hub.publish_lobby(frame)
            if self.on_finished is not None and final.status is MatchStatus.FINISHED:
                self.on_finished(final)
        except Exception:  # the match is stored; a failing announcement must not end the app
            log.exception("match %s: its end could not be announced", record.id)

    def _count_internal_error(self, match_id: int, exc: BaseException) -> None:
        self.internal_errors += 1
        self.last_internal_error = f"match {match_id}: {describe_error(exc)}"

    async def _play_and_store(
        self, spec: MatchSpec, record: MatchRecord, agents: list[AgentRecord], feed: MatchFeed, stop: _Stop,
    ) -> MatchRecord:
        with stop.scope:  # cancelled by stop_match: the seats are killed as _play's stack unwinds
            played = await self._play(spec, record, agents, feed)
        stop.is_playing = False  # from here on the result is stored: too late to stop
        if stop.is_lost:
            raise LeaseLost(f"match {record.id}: this worker's lease on it ran out")
        if stop.scope.cancelled_caught or stop.reason is not None:
            log.info("match %s stopped: %s", record.id, stop.reason)
            return await self._store_abort(record, stop.reason or "stopped")
        result, logs = played
        seats = [
            SeatResult(s.agent_id, s.agent_name, s.owner, s.version, o.status, o.reward, o.reason)
            for s, o in zip(record.seats, result.seats, strict=True)
        ]
        # finish_match makes every step durable first: only then is the end announced. The seats'
        # logs are stored in the same transaction.
        final = await self.storage.finish_match(record.id, MatchStatus.FINISHED, None, seats, time.time(), logs=logs)
        self.counts.count_end(final)
        log.info("match_id=%s finished after %d moves: %s", record.id, result.steps,
                 ", ".join(f"seat {i} {o.status}" for i, o in enumerate(result.seats)))
        return final

    async def _play(
        self, spec: MatchSpec, record: MatchRecord, agents: list[AgentRecord], feed: MatchFeed
    ) -> tuple[MatchResult, list[str]]:
        match_id = record.id
        # A remote agent's seat (relayed to the agent's front in a cluster), or the code of the
        # version stored with the match (read with it).
        seats: list[SeatSource] = [
            (self.exchange.open_seat(record, seat, agent) if self.exchange is not None
             else self.remotes.open_seat(match_id, seat, agent)) if agent.remote else agent.code or ""
            for seat, agent in enumerate(agents)
        ]
        async with open_links(self.launcher, seats, self.limits, label=f"match {match_id}") as links:
            started_at = time.time()
            await self.storage.set_match_live(match_id, started_at)
            feed.match = {**feed.match, "status": MatchStatus.LIVE.value, "started_at": started_at}
            self.hub.publish_lobby(MatchStarted(match=feed.match))
            debug = SeatDebugFeed(feed, links)
            recorder = StepLog(store_and_publish(self.storage, match_id, feed), debug.after_step,
                               self.counts.count_step, keep=False)
            # Its turns share the cores with other users' matches as its user's (the ladder's: None).
            share = self.cores.share(record.tags.get("user_id")) if self.cores is not None else None
            result = await run_match(spec, links, recorder, share)
            debug.publish_rest()
            for link in links:
                if isinstance(link, TellsResult):
                    link.finish({"match_id": match_id, "status": MatchStatus.FINISHED.value, **result.to_json()})
            return result, [link.log_text() for link in links]

    async def _store_abort(self, record: MatchRecord, reason: str) -> MatchRecord:
        with anyio.CancelScope(shield=True):
            final = await self.storage.finish_match(record.id, MatchStatus.ABORTED, reason, record.seats, time.time())
        self.counts.count_end(final)
        return final


def _stored_pace(record: MatchRecord) -> float:
    """The least time per step a match was created with (its ``pace_s`` tag; 0: unpaced)."""
    pace_s = record.tags.get("pace_s")
    return float(pace_s) if isinstance(pace_s, int | float) and 0 < pace_s <= _MAX_PACE_S else 0.0


_MAX_PACE_S = 60.0
# How long a stop waits for the match to be stored aborted before it answers anyway: its seats
# die within their grace period (0.5 s) and storing it is quick, unless the machine is swamped.
_STOP_WAIT_S = 10.0


class _Stop:
    """How a running match can be stopped: its cancel scope, who stopped it, and when it is over."""

    __slots__ = ("done", "is_lost", "is_playing", "reason", "scope")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.reason: str | None = None
        self.is_lost = False  # its lease was lost: stop without storing anything
        self.is_playing = True  # until the result is being stored
        self.done = anyio.Event()
