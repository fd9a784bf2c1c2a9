"""numpy, the operator's opt-in (``Limits.allow_numpy``, ``[limits] allow_numpy`` in the settings).

Real seats with every layer this machine has (the test fails, not skips, when one is off), in
both seat modes: a fresh sandboxed process per seat, and seats forked by a fork server whose
pool's limits allow numpy (its zygote's view holds numpy and it imports numpy before forking).
A bot that uses numpy for its moves plays to the end, with the same moves in both modes; the
same bot under the default limits fails at load, saying that numpy is off; a fork server
without numpy never forks a numpy seat. The filesystem view holds numpy's files only for seats
that may use it. What layer 2 refuses of numpy is in ``tests/security/test_numpy_attacks.py``.

numpy must be installed for the bot interpreter (Debian's ``python3-numpy``: ``scripts/test``
installs it): without it these tests fail.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from protocol.errors import AgentCrashed, LayerUnavailable
from protocol.messages import StepRecord
from server.config import load_settings
from server.matches.games import get_game, resolve_config
from server.matches.runner import MatchResult, MatchSpec, run_match
from server.matches.seats import ProcessSeat, SeatStart, open_process_seat
from server.sandbox import Limits, SeatLauncher, serve_seats
from server.sandbox.isolation import isolation_status
from server.sandbox.process import bot_python
from server.sandbox.seat import restricted
from server.sandbox.seat.bot_runtime import NUMPY_IMPORTS
from server.sandbox.view import numpy_view
from tests.sandbox.test_isolation import PRELUDE, outcomes
from tests.server.conftest import api_client, create_user, start_match, submit_agent, wait_finished

PYTHON = bot_python()
NUMPY = Limits(allow_numpy=True)
MATCH_LIMIT_S = 30.0
MODES = ["fresh", "fork"]

# A ConnectX bot whose every move goes through numpy: the board as an array, its free columns,
# numpy's global generator (seeded per seat by the runtime), linalg and fft on the way. It
# returns a numpy integer, which the runtime sends as a plain one.
NUMPY_BOT = """
import numpy as np

def agent(obs, config):
    board = np.array(obs.board).reshape(config.rows, config.columns)
    free = np.flatnonzero(board[0] == 0)
    assert np.linalg.norm(np.eye(2)) > 1.4 and np.fft.rfft(np.ones(4))[0] == 4
    noise = np.random.random(free.size) + np.random.default_rng(obs.step).random(free.size)
    return free[np.argmax(noise)]
"""
RANDOM_BOT = """
import random

def agent(obs, config):
    return random.choice([c for c in range(config.columns) if obs.board[c] == 0])
"""


class Recorder:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


@pytest.fixture(scope="module", autouse=True)
def every_layer_and_numpy() -> None:
    """These tests mean the full sandbox, and numpy installed for the bot interpreter."""
    states = isolation_status(PYTHON, Path(restricted.__file__).with_name("bot_runtime.py"))
    assert all(state.active for state in states.values()), states
    found = subprocess.run([PYTHON, "-c", "import numpy"], capture_output=True, text=True)
    assert found.returncode == 0, f"numpy is not installed for {PYTHON} (apt-get install python3-numpy): {found.stderr}"
    assert numpy_view(PYTHON), "numpy is installed but its view could not be found"


@asynccontextmanager
async def seats_in(mode: str, pool_limits: Limits = NUMPY) -> AsyncIterator[SeatLauncher]:
    """A launcher of seats in ``mode`` for the block; "fork" with a fork server of ``pool_limits``."""
    if mode == "fork":
        async with serve_seats("fork", limits=pool_limits, pool_size=2) as launcher:
            yield launcher
    else:
        yield SeatLauncher("fresh")


async def play(
    mode: str, bots: Sequence[str], limits: Sequence[Limits], *, seed: int = 7
) -> tuple[MatchResult, list[StepRecord], list[ProcessSeat]]:
    """One ConnectX match of ``bots`` under ``limits``, seats started in ``mode``."""
    spec = MatchSpec("connectx", resolve_config(get_game("connectx"), {}), seed=seed)
    recorder = Recorder()
    async with seats_in(mode) as launcher:
        with anyio.fail_after(MATCH_LIMIT_S):
            async with AsyncExitStack() as stack:
                seats = [await stack.enter_async_context(open_process_seat(launcher, code, seat_limits))
                         for code, seat_limits in zip(bots, limits, strict=True)]
                result = await run_match(spec, seats, recorder)
    assert [seat.process.mode for seat in seats] == [mode, mode]
    assert all(seat.process.is_sandboxed for seat in seats)
    return result, recorder.steps, seats


def moves_of(steps: list[StepRecord], seat: int) -> list[object]:
    return [step.actions[seat] for step in steps[1:] if step.actions[seat] is not None]


# -- the setting ----------------------------------------------------------------------------------


def test_numpy_is_off_unless_the_settings_turn_it_on(tmp_path: Path) -> None:
    assert load_settings(None).limits.allow_numpy is False
    settings = tmp_path / "arena.toml"
    settings.write_text("[limits]\nallow_numpy = true\n", encoding="utf-8")
    assert load_settings(settings).limits == dataclasses.replace(load_settings(None).limits, allow_numpy=True)


def test_the_runtime_imports_what_layer_2_allows() -> None:
    assert sorted(NUMPY_IMPORTS) == sorted(restricted.NUMPY_MODULES)


# -- a numpy bot plays, in both seat modes --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_numpy_bot_plays_to_the_end_with_every_layer(mode: str) -> None:
    result, steps, seats = await play(mode, [NUMPY_BOT, RANDOM_BOT], [NUMPY, Limits()])
    assert [(s.status, s.reason) for s in result.seats] == [("DONE", None), ("DONE", None)], seats[0].log_text()
    moves = moves_of(steps, 0)
    assert len(moves) >= 4 and all(type(move) is int and 0 <= move < 7 for move in moves), moves


async def test_numpy_moves_are_the_same_in_both_modes_and_replay_exactly() -> None:
    played = [moves_of((await play(mode, [NUMPY_BOT, RANDOM_BOT], [NUMPY, Limits()]))[1], 0)
              for mode in ("fresh", "fork", "fork")]
    assert played[0] == played[1] == played[2], played
    other_seed = moves_of((await play("fork", [NUMPY_BOT, RANDOM_BOT], [NUMPY, Limits()], seed=8))[1], 0)
    assert other_seed != played[0]  # numpy's generator follows the match seed (7 vs 8 differ here)


@pytest.mark.parametrize("mode", MODES)
async def test_the_same_bot_fails_at_load_under_the_default_limits(mode: str) -> None:
    result, steps, seats = await play(mode, [NUMPY_BOT, RANDOM_BOT], [Limits(), Limits()])
    seat = result.seats[0]
    assert seat.status == "ERROR", seat
    assert seat.reason == ("failed to load at start-up: ImportError: import of 'numpy' is not allowed in the arena: "
                           "numpy is off on this server (the operator's opt-in, allow_numpy in the settings' [limits])")
    assert moves_of(steps, 0) == []


async def test_a_fork_server_without_numpy_never_forks_a_numpy_seat() -> None:
    async with serve_seats("fork", limits=Limits(), pool_size=1) as launcher:
        with pytest.raises(LayerUnavailable, match="the fork server has no numpy"):
            async with open_process_seat(launcher, NUMPY_BOT, NUMPY):
                pass
        auto = SeatLauncher("auto", launcher.server)  # the same fork server, in auto mode
        async with open_process_seat(auto, NUMPY_BOT, NUMPY) as seat:  # auto: a fresh seat instead
            assert seat.process.mode == "fresh"
            with anyio.fail_after(MATCH_LIMIT_S):
                await seat.start(SeatStart(seat=0, seed=1, configuration={"rows": 6, "columns": 7}))
                reply = await seat.act(1, {"board": [0] * 42, "step": 1})
        assert reply.action in range(7)


async def test_fair_numpy_code_works_under_layer_2() -> None:
    """The guards of ``_numpy_guards.py`` leave ordinary numpy alone."""
    bot = textwrap.dedent("""
        import numpy as np

        a = np.arange(6)
        assert isinstance(a, np.ndarray) and type(a) is np.ndarray and issubclass(type(a), np.ndarray)
        assert not isinstance([1], np.ndarray) and repr(np.ndarray) == "<class 'numpy.ndarray'>"
        assert np.ndarray((2, 3)).shape == (2, 3) and np.ndarray((2,), dtype=np.int8).dtype == np.int8
        a.resize((2, 3))  # an array that owns its memory, no views: refcheck passes
        assert a.shape == (2, 3) and np.resize(a, (3, 3)).shape == (3, 3)
        b = a.copy()
        b.shape = (3, 2)
        assert bytes(b.data) == b.tobytes() and np.frombuffer(bytearray(8), np.uint8).sum() == 0
        assert np.matrix([[1, 2]]).shape == (1, 2) and np.ndarray.sum(a) == 15
        g = np.random.default_rng(3)
        assert g.integers(0, 10, 5).shape == (5,) and np.random.PCG64(1).random_raw() > 0
        # Methods whose C code imports numpy's Python half lazily, from the bot's frame.
        assert a.sum() == 15 and a.mean() == 2.5 and a.max() == 5 and a.std() > 1 and a.clip(1, 2).min() == 1
        assert repr(np.arange(3)) == "array([0, 1, 2])" and str(np.arange(3)) == "[0 1 2]"
        print(np.eye(2))
        try:
            np.add("a", 1)
        except TypeError as e:
            assert "ufunc 'add'" in str(e)
        else:
            raise AssertionError("no error")

        def agent(obs, config):
            return int(np.argmax(np.array(obs.board) == 0))
    """)
    result, _, seats = await play("fresh", [bot, RANDOM_BOT], [NUMPY, Limits()])
    assert [s.status for s in result.seats] == ["DONE", "DONE"], (result.seats[0], seats[0].log_text())


# -- the filesystem view --------------------------------------------------------------------------


def numpy_site() -> str:
    """numpy's site directory on the host: its view binds numpy's package alone into it."""
    args = numpy_view(PYTHON)
    assert args[0] == "--ro-bind", args  # --ro-bind SOURCE DEST: numpy's package comes first
    return os.path.dirname(args[2])


def numpy_links() -> list[str]:
    """The links the loader follows to numpy's libraries outside the base view, as ``path -> target``."""
    args = numpy_view(PYTHON)
    return sorted(f"{args[i + 2]} -> {args[i + 1]}" for i, arg in enumerate(args) if arg == "--symlink")


VIEW_PROBE = """
import os

def links(top):
    found = []
    for directory, _, names in os.walk(top):
        found += [f"{directory}/{name} -> {os.readlink(directory + '/' + name)}" for name in names]
    return sorted(found)

def blas_threads():
    import numpy
    numpy.dot(numpy.ones((300, 300)), numpy.ones((300, 300)))  # a BLAS call that would start its threads
    return open("/proc/self/status").read().split("Threads:")[1].split()[0]

attempt("site", lambda: sorted(os.listdir(SITE)))
attempt("etc", lambda: len(links("/etc")) if os.path.exists("/etc") else "no /etc")
for number, link in enumerate(links("/etc") if os.path.exists("/etc") else []):
    attempt(f"etc {number}", lambda: link)
attempt("threads", blas_threads)
attempt("blas env", lambda: (os.environ["OPENBLAS_NUM_THREADS"], os.environ["OMP_NUM_THREADS"]))
"""


@pytest.mark.parametrize("mode", MODES)
async def test_the_view_holds_numpy_only_for_seats_that_may_use_it(mode: str) -> None:
    code = PRELUDE + VIEW_PROBE.replace("SITE", repr(numpy_site()))
    seen: dict[bool, dict[str, str]] = {}
    for allow in (True, False):
        # Layer 2 off (a test-only switch) so that the bot can look around with os; in fork mode
        # the first fork server allows numpy, the second does not.
        limits = Limits(restricted=False, allow_numpy=allow)
        async with seats_in(mode, pool_limits=limits) as launcher, open_process_seat(launcher, code, limits) as seat:
            assert seat.process.mode == mode and seat.process.is_sandboxed
            with anyio.fail_after(MATCH_LIMIT_S):
                await seat.start(SeatStart(seat=0, seed=1, configuration={}))
                assert (await seat.act(1, {})).action == 0
        seen[allow] = outcomes(seat.log_text())
    assert seen[True]["site"] == "OK ['numpy']", seen  # numpy alone, not the rest of its site directory
    # Nothing of the host's /etc but the links to numpy's libraries (Debian's BLAS alternatives).
    expected = numpy_links()
    assert seen[True]["etc"] == (f"OK {len(expected)}" if expected else "OK 'no /etc'"), seen
    assert [seen[True][f"etc {i}"] for i in range(len(expected))] == [f"OK {link!r}" for link in expected], seen
    assert seen[True]["threads"] == "OK '1'" and seen[True]["blas env"] == "OK ('1', '1')", seen
    assert seen[False]["site"].startswith("FileNotFoundError") and seen[False]["etc"] == "OK 'no /etc'", seen


# -- the operator's path: a settings file, a real server, a submitted bot ---------------------------


async def test_a_server_whose_settings_allow_numpy_plays_submitted_numpy_bots(tmp_path: Path) -> None:
    settings_file = tmp_path / "arena.toml"
    settings_file.write_text("seat_mode = 'fork'\nseat_pool_size = 2\n[limits]\nallow_numpy = true\n", encoding="utf-8")
    settings = replace(load_settings(settings_file), db=tmp_path / "arena.db", ladder=False, seed_examples=False,
                       port=0)
    async with api_client(settings) as client:
        seats = (await client.get("/api/health")).json()["sandbox"]["seat_mode"]
        user = await create_user(client, "ann")
        numpy_bot = (await submit_agent(client, user, "numpy", "connectx", NUMPY_BOT))["id"]  # passes layer 1
        other = (await submit_agent(client, user, "random", "connectx", RANDOM_BOT))["id"]
        match = await start_match(client, user, "connectx", [numpy_bot, other], seed=3)
        match = await wait_finished(client, match["id"])
    assert seats["active"] == "fork" and "numpy preloaded" in seats["reason"], seats
    assert [(s["status"], s["reason"]) for s in match["seats"]] == [("DONE", None), ("DONE", None)], match


async def test_numpy_allowed_but_missing_fails_at_load_saying_why() -> None:
    """The server's own interpreter has no numpy: a seat run by it says so, in one line."""
    if importlib.util.find_spec("numpy") is not None:
        pytest.skip(f"{sys.executable} has numpy: no interpreter without it to run the seat")
    limits = Limits(allow_numpy=True)
    async with SeatLauncher("fresh").open_seat(limits, python=sys.executable, isolation=None) as process:
        seat = ProcessSeat(process, NUMPY_BOT, limits)
        with anyio.fail_after(MATCH_LIMIT_S), pytest.raises(AgentCrashed) as failure:
            await seat.start(SeatStart(seat=0, seed=1, configuration={}))
    assert str(failure.value) == (f"failed to load at start-up: numpy is allowed here but cannot be imported: "
                                  f"ImportError: numpy is not installed for {sys.executable} "
                                  "(Debian: apt-get install python3-numpy)")
