"""Replay documents: build them from stored steps, and verify them by recomputing the game.

The document is the whole stored game: ``game``, ``rules_version``, ``config``, ``seed``,
``seats`` (each ``name``, ``status``, ``reward``, ``reason``) and ``steps`` (each ``step``,
``actions``, ``statuses``, ``rewards``, ``state``, ``timing``). ``steps[0]`` is the initial
state. ``verify_replay`` replays the actions through the current rules from the seed and
compares every state, telling a changed rule (``rules_version`` differs) from a corrupt log.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from protocol.errors import ArenaError, IllegalAction

from .games import get_game

__all__ = ["FAULT_STATUSES", "VerifyReport", "replay_document", "step_json", "verify_replay"]

JSON = Any
FAULT_STATUSES = frozenset({"TIMEOUT", "ERROR", "INVALID"})


def step_json(step: Any) -> dict[str, JSON]:
    """A ``StepRecord`` as a plain JSON object."""
    return asdict(step)


def replay_document(
    *, game: str, rules_version: int, config: Mapping[str, JSON], seed: int, seats: Sequence[Mapping[str, JSON]],
    steps: Sequence[Any], match_id: int | None = None, status: str = "finished", reason: str | None = None,
) -> dict[str, JSON]:
    """The replay document of a match (``steps`` are ``StepRecord`` values)."""
    return {
        "id": match_id,
        "game": game,
        "rules_version": rules_version,
        "config": dict(config),
        "seed": seed,
        "status": status,
        "reason": reason,
        "seats": [dict(s) for s in seats],
        "steps": [step_json(s) for s in steps],
    }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    steps_checked: int
    problems: list[str]
    rules_changed: bool = False


def verify_replay(doc: Mapping[str, JSON]) -> VerifyReport:
    """Recompute every state from the seed and the actions and compare with the stored ones."""
    try:
        game_cls = get_game(str(doc["game"]))
        steps: list[Mapping[str, JSON]] = list(doc["steps"])
        game = game_cls(doc["config"], random.Random(int(doc["seed"])))
    except (KeyError, TypeError, ValueError, ArenaError) as exc:
        return VerifyReport(False, 0, [f"not a replay document: {exc}"])
    stored_version = doc.get("rules_version")
    if stored_version is not None and stored_version != game_cls.rules_version:
        return VerifyReport(
            False, 0,
            [f"rules of {game_cls.name} changed: replay has version {stored_version}, "
             f"this arena has {game_cls.rules_version}"],
            rules_changed=True,
        )
    if not steps:
        return VerifyReport(False, 0, ["replay has no steps"])
    problems: list[str] = []
    if steps[0].get("state") != game.state():
        problems.append("step 0: initial state differs from the one the seed gives")
    for index, record in enumerate(steps[1:], start=1):
        if record.get("step") != index:
            problems.append(f"step {index}: numbered {record.get('step')!r}")
        statuses = record.get("statuses", [])
        if any(s in FAULT_STATUSES for s in statuses):
            # A forfeit step: the faulty seat's action was not applied.
            if record.get("state") != game.state():
                problems.append(f"step {index}: state changed in a forfeit step")
            if index != len(steps) - 1:
                problems.append(f"step {index}: steps continue after a forfeit")
            break
        try:
            actions = {seat: game.parse_action(seat, record["actions"][seat]) for seat in game.to_act()}
        except (IllegalAction, IndexError, KeyError) as exc:
            problems.append(f"step {index}: stored action is not legal: {exc}")
            break
        game.apply(actions)
        if record.get("state") != game.state():
            problems.append(f"step {index}: state differs from the recomputed one")
            break
    outcome = game.outcome()
    last = steps[-1]
    if outcome is not None and list(last.get("rewards", [])) != [float(r) for r in outcome.rewards]:
        problems.append(f"final rewards {last.get('rewards')} differ from the rules' {list(outcome.rewards)}")
    return VerifyReport(not problems, len(steps) - 1, problems)
