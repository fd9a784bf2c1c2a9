"""Remote agents across the cluster: an agent connected to a front plays a match a worker runs.

Theory of operation
-------------------
In one process a remote agent's seat is a ``RemoteSeat`` (``server/matches/remote.py``) bound
to a connection of the agent's owner. In a cluster the match runs on a worker and the
connection sits on a front (any front; one connection may play matches of every worker at
once); the two meet in the ``remote_seats`` table (``server/storage/_pg_seats.py``): one row per
remote seat, written by both, each write notifying the other side.

* **The worker.** The runner's link for the seat is a :class:`RelayedSeat`, an ``AgentLink``
  and a ``NetworkLink`` like a ``RemoteSeat``: ``start`` stores the seat and waits until a front
  claims it (the runner bounds the wait by ``agentTimeout``); ``act`` stores the turn and waits
  for its answer; the end stores the result. Every write is fenced by the match's attempt: a
  seat of a match this worker lost fails with ``LeaseLost``. The worker's :class:`SeatExchange`
  listens on the answers channel and wakes the seat a notification names; a waiting seat also
  reads its row every ``POLL_S``, so a lost notification costs time, never a move.
* **The front.** Its :class:`AgentDesk` listens on the seats channel. A seat that is new or was
  released, and, after the desk (re)connects or a connection attaches, every seat of its
  users that no live front plays, is claimed if a connection here plays the agent; each
  claimed seat gets a *proxy*: a ``RemoteSeat`` of the front's own registry, started and asked
  as a runner would, so everything the agent sees (``match_start``, each ``turn`` with the time
  left, the turn again after a reconnect, ``match_end``), every check on its frames and the
  measure of its round trips are the one-process code. A proxy left without a connection for
  ``RELEASE_S`` releases the seat, which another front with a connection of the agent then
  claims (the agent reconnected there); a claim by a front that died lapses with its session.

Deadlines. The worker's runner keeps the seat's clock, as in one process: the move's budget is
``actTimeout``, the bank and the connection's round-trip allowance (its median, capped), and
the agent is told the time left: the front subtracts how long ago the turn was asked, on the
database's clock. The relay itself (the worker's write and notification, the front's read, its
answer, the worker's read) is measured at every move, as the worker's wait less the front's,
and its median (capped like the allowance) is added to the move's allowance: the relay costs
the bot nothing, and its figure is in the seat's log.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup, TaskStatus

from protocol.errors import AgentCrashed, LeaseLost, StorageError, describe_error
from protocol.messages import JSON
from protocol.status import FaultLimit
from server.matches.remote import RTT_SAMPLES, AgentConnection, RemoteAgents, RemoteSeat, SeatNotes
from server.matches.seats import Reply, SeatStart
from server.storage import (
    ANSWERS_CHANNEL,
    DESK_APPLICATION_PREFIX,
    SEATS_CHANNEL,
    AgentRecord,
    MatchRecord,
    PostgresStorage,
    SeatRow,
    parse_seat_key,
)

from ._listening import keep_listening

__all__ = ["POLL_S", "RELEASE_S", "AgentDesk", "RelayedSeat", "SeatExchange", "desk_name"]

log = logging.getLogger(__name__)

POLL_S = 0.5  # a seat waiting on the other side reads its row at least this often
RELEASE_S = 1.0  # a front lets go of a seat that has had no connection for this long
CLAIM_GRACE_S = 0.1  # a seat not claimed this long after it was stored waits for a connection
SCAN_S = 5.0  # a front looks for seats of its connections' users at least this often
EXCHANGE_APPLICATION_NAME = "agent-arena-exchange"

Key = tuple[int, int]  # (match id, seat)


def desk_name() -> str:
    """A name for this process's desk, unique in the cluster for as long as it runs."""
    return f"{socket.gethostname()[:32]}/{os.getpid()}/{secrets.token_hex(3)}"


class _Waker:
    """An event that can be waited on again and again: set by a notification, reset by a wait."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        with anyio.move_on_after(timeout_s):
            await self._event.wait()
        self._event = anyio.Event()


@dataclass(frozen=True, slots=True)
class _Agent:
    """The agent of a seat played on a front, as its ``RemoteSeat`` needs it."""

    id: int
    user_id: int
    game: str


# -- the worker's side ------------------------------------------------------------------------------


class SeatExchange:
    """A worker's side of the remote seats it runs (see the module docstring); run :meth:`run`
    in a task group, and open each seat with :meth:`open_seat`."""

    def __init__(self, storage: PostgresStorage, url: str, *, allowance_cap_s: float) -> None:
        self.storage = storage
        self.url = url
        self.allowance_cap_s = allowance_cap_s
        self._seats: dict[Key, RelayedSeat] = {}
        self._tasks: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen for answers until cancelled; ends of seats are stored from here (see ``finish``)."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            await tg.start(keep_listening, self.url, {ANSWERS_CHANNEL: self._on_answer}, EXCHANGE_APPLICATION_NAME,
                           self._wake_all)
            tg.start_soon(self._prune)
            task_status.started()

    def _on_answer(self, payload: str) -> None:
        key = parse_seat_key(payload)
        seat = self._seats.get(key) if key is not None else None
        if seat is not None:
            seat.waker.set()
        elif key is None:
            self._wake_all()

    def _wake_all(self) -> None:
        for seat in self._seats.values():
            seat.waker.set()

    async def _prune(self) -> None:
        """Delete now and then the rows of ended matches no front deleted (its front died)."""
        while True:
            await anyio.sleep(60.0)
            try:
                await self.storage.remote_seats.prune()
            except StorageError as exc:
                log.warning("cannot prune the remote seats of ended matches: %s", describe_error(exc))

    @contextmanager
    def open_seat(self, record: MatchRecord, seat: int, agent: AgentRecord) -> Iterator[RelayedSeat]:
        """The seat for the block's duration; at its end the agent hears the result (or "aborted")."""
        relayed = RelayedSeat(self, record, seat, agent)
        self._seats[relayed.key] = relayed
        try:
            yield relayed
        finally:
            relayed.finish({"match_id": record.id, "status": "aborted"})  # unless it was told the result
            self._seats.pop(relayed.key, None)

    def store_finish(self, seat: RelayedSeat, result: dict[str, JSON]) -> None:
        """Store a seat's result in the background (``finish`` is called where no await may be)."""
        async def store() -> None:
            try:
                await self.storage.remote_seats.finish(seat.match_id, seat.seat, result)
            except StorageError as exc:  # the front sees the match ended anyway (see AgentDesk)
                log.warning("match_id=%s: cannot store the end of remote seat %d: %s", seat.match_id, seat.seat,
                            describe_error(exc))

        if self._tasks is not None:
            self._tasks.start_soon(store)


class RelayedSeat:
    """The runner's link for a remote seat of a match this worker runs; see the module docstring."""

    def __init__(self, exchange: SeatExchange, record: MatchRecord, seat: int, agent: AgentRecord) -> None:
        self.exchange = exchange
        self.table = exchange.storage.remote_seats
        self.match_id = record.id
        self.attempt = record.attempt
        self.seat = seat
        self.agent_id = agent.id
        self.user_id = agent.user_id
        self.game = agent.game
        self.configuration: dict[str, JSON] = {}
        self.waker = _Waker()
        self.notes = SeatNotes()
        self.is_finished = False
        self._front: str | None = None
        self._rtt_s: float | None = None  # the agent's connection's round trip, as its front measures it
        self._client_allowance_s = 0.0
        self._relay_s: deque[float] = deque(maxlen=RTT_SAMPLES)
        self._relay_all: list[float] = []

    @property
    def key(self) -> Key:
        return self.match_id, self.seat

    async def start(self, start: SeatStart) -> None:
        """Store the seat and wait until a front with a connection of the agent claims it.

        Raises:
            LeaseLost: the match is no longer this worker's.
        """
        self.configuration = start.configuration
        entry: dict[str, JSON] = {"game": self.game, "configuration": start.configuration, "seed": start.seed}
        if not await self.table.open(self.match_id, self.seat, self.user_id, self.agent_id, entry):
            raise LeaseLost(f"match {self.match_id}: this worker no longer runs it")
        waits = 0
        while True:
            row = await self._read()
            if row.front is not None:
                self._seen(row)
                return
            if waits == 1:  # a front with a connection claims it within milliseconds: none has
                self.notes.add(f"waiting for a connection playing agent {self.agent_id}")
            waits += 1
            await self.waker.wait(CLAIM_GRACE_S if waits == 1 else POLL_S)

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        """Store the turn and wait for its answer (the runner bounds the wait).

        Raises:
            AgentCrashed: the agent reported that its bot failed.
            LeaseLost: the match is no longer this worker's.
        """
        budget_s = float(self.configuration["actTimeout"]) + float(observation.get("remainingOverageTime", 0.0))
        turn: dict[str, JSON] = {"observation": observation, "budget_s": budget_s + self._client_allowance_s}
        asked = time.monotonic()
        if not await self.table.ask(self.match_id, self.seat, step, turn):
            raise LeaseLost(f"match {self.match_id}: this worker no longer runs it")
        while True:
            row = await self._read()
            self._seen(row)
            answer = row.answer
            if answer is not None and answer.get("step") == step:
                notes = answer.get("notes")
                for note in notes if isinstance(notes, list) else ():
                    self.notes.add(str(note))
                front_s = answer.get("front_s")
                relay_s = max(0.0, time.monotonic() - asked - (front_s if isinstance(front_s, float) else 0.0))
                self._relay_s.append(relay_s)
                self._relay_all.append(relay_s)
                failure = answer.get("failure")
                if isinstance(failure, str):  # the front's words: "the remote agent reported an error at ..."
                    self.notes.add(failure)
                    raise AgentCrashed(failure, limit=FaultLimit.CRASH)
                return Reply(action=answer.get("action"), cpu_s=None)
            await self.waker.wait(POLL_S)

    async def _read(self) -> SeatRow:
        row = await self.table.read(self.match_id, self.seat)
        if row is None or row.attempt != self.attempt:
            raise LeaseLost(f"match {self.match_id}: its remote seat {self.seat} belongs to a later attempt")
        return row

    def _seen(self, row: SeatRow) -> None:
        if row.rtt_s is not None:
            self._rtt_s = row.rtt_s
        if row.front != self._front:
            if row.front is not None:
                self.notes.add(f"played through front {row.front}")
            self._front = row.front

    def move_allowance_s(self) -> float:
        """The agent's connection's round trip (capped), plus the relay's median round trip (capped)."""
        cap_s = self.exchange.allowance_cap_s
        if self._rtt_s is not None:
            self._client_allowance_s = min(self._rtt_s, cap_s)
        relay_s = min(statistics.median(self._relay_s), cap_s) if self._relay_s else 0.0
        return self._client_allowance_s + relay_s

    def relay_median_s(self) -> float | None:
        """The relay's median round trip over the match so far."""
        return statistics.median(self._relay_all) if self._relay_all else None

    def stop(self, reason: str) -> None:
        self.notes.add(reason)

    def finish(self, result: dict[str, JSON]) -> None:
        """Tell the agent how the match ended (stored in the background)."""
        if self.is_finished:
            return
        self.is_finished = True
        median_s = self.relay_median_s()
        if median_s is not None:
            self.notes.add(f"relay round trip: median {median_s * 1e3:.1f} ms over {len(self._relay_all)} moves")
        self.exchange.store_finish(self, result)

    def log_text(self) -> str:
        return self.notes.text()


# -- a front's side ----------------------------------------------------------------------------------


class AgentDesk:
    """A front's side of the remote seats its connections play; see the module docstring. Run
    :meth:`run` in a task group."""

    def __init__(self, storage: PostgresStorage, url: str, remotes: RemoteAgents, *, name: str | None = None) -> None:
        self.storage = storage
        self.table = storage.remote_seats
        self.url = url
        self.remotes = remotes
        self.name = name or desk_name()
        self._proxies: dict[Key, _Waker] = {}
        self._noted: dict[Key, int] = {}  # notes of each seat's proxy sent with its answers so far
        self._due: set[Key] = set()
        self._users: set[int] = set()  # users whose seats to look for
        self._wake = _Waker()

    @property
    def playing(self) -> list[Key]:
        """The seats this desk plays now."""
        return list(self._proxies)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self.remotes.on_attach = self._attached
            try:
                await tg.start(keep_listening, self.url, {SEATS_CHANNEL: self._on_seat},
                               DESK_APPLICATION_PREFIX + self.name, self._connected)
                task_status.started()
                await self._serve(tg)
            finally:
                self.remotes.on_attach = None

    def _on_seat(self, payload: str) -> None:
        key = parse_seat_key(payload)
        if key is None:
            self._connected()
            return
        proxy = self._proxies.get(key)
        if proxy is not None:
            proxy.set()
        else:
            self._due.add(key)
            self._wake.set()

    def _connected(self) -> None:
        """Notifications may have been lost: look again at every seat of the users connected here."""
        self._users.update(self.remotes.connections)
        for proxy in self._proxies.values():
            proxy.set()
        self._wake.set()

    def _attached(self, conn: AgentConnection) -> None:
        """A connection attached here: look for its user's seats that no live front plays."""
        self._users.add(conn.user_id)
        self._wake.set()

    async def _serve(self, tg: TaskGroup) -> None:
        while True:
            await self._wake.wait(SCAN_S)
            due, self._due = self._due, set()
            users, self._users = self._users, set()
            if not due and not users:  # now and then, whatever was notified: every user connected here
                users = set(self.remotes.connections)
            try:
                rows = await self.table.claimable(sorted(users), self.name) if users else []
                for key in sorted(due - {row.key for row in rows}):
                    row = await self.table.read(*key)
                    if row is not None:
                        rows.append(row)
                for row in rows:
                    await self._claim(row, tg)
            except StorageError as exc:
                log.warning("the agent desk cannot read the remote seats: %s", describe_error(exc))
                self._due |= due
                self._users |= users
                await anyio.sleep(POLL_S)
                self._wake.set()

    async def _claim(self, row: SeatRow, tg: TaskGroup) -> None:
        if row.key in self._proxies or row.is_over:
            return
        conn = self.remotes.connection_for(row.user_id, row.agent_id)
        if conn is None or not await self.table.claim(row, self.name, conn.rtt_s()):
            return
        waker = self._proxies[row.key] = _Waker()
        tg.start_soon(self._proxy, row, waker)

    async def _proxy(self, row: SeatRow, waker: _Waker) -> None:
        """Play one claimed seat through a ``RemoteSeat`` of this front until its match ends or
        the seat goes elsewhere."""
        try:
            agent = _Agent(row.agent_id, row.user_id, str(row.start.get("game")))
            with self.remotes.open_seat(row.match_id, row.seat, agent) as remote:
                await self._play(row, remote, waker)
        except StorageError as exc:  # the seat stays claimed by us: the next pass (or a reconnect) resumes it
            log.warning("match_id=%s: remote seat %d: %s", row.match_id, row.seat, describe_error(exc))
        except Exception:
            log.exception("match_id=%s: remote seat %d failed on this front", row.match_id, row.seat)
        finally:
            del self._proxies[row.key]
            self._noted.pop(row.key, None)
            self._due.add(row.key)  # a later attempt's seat, or one released: claim it if it is ours to play
            self._wake.set()

    async def _play(self, claimed: SeatRow, remote: RemoteSeat, waker: _Waker) -> None:
        configuration = claimed.start.get("configuration")
        seed = claimed.start.get("seed")
        start = SeatStart(claimed.seat, seed if isinstance(seed, int) else 0,
                          configuration if isinstance(configuration, dict) else {})
        with anyio.move_on_after(RELEASE_S):
            await remote.start(start)
        async with anyio.create_task_group() as tg:
            acting: tuple[int, anyio.CancelScope] | None = None  # the turn asked of the agent, and its scope
            unbound_since: float | None = None
            while True:
                row = await self.table.read(claimed.match_id, claimed.seat)
                if row is None or row.attempt != claimed.attempt or row.front != self.name:
                    remote.hand_over()  # run again by another worker, or played by another front
                    break
                if row.is_over:  # its result; or the match was stored ended without one (stopped, or lost)
                    remote.finish(row.result or {"match_id": row.match_id, "status": row.match_status})
                    await self.table.forget(row)
                    break
                if row.step is not None and row.answer is None and (acting is None or acting[0] != row.step):
                    if acting is not None:  # the worker moved on (that turn timed out)
                        acting[1].cancel()
                    acting = (row.step, anyio.CancelScope())
                    tg.start_soon(self._answer, row, remote, acting[1])
                if remote.conn is None:
                    unbound_since = unbound_since if unbound_since is not None else time.monotonic()
                    if time.monotonic() - unbound_since >= RELEASE_S:
                        remote.hand_over()
                        await self.table.release(row, self.name)
                        break
                else:
                    unbound_since = None
                await waker.wait(POLL_S if unbound_since is None else RELEASE_S / 4)
            tg.cancel_scope.cancel()

    async def _answer(self, row: SeatRow, remote: RemoteSeat, scope: anyio.CancelScope) -> None:
        """Ask the agent the turn ``row`` holds and store its answer."""
        assert row.step is not None and row.turn is not None
        observation = row.turn.get("observation")
        budget_s = row.turn.get("budget_s")
        started = time.monotonic()
        reply: dict[str, JSON]
        with scope:
            try:
                answered = await remote.act(row.step, observation if isinstance(observation, dict) else {},
                                            budget_s=float(budget_s) if isinstance(budget_s, int | float) else None,
                                            waited_s=row.waited_s or 0.0)
                reply = {"step": row.step, "action": answered.action}
            except AgentCrashed as exc:
                reply = {"step": row.step, "failure": str(exc)}
        if scope.cancelled_caught:
            return
        reply["front_s"] = time.monotonic() - started
        notes = remote.notes.since(self._noted.get(row.key, 0))  # what happened here, for the seat's log
        if notes:
            reply["notes"] = list[JSON](notes)
            self._noted[row.key] = self._noted.get(row.key, 0) + len(notes)
        conn = remote.conn
        await self.table.answer(row, self.name, row.step, reply, conn.rtt_s() if conn is not None else None)
