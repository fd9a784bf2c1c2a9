"""The match runner with real sandboxed seats: every kind of faulty bot loses cleanly.

Each test plays whole matches between real bot runtimes (no mocks): a faulty bot against
a good one must end the match with the faulty seat losing, the right status and a reason
that names what happened, while the arena stays bounded and reaps every process.
"""

from __future__ import annotations

import gc
import os
import re
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from protocol.errors import MAX_REASON_CHARS
from protocol.messages import SeatTiming, StepRecord
from server.bots import example_bots
from server.matches.games import get_game, resolve_config
from server.matches.runner import DEFAULT_MAX_ACTION_BYTES, MatchResult, MatchSpec, run_match
from server.matches.seats import open_process_seat
from server.sandbox import Limits, SeatLauncher

NOBODY = 65534
MATCH_LIMIT_S = 20.0  # no single match here may take longer: a hang fails fast
EXAMPLES = {name: source for bots in example_bots().values() for name, source in bots}

# Good opponents.
FIRST_FREE = """
def agent(obs, config):
    return obs.board.index(0)
"""
FIRST_FREE_COLUMN = """
def agent(obs, config):
    return [c for c in range(config.columns) if obs.board[c] == 0][0]
"""

# Every seat process these tests started (its pid is also its session id).
_seat_pids: list[int] = []


# -- helpers --------------------------------------------------------------------------------------


class ListRecorder:
    """Keeps every step record in a list."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    async def record_step(self, record: StepRecord) -> None:
        self.steps.append(record)


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    session: int
    state: str
    uid: int


def processes() -> list[Proc]:
    """Every process visible in /proc (those that vanish while we read are skipped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        found.append(Proc(int(entry.name), int(fields[1]), int(fields[3]), fields[0], uid))
    return found


def rss_bytes() -> int:
    """The resident set size of this test process now."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None
    return int(match.group(1)) << 10


def source(name_or_code: str) -> str:
    return EXAMPLES.get(name_or_code) or textwrap.dedent(name_or_code)


async def play(
    launcher: SeatLauncher,
    game: str,
    bots: Sequence[str],
    config: Mapping[str, object] | None = None,
    *,
    seed: int = 7,
    limits: Sequence[Limits] | None = None,
    pace_s: float = 0.0,
    max_action_bytes: int = DEFAULT_MAX_ACTION_BYTES,
) -> tuple[MatchResult, list[StepRecord], list[str]]:
    """Play one match between bot sources (or example bot names), seats opened by ``launcher``:
    result, steps, seat logs.

    Also checks that when the match ends nothing but the seat processes themselves lives in
    their sessions: no bot managed to leave a process behind.
    """
    spec = MatchSpec(game, resolve_config(get_game(game), config), seed=seed, pace_s=pace_s,
                     max_action_bytes=max_action_bytes)
    recorder = ListRecorder()
    limits = limits or [Limits()] * len(bots)
    with anyio.fail_after(MATCH_LIMIT_S):
        async with AsyncExitStack() as stack:
            links = []
            for bot, seat_limits in zip(bots, limits, strict=True):
                link = await stack.enter_async_context(open_process_seat(launcher, source(bot), seat_limits))
                _seat_pids.append(link.process.pid)
                links.append(link)
            result = await run_match(spec, links, recorder)
            leaders = {link.process.pid for link in links}
            strays = [p for p in processes() if p.session in leaders and p.pid not in leaders]
            assert strays == [], f"processes left in the seats' sessions: {strays}"
        logs = [link.log_text() for link in links]
    return result, recorder.steps, logs


def assert_forfeit(
    result: MatchResult, steps: list[StepRecord], seat: int, status: str, *facts: str
) -> str:
    """Seat ``seat`` lost by ``status`` and its opponent won; the reason names every fact."""
    other = 1 - seat
    faulty, winner = result.seats[seat], result.seats[other]
    assert (faulty.status, faulty.reward) == (status, -1.0), result
    assert (winner.status, winner.reward, winner.reason) == ("DONE", 1.0, None), result
    assert (result.termination, result.winner) == ("forfeit", other)
    reason = faulty.reason
    assert reason is not None
    for fact in facts:
        assert fact in reason, f"{fact!r} not in reason {reason!r}"
    last = steps[-1]
    assert last.statuses[seat] == status and last.statuses[other] == "DONE"
    assert last.rewards[seat] == -1.0 and last.rewards[other] == 1.0
    return reason


def seat_actions(steps: list[StepRecord], seat: int) -> list[Any]:
    """What ``seat`` played, step by step (steps where it did not act are skipped)."""
    return [s.actions[seat] for s in steps[1:] if s.actions[seat] is not None]


def seat_timing(steps: list[StepRecord], seat: int) -> list[SeatTiming]:
    return [t for s in steps for t in s.timing[seat : seat + 1] if t is not None]


@pytest.fixture(autouse=True)
def every_process_reaped(launcher: SeatLauncher) -> Iterator[None]:
    """After each test: no child of this process (not even a zombie) and no seat process is left.

    Also collects garbage, so a pipe or transport a seat left open fails the test that leaked
    it (its ResourceWarning is an error here) rather than some later one.
    """
    _seat_pids.clear()
    yield
    gc.collect()
    me = os.getpid()
    left = processes()
    fork_server = {launcher.server.pid} if launcher.server is not None else set()
    assert [p for p in left if p.ppid == me and p.pid not in fork_server] == []  # the zygote's bwrap stays
    sessions = set(_seat_pids)
    assert [p for p in left if p.session in sessions or (p.pid in sessions and p.uid == NOBODY)] == []


# -- bots -----------------------------------------------------------------------------------------

RAISES = """
def agent(obs, config):
    print("thinking about", obs.board)
    raise ValueError("boom")
"""
SPINS = """
def agent(obs, config):
    while True:
        pass
"""
SLEEPS_FOREVER = """
import time

def agent(obs, config):
    time.sleep(3600)
"""
SLOW_MOVES = """
import time

def agent(obs, config):
    print(f"bank={obs.remainingOverageTime!r}")
    time.sleep(0.25)
    return 0
"""
FLOOD = """
def agent(obs, config):
    line = "x" * (1 << 20)
    for _ in range(100):
        print(line)
    return obs.board.index(0)
"""
HOG = """
def agent(obs, config):
    x = bytearray(4 * 1024**3)
    return obs.board.index(0)
"""
HOG_AT_LOAD = """
x = bytearray(4 * 1024**3)

def agent(obs, config):
    return obs.board.index(0)
"""
FORKS = """
import os

def agent(obs, config):
    os.fork()
    return obs.board.index(0)
"""
SUBPROCESS = """
import subprocess

def agent(obs, config):
    subprocess.run(["true"])
    return obs.board.index(0)
"""
SYNTAX_ERROR = """
def agent(obs, config)
    return 0
"""
NO_AGENT = """
ROWS = 3
COLUMNS = 3
"""
SLOW_LOAD = """
import time
time.sleep(2)

def agent(obs, config):
    return obs.board.index(0)
"""


def returns(expr: str) -> str:
    """A tic-tac-toe bot that always answers ``expr``."""
    return f"def agent(obs, config):\n    return {expr}\n"


# -- faulty bots ----------------------------------------------------------------------------------


async def test_exception_is_error_with_bot_traceback_in_log(launcher: SeatLauncher) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [RAISES, "tictactoe_random"])
    reason = assert_forfeit(result, steps, 0, "ERROR", "ValueError: boom", "step 1")
    assert reason == "raised at step 1: ValueError: boom"
    log = logs[0]
    assert "thinking about [0, 0, 0, 0, 0, 0, 0, 0, 0]" in log
    assert "Traceback (most recent call last):" in log
    assert 'File "bot.py", line 4, in agent' in log
    assert 'raise ValueError("boom")' in log  # the bot's own source line
    assert log.rstrip().endswith("ValueError: boom")
    frames = re.findall(r'^\s*File "([^"]*)"', log, re.M)
    assert frames and set(frames) == {"bot.py"}
    assert "bot_runtime" not in log and "/server/" not in log and "/usr/lib" not in log
    assert logs[1] == ""


@pytest.mark.parametrize("bot", [SPINS, SLEEPS_FOREVER], ids=["spins", "sleeps"])
async def test_never_answering_is_timeout(launcher: SeatLauncher, bot: str) -> None:
    config = {"actTimeout": 0.2, "remainingOverageTime": 0.05}
    started = time.monotonic()
    result, steps, logs = await play(launcher, "tictactoe", [FIRST_FREE, bot], config)
    assert time.monotonic() - started < 2.0
    reason = assert_forfeit(result, steps, 1, "TIMEOUT", "no move within 0.25 s at step 2", "actTimeout 0.2 s")
    assert "[arena] " + reason in logs[1]  # the seat's owner learns why it was stopped
    assert seat_timing(steps, 1)[-1].bank_s == 0.0


async def test_simultaneous_seats_each_keep_their_own_deadline(launcher: SeatLauncher) -> None:
    """rps asks both seats at once: the silent one times out, the other's move and timing are kept."""
    config = {"actTimeout": 0.2, "remainingOverageTime": 0.05}
    result, steps, _ = await play(launcher, "rps", [returns("1"), SLEEPS_FOREVER], config)
    assert_forfeit(result, steps, 1, "TIMEOUT", "no move within 0.25 s at step 1")
    assert steps[-1].actions == [1, None]
    mover, silent = steps[-1].timing
    assert mover is not None and silent is not None
    assert mover.wall_s < silent.wall_s and silent.bank_s == 0.0


async def test_cancelling_a_simultaneous_step_stops_both_asks(launcher: SeatLauncher) -> None:
    """A match cancelled from outside while both rps seats think ends there, every seat reaped."""
    spec = MatchSpec("rps", resolve_config(get_game("rps"), {"actTimeout": 60, "runTimeout": 120}), seed=1)
    recorder = ListRecorder()
    with anyio.fail_after(MATCH_LIMIT_S):
        async with AsyncExitStack() as stack:
            links = []
            for _ in range(2):
                link = await stack.enter_async_context(open_process_seat(launcher, source(SLEEPS_FOREVER), Limits()))
                _seat_pids.append(link.process.pid)
                links.append(link)
            with anyio.move_on_after(1.0) as scope:
                await run_match(spec, links, recorder)
    assert scope.cancelled_caught
    assert [s.step for s in recorder.steps] == [0]  # nothing recorded for the step that never finished


async def test_slow_moves_spend_the_bank_then_time_out(launcher: SeatLauncher) -> None:
    config = {"actTimeout": 0.1, "remainingOverageTime": 0.5, "episodeSteps": 20}
    result, steps, logs = await play(launcher, "rps", [SLOW_MOVES, "rps_random"], config)
    timing = seat_timing(steps, 0)
    moves = seat_actions(steps, 0)
    assert len(moves) >= 2  # 0.25 s moves fit while the bank lasts
    assert len(timing) == len(moves) + 1  # ... then one did not
    # Every move slower than actTimeout is paid from the bank: it only ever goes down.
    bank = 0.5
    for move in timing[:-1]:
        assert 0.25 <= move.wall_s < 0.25 + 0.1
        assert move.bank_s == pytest.approx(max(0.0, bank - (move.wall_s - 0.1)), abs=1e-5)
        assert move.bank_s < bank
        bank = move.bank_s
    assert 0.1 + bank < 0.25  # the move that timed out could not have fit in what was left
    budget = f"{0.1 + bank:.3g}"
    assert_forfeit(result, steps, 0, "TIMEOUT", f"no move within {budget} s at step {len(moves) + 1}")
    assert timing[-1].bank_s == 0.0
    # The bot saw its bank in each observation, shrinking move by move.
    seen = [float(v) for v in re.findall(r"^bank=(\S+)$", logs[0], re.M)]
    assert seen[0] == 0.5
    assert seen == pytest.approx([0.5, *(t.bank_s for t in timing[:-1])], abs=1e-5)
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)


DEEP_NEST = """
def agent(obs, config):
    action = 0
    for _ in range(100_000):
        action = [action]
    return action
"""
REPR_RAISES = """
class Move:
    def __repr__(self):
        raise RuntimeError("no repr")

def agent(obs, config):
    return Move()
"""


@pytest.mark.parametrize(
    ("bot", "facts"),
    [
        (returns("0"), ["illegal action at step 2", "cell 0 is taken"]),
        (returns("9"), ["illegal action at step 2", "integer in 0..8, got 9"]),
        (returns("-1"), ["got -1"]),
        (returns("True"), ["got True"]),
        (returns("1.0"), ["got 1.0"]),
        (returns("None"), ["got None"]),
        (returns("{'cell': 3}"), ["got {'cell': 3}"]),
        (returns("'3'"), ["got '3'"]),
        (returns("[3]"), ["got [3]"]),
        (returns("{3}"), ["invalid action at step 2", "action {3} is not JSON", "set"]),
        (returns("float('nan')"), ["malformed reply"]),
        # Even repr fails for these: the runtime must still answer, not crash.
        (returns("10**5000"), ["invalid action at step 2", "action <int object> is not JSON", "4300 digits"]),
        (DEEP_NEST, ["invalid action at step 2", "action <list object> is not JSON", "recursion"]),
        (REPR_RAISES, ["invalid action at step 2", "action <Move object> is not JSON", "not JSON serializable"]),
    ],
    ids=[
        "taken", "too-big", "negative", "bool", "float", "none", "dict", "str", "list", "set", "nan",
        "huge-int", "deep-nest", "repr-raises",
    ],
)
async def test_illegal_or_malformed_action_is_invalid(launcher: SeatLauncher, bot: str, facts: list[str]) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [FIRST_FREE, bot])
    assert_forfeit(result, steps, 1, "INVALID", *facts)
    assert result.steps == 2  # seat 0's first move stands; seat 1's forfeit is step 2
    assert "bot_runtime" not in logs[1]


async def test_match_time_limit_is_timeout(launcher: SeatLauncher) -> None:
    slow = """
    import time

    def agent(obs, config):
        time.sleep(0.15)
        return 0
    """
    config = {"actTimeout": 1.0, "runTimeout": 0.5, "episodeSteps": 50}
    started = time.monotonic()
    result, steps, _ = await play(launcher, "rps", [slow, "rps_random"], config)
    assert time.monotonic() - started < 1.0
    assert_forfeit(result, steps, 0, "TIMEOUT", "match time limit reached (runTimeout 0.5 s)")
    assert 3 <= result.steps <= 4  # two or three moves of 0.15 s fit, then the forfeit step


@pytest.mark.parametrize(
    ("bot", "facts"),
    [
        ("import sys\ndef agent(obs, config):\n    sys.exit(3)\n", ["raised at step 1: SystemExit: 3"]),
        ("import os\ndef agent(obs, config):\n    os._exit(3)\n", ["exited with code 3"]),
        ("import os, signal\ndef agent(obs, config):\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
         ["killed by signal SIGSEGV"]),
    ],
    ids=["sys-exit", "os-exit", "segfault"],
)
async def test_bot_that_dies_is_error(launcher: SeatLauncher, bot: str, facts: list[str]) -> None:
    # These bots use modules the restricted runtime refuses: turn it off to reach the process layers.
    result, steps, _ = await play(launcher, "tictactoe", [bot, FIRST_FREE], limits=[Limits(restricted=False), Limits()])
    assert_forfeit(result, steps, 0, "ERROR", *facts)


async def test_reply_longer_than_limit_is_invalid(launcher: SeatLauncher) -> None:
    limits = Limits(reply_bytes=4096)
    result, steps, _ = await play(launcher, 
        "tictactoe", [FIRST_FREE, returns("list(range(10000))")], limits=[Limits(), limits]
    )
    assert_forfeit(result, steps, 1, "INVALID", "reply longer than 4096 bytes")


async def test_an_action_over_the_size_bound_is_invalid_and_not_recorded(launcher: SeatLauncher) -> None:
    """A 1,000,000-character move fits one reply line, but it is refused before the rules look
    at it: INVALID with a short reason, and the step records null rather than a megabyte."""
    result, steps, _ = await play(launcher, "rps", [returns("'x' * 1_000_000"), "rps_random"], {"episodeSteps": 10})
    reason = assert_forfeit(result, steps, 0, "INVALID", "action of 1000002 bytes at step 1",
                            f"exceeds the limit of {DEFAULT_MAX_ACTION_BYTES} bytes")
    assert len(reason) <= MAX_REASON_CHARS + 1
    assert steps[-1].actions[0] is None
    # The bound is the operator's: a smaller one applies to the same code path.
    result, steps, _ = await play(launcher, "rps", [returns("'x' * 100"), "rps_random"], {"episodeSteps": 10},
                                  max_action_bytes=64)
    assert_forfeit(result, steps, 0, "INVALID", "action of 102 bytes at step 1 exceeds the limit of 64 bytes")


async def test_every_reason_quotes_a_short_prefix(launcher: SeatLauncher) -> None:
    """Whatever a reason is about (an illegal move under the size bound, an exception's
    message) it quotes at most MAX_REASON_CHARS characters of it, with an ellipsis."""
    illegal = returns("'y' * 60_000")
    result, steps, _ = await play(launcher, "rps", [illegal, "rps_random"], {"episodeSteps": 10})
    reason = assert_forfeit(result, steps, 0, "INVALID", "illegal action at step 1", "yyyy")
    assert len(reason) == MAX_REASON_CHARS + 1 and reason.endswith("…")
    assert steps[-1].actions[0] == "y" * 60_000  # within the bound: stored as played
    crash = "def agent(obs, config):\n    raise ValueError('z' * 100_000)\n"
    result, steps, _ = await play(launcher, "rps", [crash, "rps_random"], {"episodeSteps": 10})
    reason = assert_forfeit(result, steps, 0, "ERROR", "raised at step 1: ValueError: zzz")
    assert len(reason) == MAX_REASON_CHARS + 1 and reason.endswith("…")


async def test_output_flood_is_cut_off_and_memory_stays_bounded(launcher: SeatLauncher) -> None:
    limits = Limits()
    peak = baseline = rss_bytes()
    done = anyio.Event()

    async def sample_rss() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample_rss)
        started = time.monotonic()
        result, steps, logs = await play(launcher, "tictactoe", [FLOOD, FIRST_FREE])
        elapsed = time.monotonic() - started
        done.set()
    assert_forfeit(result, steps, 0, "ERROR", "output limit exceeded", f"more than {limits.output_bytes} bytes")
    assert len(logs[0].encode()) <= limits.log_bytes + 200
    assert logs[0].startswith("x" * 1000)
    assert f"[log truncated after {limits.log_bytes} bytes]" in logs[0]
    assert peak - baseline < 50 << 20, f"RSS grew by {(peak - baseline) >> 20} MB"
    assert elapsed < 5.0  # cut off at once, not after 100 MB


@pytest.mark.parametrize(("bot", "where"), [(HOG, "at step 1"), (HOG_AT_LOAD, "at start-up")], ids=["move", "load"])
async def test_memory_hog_is_error(launcher: SeatLauncher, bot: str, where: str) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    assert_forfeit(result, steps, 0, "ERROR", f"memory limit exceeded {where}", "MemoryError")
    assert "MemoryError" in logs[0]


@pytest.mark.parametrize("bot", [FORKS, SUBPROCESS], ids=["fork", "subprocess"])
async def test_spawning_a_process_is_error(launcher: SeatLauncher, bot: str) -> None:
    # The restricted runtime would refuse ``import os`` at load: turn it off to reach the process limits.
    result, steps, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE],
                                     limits=[Limits(restricted=False), Limits()])
    assert_forfeit(result, steps, 0, "ERROR", "raised at step 1")
    # seccomp refuses the fork (EPERM) where it is active, else RLIMIT_NPROC does (EAGAIN).
    refusals = ("PermissionError: [Errno 1] Operation not permitted", "BlockingIOError: [Errno 11]")
    assert any(refusal in result.seats[0].reason for refusal in refusals), result.seats[0].reason
    assert any(refusal.split(":")[0] in logs[0] for refusal in refusals)
    # play() found nothing left in the seat's session; nor may a child have got to play.
    assert result.steps == 1  # the forfeit, in place of the first move


async def test_cpu_limit_kills_a_spinning_bot(launcher: SeatLauncher) -> None:
    config = {"actTimeout": 5.0, "remainingOverageTime": 0.001}
    started = time.monotonic()
    result, steps, _ = await play(launcher, "tictactoe", [SPINS, FIRST_FREE], config,
                                  limits=[Limits(cpu_s=1), Limits()])
    assert time.monotonic() - started < 4.0  # well before the 5 s deadline
    assert_forfeit(result, steps, 0, "ERROR", "CPU time limit exceeded (1 s)")


async def test_deadline_stops_a_spinning_bot_below_its_cpu_limit(launcher: SeatLauncher) -> None:
    config = {"actTimeout": 0.2, "remainingOverageTime": 0.001}
    result, steps, _ = await play(launcher, "tictactoe", [SPINS, FIRST_FREE], config,
                                  limits=[Limits(cpu_s=60), Limits()])
    assert_forfeit(result, steps, 0, "TIMEOUT", "no move within 0.201 s at step 1")


@pytest.mark.parametrize(
    ("bot", "status", "facts"),
    [
        (SYNTAX_ERROR, "ERROR", ["failed to load at start-up", "SyntaxError"]),
        (NO_AGENT, "ERROR", ["no agent at start-up", "no function named 'agent'"]),
        ("raise ImportError('no numpy here')\n", "ERROR", ["failed to load at start-up: ImportError: no numpy here"]),
        (SLOW_LOAD, "TIMEOUT", ["not ready within agentTimeout (0.5 s)"]),
    ],
    ids=["syntax-error", "no-agent", "raises-at-import", "slow-load"],
)
async def test_start_up_failure(launcher: SeatLauncher, bot: str, status: str, facts: list[str]) -> None:
    started = time.monotonic()
    result, steps, _ = await play(launcher, "tictactoe", [FIRST_FREE, bot], {"agentTimeout": 0.5})
    assert time.monotonic() - started < 1.5
    assert_forfeit(result, steps, 1, status, *facts)
    assert result.steps == 1  # the forfeit is the only step after the initial state
    # The initial state, then the forfeit as the next step (stored steps are numbered 0, 1, ...).
    assert [s.step for s in steps] == [0, 1]
    assert steps[1].actions == [None, None] and steps[1].state == steps[0].state


async def test_syntax_error_reason_is_one_line_naming_the_line(launcher: SeatLauncher) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [FIRST_FREE, SYNTAX_ERROR])
    reason = assert_forfeit(result, steps, 1, "ERROR", "failed to load at start-up: SyntaxError: ")
    assert reason.endswith("(bot.py, line 2)") and "\n" not in reason
    # The log keeps the full picture: the file, the line, the source and the caret.
    assert 'File "bot.py", line 2\n    def agent(obs, config)\n' in logs[1]
    assert "^" in logs[1] and "bot_runtime" not in logs[1]


# -- all at once ----------------------------------------------------------------------------------


async def test_faulty_matches_run_alongside_a_good_one(launcher: SeatLauncher) -> None:
    fast = {"actTimeout": 0.2, "remainingOverageTime": 0.05}
    faulty: dict[str, tuple[str, list[str], dict[str, Any], list[Limits] | None, str]] = {
        "raises": ("tictactoe", [RAISES, "tictactoe_random"], {}, None, "ERROR"),
        "spins": ("tictactoe", [SPINS, FIRST_FREE], fast, None, "TIMEOUT"),
        "sleeps": ("tictactoe", [SLEEPS_FOREVER, FIRST_FREE], fast, None, "TIMEOUT"),
        "slow-moves": ("rps", [SLOW_MOVES, "rps_random"], {"actTimeout": 0.1, "remainingOverageTime": 0.5}, None,
                       "TIMEOUT"),
        "taken": ("tictactoe", [returns("4"), FIRST_FREE], {}, None, "INVALID"),
        "set": ("tictactoe", [returns("{0}"), FIRST_FREE], {}, None, "INVALID"),
        "flood": ("tictactoe", [FLOOD, FIRST_FREE], {}, None, "ERROR"),
        "hog": ("tictactoe", [HOG, FIRST_FREE], {}, None, "ERROR"),
        "fork": ("tictactoe", [FORKS, FIRST_FREE], {}, [Limits(restricted=False), Limits()], "ERROR"),
        "subprocess": ("tictactoe", [SUBPROCESS, FIRST_FREE], {}, [Limits(restricted=False), Limits()], "ERROR"),
        "cpu": ("tictactoe", [SPINS, FIRST_FREE], {"actTimeout": 5.0, "remainingOverageTime": 0.001},
                [Limits(cpu_s=1), Limits()], "ERROR"),
        "syntax": ("tictactoe", [SYNTAX_ERROR, FIRST_FREE], {}, None, "ERROR"),
        "no-agent": ("tictactoe", [NO_AGENT, FIRST_FREE], {}, None, "ERROR"),
        # A longer agentTimeout than alone: ~30 interpreters start at once here.
        "slow-load": ("tictactoe", [SLOW_LOAD, FIRST_FREE], {"agentTimeout": 1.0}, None, "TIMEOUT"),
    }
    results: dict[str, MatchResult] = {}

    async def run(name: str, game: str, bots: list[str], config: dict[str, Any], limits: list[Limits] | None) -> None:
        results[name] = (await play(launcher, game, bots, config, limits=limits))[0]

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "good", "connectx", ["connectx_greedy", "connectx_random"], {}, None)
        for name, (game, bots, config, limits, _) in faulty.items():
            tg.start_soon(run, name, game, bots, config, limits)

    good = results.pop("good")
    assert [s.status for s in good.seats] == ["DONE", "DONE"]
    assert good.termination in {"win", "draw"} and all(s.reason is None for s in good.seats)
    assert {name: (r.seats[0].status, r.seats[0].reward, r.seats[1].reward) for name, r in results.items()} == {
        name: (status, -1.0, 1.0) for name, (*_, status) in faulty.items()
    }


# -- Kaggle-style bots ----------------------------------------------------------------------------


async def test_connectx_bot_uses_attribute_access(launcher: SeatLauncher) -> None:
    bot = """
    def agent(obs, config):
        assert obs.mark == 1
        assert len(obs.board) == config.rows * config.columns == 42
        assert config.inarow == 4
        assert obs.remainingOverageTime > 0
        return [c for c in range(config.columns) if obs.board[c] == 0][0]
    """
    result, steps, _ = await play(launcher, "connectx", [bot, "connectx_random"])
    assert result.termination != "forfeit" and [s.status for s in result.seats] == ["DONE", "DONE"]
    assert seat_actions(steps, 0)[0] == 0


async def test_last_top_level_function_is_the_agent(launcher: SeatLauncher) -> None:
    bot = """
    COLUMNS = 7

    def open_columns(board, columns):
        return [c for c in range(columns) if board[c] == 0]

    def last_open(obs, config):
        return open_columns(obs.board, config.columns)[-1]
    """
    result, steps, _ = await play(launcher, "connectx", [bot, FIRST_FREE_COLUMN])
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    assert seat_actions(steps, 0)[:3] == [6, 6, 6]
    assert seat_actions(steps, 1)[:3] == [0, 0, 0]


async def test_rps_bot_keeps_module_state_between_moves(launcher: SeatLauncher) -> None:
    bot = """
    counter = 0

    def agent(obs, config):
        global counter
        action = counter % config.signs
        counter += 1
        return action
    """
    result, steps, _ = await play(launcher, "rps", [bot, "rps_random"], {"episodeSteps": 10})
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    assert seat_actions(steps, 0) == [0, 1, 2, 0, 1, 2, 0, 1, 2]


async def test_rps_bot_sees_the_opponents_last_action(launcher: SeatLauncher) -> None:
    copycat = """
    def agent(obs, config):
        assert obs.step == len(history)
        history.append(obs.lastOpponentAction)
        return 0 if obs.lastOpponentAction is None else obs.lastOpponentAction

    history = []
    """
    result, steps, _ = await play(launcher, "rps", [copycat, "rps_random"], {"episodeSteps": 20})
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    mine, theirs = seat_actions(steps, 0), seat_actions(steps, 1)
    assert mine == [0, *theirs[:-1]]


@pytest.mark.parametrize(
    ("bot", "expected"),
    [
        ("def agent(obs):\n    return obs.step % 3\n", [0, 1, 2, 0, 1]),
        ("def agent():\n    return 1\n", [1, 1, 1, 1, 1]),
        ("def agent(*args):\n    return len(args)\n", [2, 2, 2, 2, 2]),
    ],
    ids=["one-arg", "no-arg", "varargs"],
)
async def test_agent_arity(launcher: SeatLauncher, bot: str, expected: list[int]) -> None:
    result, steps, _ = await play(launcher, "rps", [bot, "rps_random"], {"episodeSteps": 6})
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    assert seat_actions(steps, 0) == expected


RANDOM_CHOICE = """
import random

def agent(obs, config):
    return random.choice(range(config.signs))
"""


async def test_random_is_seeded_by_the_match(launcher: SeatLauncher) -> None:
    config = {"episodeSteps": 50}

    async def actions(seed: int) -> list[int]:
        _, steps, _ = await play(launcher, "rps", [RANDOM_CHOICE, RANDOM_CHOICE], config, seed=seed)
        return seat_actions(steps, 0)

    first, again, other = await actions(1), await actions(1), await actions(2)
    assert len(first) == 49
    assert first == again
    assert first != other
    # Each seat gets a stream of its own.
    _, steps, _ = await play(launcher, "rps", [RANDOM_CHOICE, RANDOM_CHOICE], config, seed=1)
    assert seat_actions(steps, 0) != seat_actions(steps, 1)


# -- determinism ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("game", "bots", "config"),
    [
        ("connectx", ["connectx_greedy", "connectx_random"], {}),
        ("tictactoe", ["tictactoe_random", "tictactoe_minimax"], {}),
        ("rps", ["rps_counter", "rps_random"], {"episodeSteps": 50}),
    ],
    ids=["connectx", "tictactoe", "rps"],
)
async def test_same_seed_same_match(launcher: SeatLauncher, game: str, bots: list[str], config: dict[str, Any]) -> None:
    def replay(steps: list[StepRecord]) -> list[tuple[Any, ...]]:
        return [(s.step, s.actions, s.statuses, s.rewards, s.state) for s in steps]

    first_result, first, _ = await play(launcher, game, bots, config, seed=123)
    second_result, second, _ = await play(launcher, game, bots, config, seed=123)
    assert replay(first) == replay(second)
    assert first_result == second_result


async def test_pace_shorter_than_a_move_is_harmless(launcher: SeatLauncher) -> None:
    """A step slower than the pace must not make the pacing sleep negative (it once raised
    ValueError and took the whole server's task group down)."""
    slow = "from time import sleep\n\ndef agent(obs, config):\n    sleep(0.03)\n    return 0\n"
    result, steps, _ = await play(launcher, "rps", [slow, slow], {"episodeSteps": 6}, pace_s=0.001)
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    assert len(steps) == 6


async def test_pace_spaces_the_steps(launcher: SeatLauncher) -> None:
    started = time.monotonic()
    result, steps, _ = await play(launcher, "rps", ["rps_random", "rps_random"], {"episodeSteps": 6}, pace_s=0.05)
    assert [s.status for s in result.seats] == ["DONE", "DONE"]
    # Five paced steps take at least four pace intervals (no upper bound: shared machines are noisy).
    assert time.monotonic() - started >= 4 * 0.05
