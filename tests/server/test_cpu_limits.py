"""Hard limits follow from the time controls (issue 10, 9): a bot that keeps its time never
loses to a hidden CPU limit.

Issue 10's bot thought 0.3 s a move, well inside actTimeout 1 s, and forfeited at move 343 of
an rps episode with "CPU time limit exceeded" under a fixed 120 s. Scaled down: a bot burning
0.25 s of CPU a move for 20 moves (5 s), inside its time controls, is killed by a fixed budget
of 2 s, and on a real server, whose seats' CPU limit is derived from the ranges of the time
controls, plays to the end with every move counted.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from protocol.messages import StepRecord
from server.matches.games import ConfigRanges, get_game, resolve_config
from server.matches.runner import MatchSpec, run_match
from server.matches.seats import open_process_seat
from server.sandbox import Limits, SeatLauncher
from server.sandbox.limits import seat_cpu_s
from tests.server.conftest import (
    RPS_CYCLE,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

BURN_S = 0.25  # CPU a move, half the move's time
MOVES = 20
THINKER = f"""
import time

def agent(observation, configuration):
    end = time.process_time() + {BURN_S}
    while time.process_time() < end:
        pass
    print("cpu", time.process_time())
    return observation.step % configuration.signs
"""
# Generous time controls (the machine may be shared): each move has 2 s and a 10 s bank, and
# the whole match 60 s. The bot uses 5 s of CPU in all.
CONFIG = {"episodeSteps": MOVES + 1, "actTimeout": 2.0, "remainingOverageTime": 10.0, "agentTimeout": 10.0,
          "runTimeout": 60.0}
OLD_FIXED_BUDGET_S = 2  # a budget set apart from the time controls, smaller than they allow
RANGES = ConfigRanges.from_table({"runTimeout": [0.001, 60], "agentTimeout": [0.001, 10]})


class Steps:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


async def test_a_fixed_cpu_budget_below_the_time_controls_kills_a_bot_that_keeps_its_time(
    launcher: SeatLauncher,
) -> None:
    """The hazard: the same bot and time controls under a budget set apart from them."""
    spec = MatchSpec("rps", resolve_config(get_game("rps"), CONFIG), seed=1)
    with anyio.fail_after(60):
        async with AsyncExitStack() as stack:
            thinker = open_process_seat(launcher, THINKER, Limits(cpu_s=OLD_FIXED_BUDGET_S))
            links = [await stack.enter_async_context(thinker),
                     await stack.enter_async_context(open_process_seat(launcher, RPS_CYCLE, Limits()))]
            result = await run_match(spec, links, Steps())
    assert result.seats[0].status == "ERROR"
    assert result.seats[0].reason is not None and "CPU time limit exceeded (2 s)" in result.seats[0].reason
    assert result.steps <= OLD_FIXED_BUDGET_S / BURN_S + 2


async def test_a_bot_that_keeps_its_time_is_never_killed_for_cpu(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, config_ranges=RANGES)
    # The seats' limit is derived from the largest time controls the ranges allow, and exceeds
    # the longest time any seat may think: its start-up plus the whole match.
    assert settings.limits.cpu_s == seat_cpu_s(10, 60, settings.limits.grace_s) > 10 + 60
    async with api_client(settings) as client:
        bob = await create_user(client, "bob")
        cycle = await submit_agent(client, bob, "cycle", "rps", RPS_CYCLE)
        before = await start_match(client, bob, "rps", [cycle["id"], cycle["id"]], {"episodeSteps": 100})
        alice = await create_user(client, "alice")
        thinker = await submit_agent(client, alice, "thinker", "rps", THINKER)
        other = await submit_agent(client, alice, "cycle", "rps", RPS_CYCLE)
        match = await start_match(client, alice, "rps", [thinker["id"], other["id"]], CONFIG)
        doc = await wait_finished(client, match["id"], timeout_s=120)
        assert doc["status"] == "finished", doc
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"], doc["seats"]
        assert doc["steps"] == MOVES + 1
        log = (await client.get(f"/api/agents/{thinker['id']}/logs?match={match['id']}",
                                headers=alice.headers)).json()["log"]
        used = [float(cpu) for cpu in re.findall(r"^cpu ([0-9.]+)$", log, re.M)]
        assert len(used) == MOVES and used[-1] >= MOVES * BURN_S > OLD_FIXED_BUDGET_S
        games = {g["name"]: g for g in (await client.get("/api/games")).json()["items"]}
        assert games["rps"]["limits"]["cpu_s"] == settings.limits.cpu_s

        before_doc = (await client.get(f"/api/matches/{before['id']}")).json()
        assert before_doc["status"] == "finished" and [s["status"] for s in before_doc["seats"]] == ["DONE", "DONE"]
        health = await client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
