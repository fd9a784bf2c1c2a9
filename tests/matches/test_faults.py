"""What ended a faulty seat, set where it fired: played in real matches (real sandboxed seats),
recorded the way the server records them (storage and the live feed, through ``StepLog``),
stored in a real SQLite database, read back, and named by the repro bundle."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from protocol.status import FaultLimit, SeatStatus
from server.matches.games import get_game, resolve_config
from server.matches.hub import Hub
from server.matches.recorder import SeatDebugFeed, StepLog, store_and_publish
from server.matches.repro import ScriptedSeat, repro_bundle
from server.matches.runner import MatchSpec, run_match
from server.matches.seats import open_links
from server.sandbox import Limits, SeatLauncher
from server.storage import MatchStatus, NewSeat, SeatResult, open_sqlite

MATCH_LIMIT_S = 20.0

FIRST_FREE = "def agent(obs, config):\n    return obs.board.index(0)\n"
SPINS = """
def agent(obs, config):
    while True:
        pass
"""
HOG = """
def agent(obs, config):
    x = bytearray(4 * 1024**3)
    return obs.board.index(0)
"""
FLOOD = """
def agent(obs, config):
    line = "x" * (1 << 20)
    for _ in range(100):
        print(line)
    return obs.board.index(0)
"""
SLEEPS_FOREVER = """
import time

def agent(obs, config):
    time.sleep(3600)
"""
SLOW_LOAD = """
import time
time.sleep(2)

def agent(obs, config):
    return obs.board.index(0)
"""
SLOW_MOVES = """
import time

def agent(obs, config):
    time.sleep(0.3)
    return obs.board.index(0)
"""
ILLEGAL = "def agent(obs, config):\n    return 99\n"
RAISES = "def agent(obs, config):\n    raise ValueError('boom')\n"
EXITS = "import os\n\ndef agent(obs, config):\n    os._exit(3)\n"
SYNTAX_ERROR = "def agent(obs, config)\n    return 0\n"

# (bot at seat 0, configuration, limits of both seats, status, limit, the repro bundle's limit)
CASES: dict[str, tuple[str, Mapping[str, Any], Limits, SeatStatus, FaultLimit, dict[str, Any]]] = {
    "cpu": (SPINS, {"actTimeout": 5.0, "remainingOverageTime": 0.001}, Limits(cpu_s=1),
            SeatStatus.ERROR, FaultLimit.CPU, {"name": "cpu_s", "value": 1}),
    "memory": (HOG, {}, Limits(), SeatStatus.ERROR, FaultLimit.MEMORY,
               {"name": "memory_mb", "value": Limits().memory_mb}),
    "output": (FLOOD, {}, Limits(), SeatStatus.ERROR, FaultLimit.OUTPUT,
               {"name": "output_bytes", "value": Limits().output_bytes}),
    "act-timeout": (SLEEPS_FOREVER, {"actTimeout": 0.2, "remainingOverageTime": 0.1}, Limits(),
                    SeatStatus.TIMEOUT, FaultLimit.ACT_TIMEOUT,
                    {"name": "actTimeout + overage bank", "actTimeout": 0.2, "bank_s": 0.1}),
    "agent-timeout": (SLOW_LOAD, {"agentTimeout": 0.5}, Limits(), SeatStatus.TIMEOUT, FaultLimit.AGENT_TIMEOUT,
                      {"name": "agentTimeout", "seconds": 0.5}),
    # Moves of 0.3 s: the second one meets the match's deadline (the opponent answers at once).
    "run-timeout": (SLOW_MOVES, {"actTimeout": 1.0, "runTimeout": 0.5}, Limits(), SeatStatus.TIMEOUT,
                    FaultLimit.RUN_TIMEOUT, {"name": "runTimeout", "seconds": 0.5}),
    "rules": (ILLEGAL, {}, Limits(), SeatStatus.INVALID, FaultLimit.RULES,
              {"name": "rules", "detail": "an illegal or malformed action"}),
    "exception": (RAISES, {}, Limits(), SeatStatus.ERROR, FaultLimit.EXCEPTION, {"name": "exception"}),
    # The restricted runtime would refuse ``import os``: turn it off to reach the process's exit.
    "crash-exit": (EXITS, {}, Limits(restricted=False), SeatStatus.ERROR, FaultLimit.CRASH, {"name": "crash"}),
    "crash-load": (SYNTAX_ERROR, {}, Limits(), SeatStatus.ERROR, FaultLimit.CRASH, {"name": "crash"}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_limit_that_fired_is_stored_with_the_step_and_read_back(
    launcher: SeatLauncher, tmp_path: Path, case: str
) -> None:
    bot, config, limits, status, limit, bundle_limit = CASES[case]
    game = get_game("tictactoe")
    resolved = resolve_config(game, config)
    async with open_sqlite(tmp_path / "arena.db") as storage:
        user = await storage.create_user("alice", "hash")
        agents = [await storage.save_agent(user.id, f"bot{i}", game.name, code)
                  for i, code in enumerate((bot, FIRST_FREE))]
        match = await storage.create_match(game.name, game.rules_version, resolved, 7,
                                           [NewSeat(a.id, a.version) for a in agents])
        spec = MatchSpec(game.name, resolved, match.seed, match_id=match.id)
        with anyio.fail_after(MATCH_LIMIT_S), Hub().open_feed(match.id, {"id": match.id}) as feed:
            async with open_links(launcher, [bot, FIRST_FREE], limits, label=f"match {match.id}") as links:
                debug = SeatDebugFeed(feed, links)
                log = StepLog(store_and_publish(storage, match.id, feed), debug.after_step, keep=False)
                result = await run_match(spec, links, log)
            last_frame = json.loads(feed.events[feed.seq - 1])  # the window counts from the first event
        assert log.steps == []  # kept by storage only, as the server's matches are

        faulty = result.seats[0]
        assert (faulty.status, faulty.limit) == (status, limit), faulty
        assert (result.seats[1].status, result.seats[1].limit) == (SeatStatus.DONE, None)
        assert last_frame["faults"] == [limit.value, None] and last_frame["statuses"][0] == status.value

        seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, o.status, o.reward, o.reason)
                 for s, o in zip(match.seats, result.seats, strict=True)]
        final = await storage.finish_match(match.id, MatchStatus.FINISHED, None, seats, time.time())
        steps = await storage.get_steps(match.id)
        assert steps[-1].faults == [limit.value, None] and steps[-1].statuses == [status.value, "DONE"]
        assert all(step.faults == [] for step in steps[:-1])  # only the forfeit step names a fault
        texts = await storage.get_step_texts(match.id, 0, len(steps))
        assert f'"faults":["{limit.value}",null]' in texts[-1][1]

        bundle = repro_bundle(final, steps, 0, limits)
        assert bundle["status"] == status.value
        assert {key: bundle["limit"][key] for key in bundle_limit} == bundle_limit
        if limit in (FaultLimit.EXCEPTION, FaultLimit.CRASH):
            assert bundle["limit"]["detail"] == faulty.reason


def test_every_fault_limit_is_triggered_above() -> None:
    assert {case[4] for case in CASES.values()} == set(FaultLimit)


async def test_a_scripted_seat_that_runs_out_of_moves_is_invalid_by_the_rules(launcher: SeatLauncher) -> None:
    """The third kind of seat ``open_links`` takes: a link as it is (here, a recording)."""
    resolved = resolve_config(get_game("tictactoe"), {})
    log = StepLog()
    with anyio.fail_after(MATCH_LIMIT_S):
        async with open_links(launcher, [ScriptedSeat(0, {1: [4, None]}), FIRST_FREE],
                              Limits()) as links:
            result = await run_match(MatchSpec("tictactoe", resolved, 1), links, log)
    assert (result.seats[0].status, result.seats[0].limit) == (SeatStatus.INVALID, FaultLimit.RULES)
    assert [s.step for s in log.steps] == [0, 1, 2, 3] and log.steps[-1].faults == ["rules", None]
