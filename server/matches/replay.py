"""Replay documents: build them from stored steps, and verify them by recomputing the game.

The document is the whole stored game: ``game``, ``rules_version``, ``config``, ``seed``,
``seats`` (each ``name``, ``status``, ``reward``, ``reason``) and ``steps`` (each ``step``,
``actions``, ``statuses``, ``rewards``, ``state``, ``timing``). ``steps[0]`` is the initial
state. ``verify_replay`` replays the actions through the current rules from the seed and
compares every state, telling a changed rule (``rules_version`` differs) from a corrupt log.

A stored match's document is served by :func:`replay_chunks`: its head (everything but the
steps) and then its steps a page at a time, each page read from storage (off the event loop,
in the database's thread) and written out as stored, never decoded. A match of a hundred
thousand steps is tens of megabytes: built whole it held the event loop for seconds and its
size in memory several times over; in pages, other requests run between two pages, memory
holds about one page, and a client that reads slowly holds back the reading (the response
waits on the socket).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from protocol.codec import encode_json
from protocol.errors import ArenaError, ConfigError, IllegalAction
from protocol.messages import JSON
from protocol.status import is_fault
from server.storage import MatchRecord, Storage

from .games import Game, get_game, new_game

__all__ = [
    "REPLAY_PAGE_STEPS",
    "VerifyReport",
    "replay_chunks",
    "replay_document",
    "step_json",
    "verify_replay",
]

# Steps per page of a streamed replay: about 0.4 MB of rps, one read of the database (a few
# milliseconds), so the event loop is never held longer than that.
REPLAY_PAGE_STEPS = 1000


def step_json(step: Any) -> dict[str, JSON]:
    """A ``StepRecord`` as a plain JSON object, as ``codec.encode`` writes it: ``faults`` only
    in a step where a seat faulted."""
    doc = asdict(step)
    if not doc["faults"]:
        del doc["faults"]
    return doc


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


def _seat_json(match: MatchRecord) -> list[dict[str, JSON]]:
    return [
        {"agent_id": s.agent_id, "name": s.agent_name, "owner": s.owner, "version": s.version,
         "status": s.status, "reward": s.reward, "reason": s.reason}
        for s in match.seats
    ]


_STEPS_TAIL = b'"steps":[]}'


async def replay_chunks(
    storage: Storage, match: MatchRecord, *, from_step: int = 0, limit: int | None = None,
    page_steps: int = REPLAY_PAGE_STEPS,
) -> AsyncIterator[bytes]:
    """The replay document of a stored match as JSON, in chunks of about ``page_steps`` steps
    (see the module's docstring): equal to encoding :func:`replay_document` of all its steps.

    With ``from_step`` and ``limit`` it is one page of that document: the steps from
    ``from_step`` on, at most ``limit`` of them, and ``next_step`` (where the next page starts,
    or null when this one reaches the last stored step).

    Raises:
        StorageError: a page could not be read (the response is then cut short).
    """
    head = encode_json(replay_document(
        game=match.game, rules_version=match.rules_version, config=match.config, seed=match.seed,
        seats=_seat_json(match), steps=[], match_id=match.id, status=match.status.value, reason=match.reason,
    ))
    if not head.endswith(_STEPS_TAIL):  # the steps are spliced in last: the document must end with them
        raise AssertionError(f"a replay document no longer ends with its steps: {head[-40:]!r}")
    yield head[:-2]  # ... "steps":[
    step, sent, separator = max(0, from_step), 0, b""
    while limit is None or sent < limit:
        want = page_steps if limit is None else min(page_steps, limit - sent)
        rows = await storage.get_step_texts(match.id, step, want)
        if rows:
            yield separator + ",".join(text for _, text in rows).encode()
            separator = b","
            sent += len(rows)
            step = rows[-1][0] + 1
        if len(rows) < want:
            break
    if limit is None:
        yield b"]}"
    else:
        more = sent == limit and bool(await storage.get_step_texts(match.id, step, 1))
        yield b'],"next_step":' + (str(step).encode() if more else b"null") + b"}"


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _document_problem(game_cls: type[Game], config: JSON, seed: JSON, steps: Sequence[JSON]) -> str | None:
    """Why a replay document (a file: it may hold anything) cannot be replayed, or None: a config
    without a key the rules read (``episodeSteps`` and the game's own), a value not of its default's
    kind or one the rules cannot play (the game's own check), a seed that is no integer, a step that
    is not an object with lists of actions, statuses and rewards."""
    if not isinstance(config, Mapping):
        return "config is not an object"
    defaults = game_cls.config_defaults()
    missing = sorted({"episodeSteps", *game_cls.default_config} - set(config))
    if missing:
        return f"config has no {', '.join(missing)}"
    for key, default in defaults.items():
        if key not in config:
            continue  # a time control: the rules never read it
        value = config[key]
        kinds = (int, float) if type(default) is float else (type(default),)
        if isinstance(value, bool) is not isinstance(default, bool) or not isinstance(value, kinds):
            return f"config {key} is {value!r}, not {_KINDS.get(type(default), type(default).__name__)}"
    try:
        game_cls.check_config(config)
    except ConfigError as exc:
        return str(exc)
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"seed {seed!r} is not an integer"
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            return f"step {index} is not an object"
        for key in ("actions", "statuses", "rewards"):
            if not isinstance(step.get(key, []), list):
                return f"step {index}: {key} is not a list"
    return None


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
        config, seed = doc["config"], doc["seed"]
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
    problem = _document_problem(game_cls, config, seed, steps)
    if problem is not None:
        return VerifyReport(False, 0, [f"not a replay document: {problem}"])
    game = new_game(game_cls.name, config, seed)
    if not steps:
        return VerifyReport(False, 0, ["replay has no steps"])
    problems: list[str] = []
    if steps[0].get("state") != game.state():
        problems.append("step 0: initial state differs from the one the seed gives")
    for index, record in enumerate(steps[1:], start=1):
        if record.get("step") != index:
            problems.append(f"step {index}: numbered {record.get('step')!r}")
        statuses = record.get("statuses", [])
        if any(is_fault(s) for s in statuses):
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
