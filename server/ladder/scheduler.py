"""The ladder's scheduler: rate at full speed, show at watching speed.

Theory of operation
-------------------
The ladder has two jobs, and a kind of slot for each:

* **rated slots** (``ladder_slots``; by default as many as the CPUs this process may use) run
  matches unpaced, as fast as the bots think: they are what rates the bots, so the ladder's
  throughput is bounded by the bots, not by a pace meant for human eyes;
* **featured slots** (``ladder_featured``, a few) run matches paced at ``ladder_pace_s`` a step
  for people to follow, drawn among each game's best-rated agents in turn; the lobby shows
  them first. They are ladder matches too, and rated.

Whenever a slot is free the scheduler fills it: it wakes at once when a ladder match ends or
an agent is submitted or changed (:meth:`LadderScheduler.wake`), and looks again every quarter
second otherwise.

1. The game: among the games with two agents to pair, the one with the fewest live ladder
   matches of that kind, then the one whose neediest agent waits longest. No game holds every
   slot while another has agents waiting; and every game that can pair two agents has a rated
   match running even when the slots are full (then it runs beyond them), so that matches far
   longer than the others (a thousand steps of slow rock-paper-scissors, holding the slots they
   took while their game was alone) never keep another game off the ladder.
2. The pair (``server.ladder.rules``): the agent most in need of a match first (one that has not
   played with its current version, a new agent or a new version, for sure; then the fewest
   such matches; then the longest wait; an agent in a live match counts as playing now),
   against one of the agents closest to it in rating.

Each agent's count of ladder matches with its current version comes from storage once per
version; the scheduler counts the matches it starts after that itself. The agents of a game
are read again after a wake-up, or every few seconds. Only enabled agents with code are
scheduled; remote agents play when challenged. Every match it starts is ``rated``: the ladder's
matches are the only ones ``server/ladder/ratings.py`` rates, and an agent is never paired with itself.

A server that drains before it stops (``server/drain.py``) starts no match: the scheduler stops
at its next pass (the cluster's next leader takes over once this process has gone).

A pass that fails, for whatever reason, is logged and recorded in ``health`` (so that ``GET
/api/health`` says which game's ladder fails, and why); that game is tried again after a pause
that doubles up to a minute, while the others go on. It never ends the app.

In a cluster
------------
Several processes share one PostgreSQL database (``is_cluster``); every one of them with the
ladder on has a scheduler, and the one elected leader (``server/cluster/leader.py``) runs it:
:meth:`LadderScheduler.run` starts with a term of leadership and is cancelled when it ends.
Matches run anywhere (a front only stores them pending, a worker claims and runs them), so the
matches that hold the slots, and the agents busy in them, are not this process's
``manager.running``: each pass reads them from storage (``unfinished_ladder_matches``: the
ladder's pending and live matches, one statement through a partial index), and counts those it
starts until the next read. A new term reads everything again (agents, their counts of
matches), since the leader before may have started matches meanwhile. On one process (SQLite)
the scheduler runs from start to end, and ``manager.running`` is every match there is: it reads
that, which costs nothing.

The slots stay the leader's settings (``ladder_slots``: by default the CPUs of the leader's
machine), for the whole cluster: set them to what the workers can run. An agent submitted on a
front that does not lead wakes nobody: the leader reads it with the game's agents within
``_AGENTS_TTL_S``.

``GET /api/ladder`` answers on every front, from the database on any process that does not
lead (:meth:`LadderScheduler.status`: the ladder's unfinished matches at most every
``_VIEW_TTL_S``, the agents and their counts of matches every ``_AGENTS_TTL_S``), and names the
process that leads. In a cluster the matches of the last hour are read from storage too, at
most every ``_ENDS_TTL_S`` and only when the status is asked for, since this process sees only
the ends of the matches it runs.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from protocol.errors import ArenaError
from protocol.messages import JSON
from server.config import Settings
from server.health import Component, Health, describe
from server.ladder.ratings import Rater
from server.ladder.rules import Candidate, choose_featured_pair, choose_pair, need
from server.matches.games import game_names
from server.matches.manager import MatchManager
from server.storage import AgentRecord, LadderMatch, MatchRecord

if TYPE_CHECKING:  # the cluster's side is PostgreSQL's, imported where a cluster runs
    from server.cluster import Leadership

__all__ = ["LadderScheduler", "SlotKind", "ladder_slots", "lead_ladder"]

log = logging.getLogger(__name__)

_POLL_S = 0.25  # how often a full ladder looks for a free slot without being woken
_AGENTS_TTL_S = 5.0  # the agents of a game are read again at least this often
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 60.0
_HOUR_S = 3600.0
_QUEUE_SHOWN = 10  # agents of each game listed in the ladder's status
# In a cluster, for the status: a process that does not lead reads the ladder's unfinished
# matches at most this often, and every process the matches of the last hour.
_VIEW_TTL_S = 1.0
_ENDS_TTL_S = 30.0


def ladder_slots(settings: Settings) -> int:
    """The rated slots: ``ladder_slots``, or (0) the CPUs this process may run on."""
    if settings.ladder_slots > 0:
        return settings.ladder_slots
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


async def lead_ladder(scheduler: LadderScheduler, rater: Rater) -> None:
    """A cluster leader's work (``server/cluster/leader.py``): the rater and the scheduler, until
    cancelled as leadership ends; their failures are then no longer this process's to report."""
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(rater.run)
            tg.start_soon(scheduler.run)
    finally:
        scheduler.health.recovered(Component.SCHEDULER)
        rater.health.recovered(Component.RATINGS)


class SlotKind(enum.Enum):
    FEATURED = "featured"
    RATED = "rated"


@dataclass
class _Entrant:
    """One agent the ladder may pair, as the scheduler knows it."""

    agent: AgentRecord
    rating: float
    version_matches: int  # ladder matches of its current version: stored ones, then those started here
    last_played: float | None  # Unix time: its last ladder match started here, or its last rating


@dataclass
class _Game:
    """What the scheduler knows of one game's agents, read again after ``_AGENTS_TTL_S``."""

    entrants: dict[int, _Entrant] = field(default_factory=dict)
    read_at: float = -_AGENTS_TTL_S  # monotonic time of the last read
    failing_until: float = 0.0  # monotonic time of the next try after a failure
    pause_s: float = 0.0
    featured_at: float = 0.0  # monotonic time its last featured match started (the turn of games)


class LadderScheduler:
    """Keeps the ladder's featured and rated slots full; one per server process, run by one
    process of a cluster (``is_cluster``: the one that leads, see ``leadership``)."""

    def __init__(
        self, manager: MatchManager, settings: Settings, *, rng: random.Random | None = None,
        health: Health | None = None, clock: Callable[[], float] = time.time, is_cluster: bool = False,
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.slots = ladder_slots(settings)
        self.featured = settings.ladder_featured
        self.rng = rng or random.Random()
        self.health = health if health is not None else Health()
        self.clock = clock
        self.is_cluster = is_cluster
        self.leadership: Leadership | None = None  # in a cluster: the election that runs this scheduler
        self.is_running = False
        self.games = {name: _Game() for name in game_names()}
        # (Unix time, game, agent ids) of the ladder matches that ended in the last hour
        self.ended: deque[tuple[float, str, tuple[int, ...]]] = deque()
        self._ended_read_at = -_ENDS_TTL_S  # in a cluster: monotonic time ``ended`` was read
        # In a cluster: the ladder's matches not ended, by id, as last read, with those started since.
        self._unfinished: dict[int, LadderMatch] = {}
        self._unfinished_read_at = -_VIEW_TTL_S  # monotonic time of that read
        self._wake = anyio.Event()

    # -- the loop ----------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for free slots now, and read the agents again: a match ended, or an agent changed."""
        for game in self.games.values():
            game.read_at = -_AGENTS_TTL_S
        self._wake.set()

    def match_finished(self, record: MatchRecord) -> None:
        """The match manager's ``on_finished``: a ladder match's slot is free (never blocks or raises)."""
        if record.rated and not self.is_cluster:  # a cluster's are read from storage, wherever they ran
            agents = tuple(seat.agent_id for seat in record.seats)
            self.ended.append((record.finished_at or self.clock(), record.game, agents))
        self._wake.set()

    @property
    def is_leading(self) -> bool:
        """Whether this process runs the ladder: always on one process; in a cluster, while it leads."""
        return self.leadership.is_leader if self.leadership is not None else not self.is_cluster

    async def run(self) -> None:
        """Fill free slots until cancelled (see the module's docstring): for ever on one process,
        for a term of leadership in a cluster."""
        self.games = {name: _Game() for name in game_names()}  # a new term reads everything again
        self.is_running = True
        try:
            if not self.is_cluster:
                await self._read_ended()
            await self._serve()
        finally:
            self.is_running = False

    async def _serve(self) -> None:
        pause_s = 0.0
        while True:
            if self.manager.is_draining:  # the server stops soon: its matches end, no new one starts
                log.info("the ladder stops: the server is draining")
                return
            self._wake = anyio.Event()
            if self.is_cluster:
                try:
                    await self._read_unfinished()
                except Exception as exc:  # storage failing pauses the ladder, never the app
                    pause_s = min(2 * pause_s, _RETRY_MAX_S) if pause_s else _RETRY_MIN_S
                    self.health.failed(Component.SCHEDULER, f"cannot read the ladder's matches: {describe(exc)}")
                    log.error("scheduler could not read the ladder's matches; trying again in %.0f s", pause_s,
                              exc_info=exc)
                    await anyio.sleep(pause_s)
                    continue
                if pause_s:
                    pause_s = 0.0
                    if all(g.pause_s == 0.0 for g in self.games.values()):
                        self.health.recovered(Component.SCHEDULER)
            started = await self._fill(SlotKind.FEATURED) + await self._fill(SlotKind.RATED)
            if started:
                await anyio.lowlevel.checkpoint()
                continue
            with anyio.move_on_after(_POLL_S):
                await self._wake.wait()

    async def _read_ended(self) -> None:
        """The ladder's matches of the last hour, from storage, for the status: not worth
        stopping the ladder for."""
        try:
            ends = await self.manager.storage.ladder_ends_since(self.clock() - _HOUR_S)
        except Exception as exc:
            log.error("the ladder could not read its last hour of matches: %s", describe(exc))
            return
        self.ended = deque((at, game, agents) for game, at, agents in ends)
        self._ended_read_at = time.monotonic()

    async def _read_unfinished(self) -> None:
        """In a cluster: the ladder's pending and live matches, wherever they run."""
        matches = await self.manager.storage.unfinished_ladder_matches()
        self._unfinished = {match.id: match for match in matches}
        self._unfinished_read_at = time.monotonic()

    async def _fill(self, kind: SlotKind) -> int:
        """Start matches of ``kind`` while its slots are free and a game can pair two agents; then,
        for rated ones, one in every game that can pair two agents and has none live, slots full
        or not: long matches of one game never keep the others off the ladder."""
        started = 0
        while self._live(kind) < (self.featured if kind is SlotKind.FEATURED else self.slots):
            game = await self._choose_game(kind)
            if game is None:
                break
            if not await self._start(kind, game):
                break
            started += 1
        if kind is SlotKind.RATED and self.slots:
            while (game := await self._choose_game(kind, idle_only=True)) is not None:
                if not await self._start(kind, game):
                    break
                started += 1
        return started

    def _live(self, kind: SlotKind, game: str | None = None) -> int:
        featured = kind is SlotKind.FEATURED
        if self.is_cluster:
            return sum(1 for m in self._unfinished.values()
                       if m.featured is featured and (game is None or m.game == game))
        return sum(1 for m in self.manager.running.values()
                   if m.tags.get("scheduled") and bool(m.tags.get("featured")) is featured
                   and (game is None or m.game == game))

    async def _choose_game(self, kind: SlotKind, *, idle_only: bool = False) -> str | None:
        """The game the next match of ``kind`` goes to (``idle_only``: among those with none live),
        or None when no such game can pair two agents."""
        now = time.monotonic()
        best: tuple[Any, ...] | None = None
        chosen = None
        for name, game in self.games.items():
            if now < game.failing_until:
                continue
            try:  # read when stale, even for a game passed over: the status shows its queue
                entrants = await self._entrants(name)
            except Exception as exc:  # a storage failure pauses this game's ladder, never the app
                self._failed(name, exc)
                continue
            if len(entrants) < 2 or (idle_only and self._live(kind, name)):
                continue
            busy, now_s = self._busy(), self.clock()
            neediest = min(need(self._candidate(e, busy, now_s)) for e in entrants)
            turn = game.featured_at if kind is SlotKind.FEATURED else 0.0
            key = (self._live(kind, name), turn, neediest, name)
            if best is None or key < best:
                best, chosen = key, name
        return chosen

    async def _entrants(self, name: str, *, recount: bool = False) -> list[_Entrant]:
        """The agents of game ``name`` the ladder may pair (read again when stale); ``recount``:
        with every agent's count of matches read again (this process does not start them)."""
        game = self.games[name]
        if time.monotonic() - game.read_at >= _AGENTS_TTL_S:
            agents = await self._playable(name)
            ratings = await self.manager.storage.get_ratings([a.id for a in agents])
            new = {a.id: a.version for a in agents
                   if recount or a.id not in game.entrants or game.entrants[a.id].agent.version != a.version}
            counts = await self.manager.storage.ladder_matches_of_versions(new) if new else {}
            entrants = {}
            for agent in agents:
                rating = ratings.get(agent.id)
                if rating is None:
                    continue
                known = game.entrants.get(agent.id)
                if known is not None and agent.id not in new:
                    known.agent, known.rating = agent, rating.rating
                    entrants[agent.id] = known
                else:
                    last = rating.updated_at if rating.matches else None
                    entrants[agent.id] = _Entrant(agent, rating.rating, counts.get(agent.id, 0), last)
            game.entrants, game.read_at = entrants, time.monotonic()
        return list(game.entrants.values())

    async def _playable(self, game: str) -> list[AgentRecord]:
        agents: list[AgentRecord] = []
        cursor: str | None = None
        while True:
            page, cursor = await self.manager.storage.list_agents(game=game, cursor=cursor, limit=500)
            agents += [a for a in page if not a.remote and not a.disabled]
            if cursor is None:
                return agents

    @staticmethod
    def _candidate(entrant: _Entrant, busy: set[int], now: float) -> Candidate:
        """``entrant`` for ``server.ladder.rules``: one in a live match (``busy``) counts as playing ``now``."""
        playing = entrant.agent.id in busy
        return Candidate(entrant.agent.id, entrant.rating, entrant.version_matches,
                         now if playing else entrant.last_played)

    def _busy(self) -> set[int]:
        if self.is_cluster:  # the agents of the ladder's matches (a challenge elsewhere is not seen)
            return {agent_id for match in self._unfinished.values() for agent_id in match.agent_ids}
        return {seat.agent_id for match in self.manager.running.values() for seat in match.seats}

    async def _start(self, kind: SlotKind, name: str) -> bool:
        """Start one match of ``kind`` in game ``name``; whether one started."""
        game = self.games[name]
        entrants = {e.agent.id: e for e in game.entrants.values()}
        busy, now = self._busy(), self.clock()
        candidates = [self._candidate(e, busy, now) for e in entrants.values()]
        choose = choose_featured_pair if kind is SlotKind.FEATURED else choose_pair
        pair = choose(candidates, self.rng)
        if pair is None or pair[0].agent_id == pair[1].agent_id:  # choose_pair promises distinct agents
            return False
        seats = [c.agent_id for c in pair]
        self.rng.shuffle(seats)  # the first pick would otherwise always move first
        featured = kind is SlotKind.FEATURED
        tags: dict[str, JSON] = {"scheduled": True, **({"featured": True} if featured else {})}
        try:
            pace_s = self.settings.ladder_pace_s if featured else 0.0
            record = await self.manager.start_match(name, seats, pace_s=pace_s, tags=tags, rated=True)
        except ArenaError as exc:  # an agent disabled or gone since the agents were read: read them again
            log.info("the ladder could not start a %s match: %s", name, exc)
            game.read_at = -_AGENTS_TTL_S
            return False
        except Exception as exc:  # a bug or a storage failure pauses this game's ladder, never the app
            self._failed(name, exc)
            return False
        if self.is_cluster:  # counted until the next read, which has it
            self._unfinished[record.id] = LadderMatch(record.id, name, featured, tuple(seats))
        for agent_id in seats:
            entrants[agent_id].version_matches += 1
            entrants[agent_id].last_played = now
        if featured:
            game.featured_at = time.monotonic()
        if game.pause_s:
            game.pause_s, game.failing_until = 0.0, 0.0
            if all(g.pause_s == 0.0 for g in self.games.values()):
                self.health.recovered(Component.SCHEDULER)
        return True

    def _failed(self, name: str, exc: Exception) -> None:
        game = self.games[name]
        game.pause_s = min(2 * game.pause_s, _RETRY_MAX_S) if game.pause_s else _RETRY_MIN_S
        game.failing_until = time.monotonic() + game.pause_s
        self.health.failed(Component.SCHEDULER, f"cannot start a {name} match: {describe(exc)}")
        log.error("scheduler could not start a %s match; trying it again in %.0f s", name, game.pause_s,
                  exc_info=exc)

    # -- what the ladder is doing ------------------------------------------------------------------

    async def status(self, agent_id: int | None = None) -> dict[str, JSON]:
        """``GET /api/ladder``: the slots, and per game its live matches, its matches in the last
        hour and its queue (the agents most in need of a match first); with ``agent_id``, that
        agent's place; ``leader``, the process that runs the ladder (in a cluster; else null).
        In a cluster, what this process does not know is read from storage first.

        Raises:
            StorageError: storage could not be read (in a cluster).
        """
        if self.is_cluster:
            await self._read_for_status()
        now = self.clock()
        while self.ended and self.ended[0][0] <= now - _HOUR_S:
            self.ended.popleft()
        per_hour: dict[str, int] = {}
        agent_per_hour = 0
        for _, ended_game, agents in self.ended:
            per_hour[ended_game] = per_hour.get(ended_game, 0) + 1
            agent_per_hour += agent_id in agents
        busy = self._busy()
        games = []
        place: dict[str, JSON] | None = None
        for name, game in self.games.items():
            queue = sorted(game.entrants.values(), key=lambda e: need(self._candidate(e, busy, now)))
            entries = [self._queue_entry(e, i + 1, busy, now) for i, e in enumerate(queue)]
            if agent_id is not None and agent_id in game.entrants:
                place = {**next(e for e in entries if e["agent_id"] == agent_id), "game": name,
                         "queued": len(entries), "matches_last_hour": agent_per_hour}
            games.append({
                "game": name, "agents": len(queue), "live_rated": self._live(SlotKind.RATED, name),
                "live_featured": self._live(SlotKind.FEATURED, name), "matches_last_hour": per_hour.get(name, 0),
                "queue": entries[:_QUEUE_SHOWN],
            })
        return {
            "leader": self.leadership.leader if self.leadership is not None else None,
            "slots": {"rated": self.slots, "featured": self.featured, "pace_s": self.settings.ladder_pace_s},
            "live": {"rated": self._live(SlotKind.RATED), "featured": self._live(SlotKind.FEATURED)},
            "matches_last_hour": len(self.ended), "games": games, "agent": place,
        }

    async def _read_for_status(self) -> None:
        """In a cluster: the last hour's matches when stale; on a process that does not lead, the
        ladder's unfinished matches and every game's agents with their counts of matches as well
        (the leader reads those itself as it goes)."""
        now = time.monotonic()
        if now - self._ended_read_at >= _ENDS_TTL_S:
            await self._read_ended()
        if self.is_running:
            return
        if now - self._unfinished_read_at >= _VIEW_TTL_S:
            await self._read_unfinished()
        for name in self.games:
            await self._entrants(name, recount=True)

    @staticmethod
    def _queue_entry(entrant: _Entrant, position: int, busy: set[int], now: float) -> dict[str, JSON]:
        agent = entrant.agent
        return {
            "position": position, "agent_id": agent.id, "name": agent.name, "owner": agent.owner,
            "version": agent.version, "version_matches": entrant.version_matches, "playing": agent.id in busy,
            "waiting_s": None if entrant.last_played is None else round(max(0.0, now - entrant.last_played), 1),
        }
