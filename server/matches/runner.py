"""The match runner: drives one game between its seats, under every deadline.

Theory of operation. The game is a pure rule object; the runner owns all I/O. Each step it
asks ``game.to_act()`` which seats move, asks each of them (concurrently, for simultaneous
games) under a cancel scope sized to ``actTimeout`` plus the seat's overage bank (and never
past the whole match's ``runTimeout``), parses the replies with the rules and applies them.
Time a move takes beyond ``actTimeout`` is taken from the bank; a move that does not arrive
within its budget is a TIMEOUT. A remote seat (``NetworkLink``) also gets its measured
network allowance added to each move's budget, not charged to the bank, and recorded in the
timing. Under a server's core gate (``cores.py``) a sandboxed seat's turn takes a core if one
is free; if none is, it starts at once all the same, and a move still thinking after
``PROVISIONAL_S`` is paused until a core is handed to it: the pause is recorded and charged to
nothing. Each seat's share of this is one ``SeatClock`` (``clock.py``). A seat that breaks the
rules of play (TIMEOUT, ERROR, INVALID) ends the match at once: it gets the losing reward and
its opponents the winning one, and the forfeit step records what fired (``StepRecord.faults``).
Every step, including the initial state (step 0) and the final one, is handed to the
``Recorder`` (``recorder.StepLog``) as a ``StepRecord``; the runner itself stores nothing.

What an agent says is bounded here, for every kind of seat (sandboxed or remote) alike: an
action larger than ``max_action_bytes`` as JSON is INVALID before the rules look at it, and
is not recorded (the step shows ``null``), and a seat's reason quotes at most a short prefix
of whatever it is about (``short_reason``: an illegal move, an exception's message, a remote
agent's report), since it is stored and shown in every list of matches and every result.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from protocol.codec import encode
from protocol.errors import AgentFault, AgentInvalid, AgentTimeout, IllegalAction, short_reason
from protocol.messages import JSON, SeatTiming, StepRecord
from protocol.status import FaultLimit, SeatStatus

from .clock import SeatClock
from .cores import CoreShare
from .games import Game, new_game
from .seats import AgentLink, NetworkLink, ProcessSeat, Reply, SeatStart

__all__ = [
    "DEFAULT_MAX_ACTION_BYTES",
    "MatchResult",
    "MatchSpec",
    "Recorder",
    "SeatOutcome",
    "run_match",
]

log = logging.getLogger(__name__)

# Read on every step: a module global is several times quicker to reach than an enum's member.
_ACTIVE, _INACTIVE, _DONE = SeatStatus.ACTIVE, SeatStatus.INACTIVE, SeatStatus.DONE
# Generous: a move of any built-in game is a few bytes, a chess move or an OpenSpiel action a
# few dozen; the bound is for what gets stored and streamed to every spectator.
DEFAULT_MAX_ACTION_BYTES = 64 << 10
# How long a sandboxed seat's move may run before it needs a core of its own, when every core is
# taken (see cores.py): what a bot may compute beyond its fair share, at most, per move.
PROVISIONAL_S = 0.005


@dataclass(frozen=True, slots=True)
class MatchSpec:
    """What to play: a game, its resolved configuration and the seed that fixes all chance."""

    game: str
    config: dict[str, JSON]
    seed: int
    match_id: int | None = None
    pace_s: float = 0.0  # least wall time per step, so people can watch (0: as fast as the bots)
    max_action_bytes: int = DEFAULT_MAX_ACTION_BYTES  # one action as JSON; a larger one is INVALID


@dataclass(frozen=True, slots=True)
class SeatOutcome:
    """How one seat ended: ``limit`` is what fired when its status is a fault."""

    status: SeatStatus
    reward: float
    reason: str | None = None
    limit: FaultLimit | None = None


@dataclass(frozen=True, slots=True)
class MatchResult:
    seats: list[SeatOutcome]
    steps: int
    termination: str
    winner: int | None

    def to_json(self) -> dict[str, JSON]:
        return {
            "seats": [{"status": s.status, "reward": s.reward, "reason": s.reason} for s in self.seats],
            "steps": self.steps,
            "termination": self.termination,
            "winner": self.winner,
        }


class Recorder(Protocol):
    """Receives every step as it happens (to store and broadcast it)."""

    async def record_step(self, record: StepRecord) -> None: ...


async def run_match(
    spec: MatchSpec, links: Sequence[AgentLink], recorder: Recorder, cores: CoreShare | None = None,
) -> MatchResult:
    """Play a whole match; a faulty seat loses, nothing an agent does raises out of here. With
    ``cores``, a seat that computes here thinks on a core of its own (see ``cores.py``)."""
    game = new_game(spec.game, spec.config, spec.seed)
    config = spec.config
    run_deadline = time.monotonic() + float(config["runTimeout"])
    n = game.num_seats
    # Which seats are remote is probed once: a runtime protocol check is too slow for every move.
    clocks = [SeatClock(config, run_deadline, link if isinstance(link, NetworkLink) else None) for link in links]

    await recorder.record_step(_record(game, [None] * n, _statuses(game), [0.0] * n, []))

    faults = await _start_all(spec, links, float(config["agentTimeout"]))
    if faults:  # a seat failed to start: the forfeit is the match's last step, with no move
        await recorder.record_step(_forfeit_record(game, faults, [None] * n, [None] * n))
    next_step_at = time.monotonic()
    while not faults and game.outcome() is None and game.step < int(config["episodeSteps"]):
        seats = game.to_act()
        replies = await _ask_all(game, links, clocks, seats, cores)
        actions: dict[int, JSON] = {}
        raw: list[JSON] = [None] * n
        timing: list[SeatTiming | None] = [None] * n
        for seat, (reply, seat_timing) in replies.items():
            timing[seat] = seat_timing
            if isinstance(reply, AgentFault):
                faults[seat] = reply
                continue
            size = _action_bytes(reply.action)
            if size > spec.max_action_bytes:  # not recorded either: the step keeps null for it
                faults[seat] = AgentInvalid(f"action of {size} bytes at step {game.step + 1} exceeds the limit of "
                                            f"{spec.max_action_bytes} bytes")
                continue
            raw[seat] = reply.action
            try:
                actions[seat] = game.parse_action(seat, reply.action)
            except IllegalAction as exc:
                faults[seat] = AgentInvalid(f"illegal action at step {game.step + 1}: {exc}")
        if faults:
            await recorder.record_step(_forfeit_record(game, faults, raw, timing))
            break
        game.apply(actions)
        outcome = game.outcome()
        if outcome is not None:
            await recorder.record_step(_record(game, raw, [_DONE] * n, list(outcome.rewards), timing))
        elif game.step >= int(config["episodeSteps"]):
            await recorder.record_step(_record(game, raw, [_DONE] * n, [game.draw_reward] * n, timing))
        else:
            await recorder.record_step(_record(game, raw, _statuses(game), [0.0] * n, timing))
        if spec.pace_s > 0:
            next_step_at = await _keep_pace(next_step_at, spec.pace_s)

    return _result(game, faults)


def _action_bytes(action: JSON) -> int:
    """The size of an action as JSON (what storing it would take), about."""
    kind = type(action)
    if kind is int:  # the usual move: not worth encoding (a Python int has no bound: about its digits)
        return 24 if -(2**63) <= action < 2**64 else action.bit_length() // 3 + 2
    if action is None or kind is bool or kind is float:
        return 24
    try:
        return len(encode(action))
    except TypeError:  # not JSON: only a link inside this process could hand over such a value
        return len(repr(action))


async def _keep_pace(next_step_at: float, pace_s: float) -> float:
    """Sleep until the next step is due on a fixed schedule (so overshoots do not add up);
    a match that fell more than a step behind starts a new schedule instead of rushing."""
    next_step_at += pace_s
    now = time.monotonic()
    if next_step_at < now - pace_s:
        next_step_at = now
    await anyio.sleep(max(0.0, next_step_at - now))
    return next_step_at


def _result(game: Game, faults: Mapping[int, AgentFault]) -> MatchResult:
    n = game.num_seats
    if faults:
        rewards = game.forfeit_rewards(set(faults))
        seats = [
            SeatOutcome(faults[s].status, rewards[s], short_reason(str(faults[s])), faults[s].limit) if s in faults
            else SeatOutcome(_DONE, rewards[s], None)
            for s in range(n)
        ]
        winners = [s for s in range(n) if s not in faults]
        # The forfeit is recorded as the step after the last one played.
        return MatchResult(seats, game.step + 1, "forfeit", winners[0] if len(winners) == 1 else None)
    outcome = game.outcome()
    if outcome is None:  # episodeSteps ran out before the rules decided
        return MatchResult([SeatOutcome(_DONE, game.draw_reward) for _ in range(n)], game.step, "steps", None)
    seats = [SeatOutcome(_DONE, r) for r in outcome.rewards]
    return MatchResult(seats, game.step, outcome.termination.value, outcome.winner)


def _statuses(game: Game) -> list[str]:
    acting = set(game.to_act())
    return [_ACTIVE if s in acting else _INACTIVE for s in range(game.num_seats)]


def _forfeit_record(
    game: Game, faults: Mapping[int, AgentFault], actions: list[JSON], timing: list[SeatTiming | None]
) -> StepRecord:
    """The last step of a forfeited match: numbered as the next step, the state unchanged, and
    what fired for each faulty seat."""
    seats = range(game.num_seats)
    statuses: list[str] = [faults[s].status if s in faults else _DONE for s in seats]
    rewards = list(game.forfeit_rewards(set(faults)))
    limits: list[str | None] = [faults[s].limit if s in faults else None for s in seats]
    return _record(game, actions, statuses, rewards, timing, step=game.step + 1, faults=limits)


def _record(
    game: Game, actions: list[JSON], statuses: list[str], rewards: list[float],
    timing: list[SeatTiming | None], step: int | None = None, faults: list[str | None] | None = None,
) -> StepRecord:
    return StepRecord(
        step=game.step if step is None else step, actions=actions, statuses=statuses,
        rewards=[float(r) for r in rewards], state=game.state(), timing=timing, time=round(time.time(), 3),
        faults=[] if faults is None else faults,
    )


async def _start_all(spec: MatchSpec, links: Sequence[AgentLink], budget_s: float) -> dict[int, AgentFault]:
    """Start every seat concurrently within ``agentTimeout``; the faults, by seat."""
    faults: dict[int, AgentFault] = {}

    async def start_one(seat: int) -> None:
        with anyio.move_on_after(budget_s) as scope:
            try:
                await links[seat].start(SeatStart(seat=seat, seed=spec.seed, configuration=spec.config))
            except AgentFault as exc:
                faults[seat] = exc
        if scope.cancelled_caught:
            faults[seat] = AgentTimeout(f"not ready within agentTimeout ({budget_s:g} s)",
                                        limit=FaultLimit.AGENT_TIMEOUT)
            links[seat].stop(str(faults[seat]))

    async with anyio.create_task_group() as tg:
        for seat in range(len(links)):
            tg.start_soon(start_one, seat)
    return faults


async def _ask_all(
    game: Game, links: Sequence[AgentLink], clocks: Sequence[SeatClock], seats: Sequence[int],
    cores: CoreShare | None,
) -> dict[int, tuple[Reply | AgentFault, SeatTiming]]:
    """Ask every acting seat for its move, each under its own deadline."""
    replies: dict[int, tuple[Reply | AgentFault, SeatTiming]] = {}

    async def ask_one(seat: int) -> None:
        clock = clocks[seat]
        # A seat that computes here (not over the network) thinks on a core of its own: see cores.py.
        gate = cores if clock.network is None else None
        replies[seat] = await _ask(game, links[seat], clock, seat, gate)

    if len(seats) == 1:  # turn-based games: no task group on the hot path
        await ask_one(seats[0])
    else:
        # asyncio's own task group: on this path (every step of a simultaneous game) anyio's costs
        # about 20 µs more per step. Seats run on asyncio pipes anyway; each ask keeps its anyio
        # cancel scope, and a cancellation of the match reaches both tasks through the group.
        async with asyncio.TaskGroup() as tg:
            for seat in seats:
                tg.create_task(ask_one(seat))
    return replies


async def _ask(
    game: Game, link: AgentLink, clock: SeatClock, seat: int, cores: CoreShare | None,
) -> tuple[Reply | AgentFault, SeatTiming]:
    step = game.step + 1
    observation = game.observation(seat)
    observation["remainingOverageTime"] = clock.bank_s
    if cores is None:
        result, wall_s = await _timed(link, clock, step, observation, None)
    elif cores.try_acquire():
        try:
            result, wall_s = await _timed(link, clock, step, observation, 0.0)
        finally:
            cores.release()
    elif isinstance(link, ProcessSeat) and not clock.thought_long:
        # Every core busy: it starts at once, and is paused if it thinks on.
        result, wall_s = await _timed_provisionally(link, clock, step, observation, cores)
    else:
        # A seat whose last move took a core's while (it will likely think again), or a link
        # that cannot be paused, waits for its place before its clock starts.
        waited_s = await cores.acquire()
        try:
            result, wall_s = await _timed(link, clock, step, observation, waited_s)
        finally:
            cores.release()
    if cores is not None:
        clock.thought_long = wall_s >= PROVISIONAL_S
    cpu_s = result.cpu_s if isinstance(result, Reply) else None
    return result, clock.timing(wall_s, cpu_s)


async def _timed(
    link: AgentLink, clock: SeatClock, step: int, observation: dict[str, JSON], waited_s: float | None,
) -> tuple[Reply | AgentFault, float]:
    """The move under its budget (its turn waited ``waited_s`` for a core; None: no core gate):
    the reply or the fault, and its wall time."""
    budget_s = clock.start_move(time.monotonic(), waited_s)
    result: Reply | AgentFault
    with anyio.move_on_after(budget_s) as scope:
        try:
            result = await link.act(step, observation)
        except AgentFault as exc:
            result = exc
    wall_s = clock.stop_move(time.monotonic())
    if scope.cancelled_caught:
        result = clock.time_out(step)
        link.stop(str(result))
    return result, wall_s


async def _timed_provisionally(
    link: ProcessSeat, clock: SeatClock, step: int, observation: dict[str, JSON], cores: CoreShare,
) -> tuple[Reply | AgentFault, float]:
    """A move started while every core is taken (see ``cores.py``): most moves take a moment and
    need no core of their own. One still thinking after ``PROVISIONAL_S`` is paused (SIGSTOP)
    until a place is handed to it (or its reply, written before the pause, is read), then goes
    on; the pause is charged nothing (its deadline and the match's move on by as much) and
    recorded as its wait."""
    budget_s = clock.start_move(time.monotonic(), 0.0)
    held = False
    result: Reply | AgentFault | None = None
    try:
        with anyio.move_on_after(budget_s) as scope:
            try:
                await link.send_turn(step, observation)
                with anyio.move_on_after(PROVISIONAL_S) as quick:  # a reply is read whole or not at all
                    result = await link.receive_move(step)
                if quick.cancelled_caught:
                    paused_at = anyio.current_time()
                    left_s, scope.deadline = scope.deadline - paused_at, math.inf  # no deadline while paused
                    link.pause()
                    try:
                        held, result = await _place_or_reply(link, step, cores)
                    finally:
                        link.resume()
                        now = anyio.current_time()
                        clock.credit_pause(now - paused_at)
                        scope.deadline = now + left_s
                    if result is None:
                        result = await link.receive_move(step)
            except AgentFault as exc:
                result = exc
        wall_s = clock.stop_move(time.monotonic())
        if result is None:
            result = clock.time_out(step)
            link.stop(str(result))
    finally:
        if held:
            cores.release()
    return result, wall_s


async def _place_or_reply(link: ProcessSeat, step: int, cores: CoreShare) -> tuple[bool, Reply | AgentFault | None]:
    """For a paused seat, whichever comes first: a place for it, or the reply (or fault) it wrote
    before the pause. Whether it holds a place now, and what it said, if anything yet."""
    held = False
    said: Reply | AgentFault | None = None
    async with anyio.create_task_group() as tg:

        async def take_place() -> None:
            nonlocal held
            await cores.acquire()
            held = True
            tg.cancel_scope.cancel()

        tg.start_soon(take_place)
        try:
            said = await link.receive_move(step)
        except AgentFault as exc:  # raised out of the group it would come wrapped
            said = exc
        tg.cancel_scope.cancel()
    return held, said
