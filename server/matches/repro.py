"""Repro bundles: what a failed seat saw, and a local re-run of a bot against the recorded moves.

``repro_bundle`` builds, from a stored match, everything needed to replay a seat's failure:
the game, configuration and seed, every recorded step's actions up to the failing one, the
observation the seat got at that step (recomputed through the rules from the seed and the
recorded actions), and the limit that fired, as the failing step recorded it. ``rerun`` plays
the game again with the owner's bot in the sandbox at that seat and every other seat replaying
its recorded moves (``ScriptedSeat``), up to the failing step, and says whether the same
failure happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.errors import AgentInvalid, ProtocolError
from protocol.messages import JSON, StepRecord
from protocol.status import FaultLimit, SeatStatus, is_fault
from server.sandbox import Limits, SeatLauncher
from server.storage import MatchRecord

from .games import get_game, new_game
from .recorder import StepLog
from .runner import MatchSpec, run_match
from .seats import Reply, SeatSource, SeatStart, open_links

__all__ = ["ReproOutcome", "ScriptedSeat", "repro_bundle", "rerun"]


def repro_bundle(match: MatchRecord, steps: Sequence[StepRecord], seat: int, limits: Limits) -> dict[str, JSON]:
    """The repro bundle of a seat that ended ERROR, TIMEOUT or INVALID.

    Raises:
        ProtocolError: no such seat, or it did not fail (``not_failed``).
    """
    if not 0 <= seat < len(match.seats):
        raise ProtocolError(f"match {match.id} has no seat {seat}", field="seat")
    result = match.seats[seat]
    if result.status is None or not is_fault(result.status):
        state = result.status or match.status.value
        raise ProtocolError(f"seat {seat} of match {match.id} did not fail ({state}): nothing to reproduce",
                            code="not_failed", field="seat")
    last = steps[-1]
    failing_step = last.step
    timing = last.timing[seat] if seat < len(last.timing) else None
    phase = "start" if timing is None and failing_step == 1 else "move"
    recorded = last.faults[seat] if seat < len(last.faults) else None
    fired = None if recorded is None else FaultLimit(recorded)
    config = match.config
    game = new_game(match.game, config, match.seed)
    bank_s = float(config["remainingOverageTime"])
    for record in steps[1:-1]:
        game.apply({s: game.parse_action(s, record.actions[s]) for s in game.to_act()})
        seat_timing = record.timing[seat] if seat < len(record.timing) else None
        if seat_timing is not None:
            bank_s = seat_timing.bank_s
    observation = None
    if phase == "move" and seat in game.to_act():
        observation = game.observation(seat)
        observation["remainingOverageTime"] = bank_s
    return {
        "match_id": match.id,
        "game": match.game,
        "rules_version": match.rules_version,
        "config": config,
        "seed": match.seed,
        "seat": seat,
        "agent_id": result.agent_id,
        "agent_name": result.agent_name,
        "version": result.version,
        "status": result.status,
        "reason": result.reason,
        "failing_step": failing_step,
        "phase": phase,
        "observation": observation,
        "limit": _limit(fired, SeatStatus(result.status), result.reason or "", phase, config, bank_s, limits),
        "timing": None if timing is None else {"wall_s": timing.wall_s, "cpu_s": timing.cpu_s,
                                               "bank_s": timing.bank_s, "allowance_s": timing.allowance_s},
        "moves": [{"step": r.step, "actions": r.actions} for r in steps[1:]],
    }


def _limit(fired: FaultLimit | None, status: SeatStatus, reason: str, phase: str, config: Mapping[str, JSON],
           bank_s: float, limits: Limits) -> dict[str, JSON]:
    """The limit that fired, with its value. A step stored before faults were recorded names
    none: then the status and the phase tell what they can (a crash stands for any ERROR)."""
    if fired is None:
        if status is SeatStatus.TIMEOUT:
            fired = FaultLimit.AGENT_TIMEOUT if phase == "start" else FaultLimit.ACT_TIMEOUT
        else:
            fired = FaultLimit.RULES if status is SeatStatus.INVALID else FaultLimit.CRASH
    match fired:
        case FaultLimit.RUN_TIMEOUT | FaultLimit.AGENT_TIMEOUT:
            return {"name": fired.value, "seconds": config[fired.value]}
        case FaultLimit.ACT_TIMEOUT:
            return {"name": "actTimeout + overage bank", "actTimeout": config["actTimeout"], "bank_s": bank_s}
        case FaultLimit.RULES:
            return {"name": "rules", "detail": "an illegal or malformed action"}
        case FaultLimit.CPU | FaultLimit.MEMORY | FaultLimit.OUTPUT:
            return {"name": fired.value, "value": getattr(limits, fired.value)}
        case _:  # the bot raised or crashed: the reason says how
            return {"name": fired.value, "detail": reason}


class ScriptedSeat:
    """An ``AgentLink`` that plays a seat's recorded moves, by step."""

    def __init__(self, seat: int, moves: Mapping[int, Sequence[JSON]]) -> None:
        self.seat = seat
        self.moves = moves

    async def start(self, start: SeatStart) -> None:
        return None

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        actions = self.moves.get(step)
        if actions is None or self.seat >= len(actions) or actions[self.seat] is None:
            raise AgentInvalid(f"the recording has no move of seat {self.seat} at step {step}")
        return Reply(action=actions[self.seat])

    def stop(self, reason: str) -> None:
        return None

    def log_text(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class ReproOutcome:
    """What the re-run did: the seat's status there, and where it left the recorded game."""

    reproduced: bool
    status: SeatStatus
    reason: str | None
    step: int  # the last step played
    diverged_at: int | None  # the first step where the bot moved differently from the recording
    log: str

    def to_json(self) -> dict[str, JSON]:
        return {"reproduced": self.reproduced, "status": self.status, "reason": self.reason, "step": self.step,
                "diverged_at": self.diverged_at, "log": self.log}


async def rerun(launcher: SeatLauncher, bundle: Mapping[str, JSON], code: str, limits: Limits) -> ReproOutcome:
    """Play ``code`` at the bundle's seat (opened by ``launcher``) against the recorded moves, up to the failing step.

    Raises:
        ArenaError: the bundle names an unknown game or a bad configuration.
        KeyError, TypeError, ValueError: not a repro bundle.
    """
    seat = int(bundle["seat"])
    failing_step = int(bundle["failing_step"])
    moves: dict[int, Sequence[JSON]] = {int(m["step"]): m["actions"] for m in bundle["moves"]}
    # Kaggle counts the initial state among the episodeSteps: this many end the game after the failing step.
    config = {**bundle["config"], "episodeSteps": min(failing_step + 1, int(bundle["config"]["episodeSteps"]))}
    spec = MatchSpec(str(bundle["game"]), config, int(bundle["seed"]))
    num_seats = get_game(spec.game).num_seats  # raises UnknownGame before any process starts
    seats: list[SeatSource] = [code if index == seat else ScriptedSeat(index, moves) for index in range(num_seats)]
    recorder = StepLog()
    async with open_links(launcher, seats, limits, label="repro") as links:
        result = await run_match(spec, links, recorder)
        log = links[seat].log_text()
    mine = result.seats[seat]
    diverged = None
    for record in recorder.steps[1:]:
        recorded = moves.get(record.step)
        if record.step < failing_step and (recorded is None or record.actions[seat] != recorded[seat]):
            diverged = record.step
            break
    reproduced = mine.status == bundle["status"] and result.steps == failing_step
    return ReproOutcome(reproduced, mine.status, mine.reason, result.steps, diverged, log)
