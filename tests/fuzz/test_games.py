"""Every registered game under random sequences of legal and illegal actions, and replays.

- Played directly: ``parse_action`` and ``apply`` given anything (any JSON value, any seat,
  in turn or not) raise nothing but ``IllegalAction``; a refused ``apply`` leaves the state as
  it was; the state and every observation stay JSON that survives a round trip; the game ends
  within ``episodeSteps``.
- Played by the real match runner (``run_match``) with in-process seats that answer legal
  moves, junk, oversized actions or an exception: the recorded steps make a replay document
  that ``verify_replay`` verifies, whoever faulted.
- ``verify_replay`` given a mutated replay document returns a report and never raises.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import AgentCrashed, ConfigError, IllegalAction
from protocol.messages import JSON, StepRecord
from protocol.status import FaultLimit
from server.matches.games import GAMES, Game, game_names, new_game, resolve_config
from server.matches.replay import VerifyReport, replay_document, verify_replay
from server.matches.runner import MatchResult, MatchSpec, run_match
from server.matches.seats import Reply, SeatStart
from tests.fuzz.strategies import json_values, plain_json_values, texts

PROBES = list(range(-1, 70))  # every move of the built-in games is a small integer (connectx: up to 64 columns)
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def configs(draw: st.DrawFn, name: str) -> dict[str, JSON]:
    """A resolved config of the game: a short episode and, now and then, its own keys anywhere in
    their ranges (the game's own check refuses some combinations: then its defaults)."""
    cls = GAMES[name]
    overrides: dict[str, JSON] = {"episodeSteps": draw(st.integers(2, 40))}
    for key, bounds in cls.config_ranges.items():
        if draw(st.booleans()):
            overrides[key] = draw(st.integers(int(bounds.low), min(int(bounds.high), int(bounds.low) + 12)))
    try:
        return resolve_config(cls, overrides)
    except ConfigError:
        return resolve_config(cls, {"episodeSteps": overrides["episodeSteps"]})


def legal(game: Game, seat: int) -> list[JSON]:
    found = []
    for probe in PROBES:
        try:
            found.append(game.parse_action(seat, probe))
        except IllegalAction:
            pass
    return found


def snapshot(game: Game) -> JSON:
    """The state and observations, checked to be JSON that survives a round trip."""
    state = game.state()
    assert orjson.loads(orjson.dumps(state)) == state
    for seat in range(game.num_seats):
        observation = game.observation(seat)
        assert orjson.loads(orjson.dumps(observation)) == observation
    return state


def try_parse(game: Game, seat: int, action: JSON) -> JSON | IllegalAction:
    try:
        return game.parse_action(seat, action)
    except IllegalAction as exc:
        assert str(exc), "an IllegalAction without a message"
        return exc


@pytest.mark.parametrize("name", game_names())
@FUZZ
@given(data=st.data())
def test_random_legal_and_illegal_actions(name: str, data: st.DataObject) -> None:
    config = data.draw(configs(name), label="config")
    game = new_game(name, config, data.draw(st.integers(0, 2**32), label="seed"))
    snapshot(game)
    while game.outcome() is None:
        assert game.step < config["episodeSteps"], f"{name} goes on past episodeSteps"
        to_act = game.to_act()
        assert to_act, f"{name}: nobody to act at step {game.step} and no outcome"
        # Junk, and seats out of turn, are refused with IllegalAction and change nothing.
        for _ in range(data.draw(st.integers(0, 3), label="junk count")):
            seat = data.draw(st.integers(-1, game.num_seats), label="seat")
            before = snapshot(game)
            parsed = try_parse(game, seat, data.draw(json_values, label="junk"))
            if not isinstance(parsed, IllegalAction):
                assert seat in to_act, f"{name} took a move from seat {seat} out of turn"
            assert snapshot(game) == before
        # apply() given raw, possibly illegal actions: all or nothing.
        if data.draw(st.booleans(), label="apply junk"):
            raw = {seat: data.draw(json_values | st.sampled_from(PROBES), label="raw") for seat in to_act}
            before = snapshot(game)
            try:
                game.apply(raw)
            except IllegalAction:
                assert snapshot(game) == before, f"{name}: a refused apply() changed the state"
                continue
            snapshot(game)
            continue
        actions = {}
        for seat in to_act:
            options = legal(game, seat)
            assert options, f"{name}: seat {seat} has no legal move at step {game.step}"
            actions[seat] = data.draw(st.sampled_from(options), label="move")
        step = game.step
        game.apply(actions)
        assert game.step == step + 1
        snapshot(game)
    assert game.to_act() == ()
    assert isinstance(try_parse(game, 0, 0), IllegalAction)


class DrawnSeat:
    """An in-process seat whose every answer hypothesis draws: mostly a legal move, now and then
    junk, an action over the size limit or an exception (an ERROR)."""

    def __init__(self, data: st.DataObject, game: Game, seat: int) -> None:
        self.data, self.game, self.seat = data, game, seat

    async def start(self, start: SeatStart) -> None:
        pass

    async def act(self, step: int, observation: dict[str, JSON]) -> Reply:
        kind = self.data.draw(st.sampled_from(["legal"] * 12 + ["junk", "huge", "raise"]), label="answer")
        if kind == "raise":
            raise AgentCrashed(f"seat {self.seat} failed at step {step}", limit=FaultLimit.EXCEPTION)
        if kind == "huge":
            return Reply("x" * (MAX_ACTION_BYTES + 1))
        if kind == "junk":
            return Reply(self.data.draw(plain_json_values, label="junk"))  # what a seat's decoder can deliver
        options = legal(self.game, self.seat) or [None]
        return Reply(self.data.draw(st.sampled_from(options), label="move"))

    def stop(self, reason: str) -> None:
        pass

    def log_text(self) -> str:
        return ""


MAX_ACTION_BYTES = 256


class Steps:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


def play_match(name: str, config: dict[str, JSON], seed: int, data: st.DataObject) -> tuple[MatchResult, JSON]:
    """One match through the real runner; its result and replay document."""
    mirror = new_game(name, config, seed)  # the seats' view of the game, to find legal moves

    class Mirrored(Steps):
        async def record_step(self, record: StepRecord) -> None:
            await super().record_step(record)
            if record.step > 0 and record.step == mirror.step + 1 and not any(record.faults):
                mirror.apply({seat: record.actions[seat] for seat in mirror.to_act()})

    recorder = Mirrored()
    seats = [DrawnSeat(data, mirror, seat) for seat in range(GAMES[name].num_seats)]
    spec = MatchSpec(game=name, config=config, seed=seed, max_action_bytes=MAX_ACTION_BYTES)
    result = anyio.run(run_match, spec, seats, recorder)
    doc = replay_document(game=name, rules_version=GAMES[name].rules_version, config=config, seed=seed,
                          seats=[{"status": s.status, "reward": s.reward} for s in result.seats],
                          steps=recorder.steps)
    return result, orjson.loads(orjson.dumps(doc))


@pytest.mark.parametrize("name", game_names())
@FUZZ
@given(data=st.data())
def test_replay_of_a_random_match_verifies(name: str, data: st.DataObject) -> None:
    config = data.draw(configs(name), label="config")
    result, doc = play_match(name, config, data.draw(st.integers(0, 2**63 - 1), label="seed"), data)
    report = verify_replay(doc)
    assert report.ok, (report.problems, result)
    assert report.steps_checked == len(doc["steps"]) - 1
    assert doc["steps"][-1]["rewards"] == [s.reward for s in result.seats]


@st.composite
def mutated_replay(draw: st.DrawFn, doc: JSON) -> JSON:
    """The replay with one to four mutations anywhere: a value replaced by any JSON value, a key
    dropped, a list item dropped or duplicated."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        # A path to a node: walk down from the top a random number of levels.
        node: Any = doc
        for _ in range(draw(st.integers(0, 4))):
            children = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) \
                else []
            if not children:
                break
            key = draw(st.sampled_from(children))
            if not isinstance(node[key], dict | list) or draw(st.booleans()):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            how = draw(st.sampled_from(["replace", "drop"]))
            if how == "drop":
                del node[key]
            else:
                node[key] = draw(json_values | texts)
        elif isinstance(node, list) and node:
            index = draw(st.integers(0, len(node) - 1))
            how = draw(st.sampled_from(["replace", "drop", "duplicate"]))
            if how == "replace":
                node[index] = draw(json_values)
            elif how == "drop":
                del node[index]
            else:
                node.insert(index, copy.deepcopy(node[index]))
    return doc


@pytest.mark.parametrize("name", game_names())
@FUZZ
@given(data=st.data())
def test_verify_replay_of_a_mutated_document_never_raises(name: str, data: st.DataObject) -> None:
    rng = random.Random(name)
    config = resolve_config(GAMES[name], {"episodeSteps": 12})
    _, doc = play_match(name, config, rng.randrange(2**32), data)
    report = verify_replay(data.draw(mutated_replay(doc), label="mutated"))
    assert isinstance(report, VerifyReport)
    assert report.ok or report.problems


def test_verify_replay_says_what_is_wrong_with_a_malformed_document() -> None:
    config = resolve_config(GAMES["connectx"], {"episodeSteps": 12})
    doc = replay_document(game="connectx", rules_version=GAMES["connectx"].rules_version, config=config, seed=1,
                          seats=[], steps=[])
    doc["steps"] = [new_game("connectx", config, 1).state()]  # a state where a step belongs
    cases: list[tuple[JSON, str]] = [
        ({**doc, "steps": "0"}, "step 0 is not an object"),
        ({**doc, "steps": [{"state": {}}, None]}, "step 1 is not an object"),
        ({**doc, "steps": [{"state": {}, "statuses": 3}]}, "step 0: statuses is not a list"),
        ({**doc, "config": {k: v for k, v in config.items() if k != "episodeSteps"}}, "config has no episodeSteps"),
        ({**doc, "config": {**config, "inarow": "4"}}, "config inarow is '4', not an integer"),
        ({**doc, "config": {**config, "rows": 10**9}}, "config rows must be in 1..64"),
        ({**doc, "seed": "1"}, "seed '1' is not an integer"),
    ]
    for bad, said in cases:
        report = verify_replay(bad)
        assert not report.ok and report.problems[0].startswith("not a replay document: "), report
        assert said in report.problems[0], (said, report.problems)
