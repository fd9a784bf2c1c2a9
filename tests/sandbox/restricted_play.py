"""Real bots in real matches through ``open_process_seat`` and ``run_match``: the path that never
calls the validator (layer 1), for the tests of the restricted runtime (layer 2) on its own."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

import anyio

from protocol.messages import StepRecord
from server.bots import example_bots
from server.matches.games import get_game, resolve_config
from server.matches.runner import MatchResult, MatchSpec, run_match
from server.matches.seats import open_process_seat
from server.sandbox import Limits, SeatLauncher

MATCH_LIMIT_S = 20.0
MARKER = "PWNED"
EXAMPLES = {name: code for bots in example_bots().values() for name, code in bots}
UNRESTRICTED = Limits(restricted=False)
FIRST_FREE = "def agent(obs, config):\n    return obs.board.index(0)\n"


class ListRecorder:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


async def play(
    launcher: SeatLauncher, game: str, bots: Sequence[str], config: Mapping[str, object] | None = None, *,
    limits: Sequence[Limits] | None = None,
) -> tuple[MatchResult, list[StepRecord], list[str]]:
    """One match between bot sources (or example bot names), seats opened by ``launcher``: result, steps, seat logs."""
    spec = MatchSpec(game, resolve_config(get_game(game), config), seed=3)
    recorder = ListRecorder()
    with anyio.fail_after(MATCH_LIMIT_S):
        async with AsyncExitStack() as stack:
            links = [
                await stack.enter_async_context(open_process_seat(launcher, EXAMPLES.get(bot, bot), seat_limits))
                for bot, seat_limits in zip(bots, limits or [Limits()] * len(bots), strict=True)
            ]
            result = await run_match(spec, links, recorder)
        logs = [link.log_text() for link in links]
    return result, recorder.steps, logs


def actions_of(steps: list[StepRecord], seat: int) -> list[object]:
    return [s.actions[seat] for s in steps[1:] if s.actions[seat] is not None]


def in_agent(body: str) -> str:
    """A tic-tac-toe bot that runs ``body`` (which sets ``x``) at its first move, then boasts."""
    return (
        "def agent(obs, config):\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        + f"    print({MARKER!r}, repr(x)[:200])\n"
        + "    return obs.board.index(0)\n"
    )


def at_load(body: str) -> str:
    """A tic-tac-toe bot that runs ``body`` (which sets ``x``) when its module loads, then boasts."""
    return textwrap.dedent(body).strip() + f"\nprint({MARKER!r}, repr(x)[:200])\n" + FIRST_FREE
