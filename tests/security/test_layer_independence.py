"""Layer independence: each layer alone stops its class of attack, the other layers off.

Every match here runs straight through the match runner (``direct_play.py``), so the static
validator (layer 1) is never on the path; ``Limits(restricted=False)`` turns the restricted
runtime (layer 2) off and ``isolation_override`` leaves out bubblewrap (layers 6-8). Layers 3-5
are how a seat runs at all: they cannot be switched off, only made harmless to the attack under
test (deadlines long enough that the clock never decides).

==========  =====================================================================================
layer       alone, it stops
==========  =====================================================================================
2 runtime   every ``# target: runtime`` bot of the suite (builtins recovery, import bypasses,
            frames, static bypasses): with layer 2 off the same bot reaches real ``os``, builtins
            or frames (its marker), with layer 2 alone it does not
4 rlimits   a fork (RLIMIT_NPROC 0, as uid 65534), a 4 GB allocation (RLIMIT_AS), writing a byte
            to a file (RLIMIT_FSIZE 0; creating an empty file still works), a CPU spin (RLIMIT_CPU)
5 deadlines a bot that never answers, at start-up or in a move, and ignores SIGTERM: TIMEOUT,
            SIGKILL after the grace period, the process reaped
6 namespaces  ``tests/sandbox/test_isolation.py``: a connection to a server on the host's
            127.0.0.1 (refused in the seat's own network namespace); a PID namespace and hostname
7 seccomp   ``tests/sandbox/test_isolation.py``: sockets and opening for writing (EPERM); forks,
            signals to other processes, ptrace, unshare, mount (EPERM), in an outer box
8 filesystem  ``tests/sandbox/test_isolation.py``: the host's files (/etc/passwd, the project,
            the database, other bots) absent, writes refused (read-only view)
==========  =====================================================================================

Layers 6-8 are proven there with tiny bots, each layer alone (the others off, layer 2 off);
:func:`test_layers_6_to_8_each_have_a_single_layer_test` keeps that reference honest. The
attacks that would hurt the machine should their layer fail (a fork, 4 GB) run in an outer box
(``tests/sandbox_box.py``).
"""

from __future__ import annotations

import ast
import errno
import re
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.sandbox import Limits, SeatLauncher
from tests.sandbox_box import ATTEMPT_PRELUDE
from tests.security.conftest import AttackBot, load_bots
from tests.security.direct_play import Played, play_boxed, play_direct

RUNTIME_BOTS = [bot for bot in load_bots() if bot.target == "runtime"]
TEST_ISOLATION = Path(__file__).resolve().parents[1] / "sandbox" / "test_isolation.py"
NO_ISOLATION = None  # no bubblewrap: no namespaces, no seccomp, no filesystem view
SLOW_CLOCK = {"actTimeout": 30.0, "remainingOverageTime": 0.1, "agentTimeout": 30.0, "runTimeout": 55.0}
PRELUDE = ATTEMPT_PRELUDE


def attempts(log: str) -> dict[str, str]:
    """``name -> outcome`` from the ``attempt`` lines of a log."""
    return dict(re.findall(r"^([\w .-]+): (.*)$", log, re.M))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def assert_cleaned_up(played: Played) -> None:
    """Every seat process reaped, nothing left in its session."""
    assert None not in played.exit_codes, played
    assert played.survivors == [], played


# -- layer 2: the restricted runtime alone -----------------------------------------------------------


@pytest.mark.parametrize("bot", RUNTIME_BOTS, ids=[bot.name for bot in RUNTIME_BOTS])
async def test_layer_2_alone_stops_the_runtime_attacks(launcher: SeatLauncher, bot: AttackBot) -> None:
    code = bot.source(listener_port=9, server_port=9)  # these bots use no port
    without = await play_direct(launcher, code, limits=Limits(restricted=False), layers=NO_ISOLATION)
    assert bot.marker in without.logs[0], f"{bot.name} did not reach its target without layer 2:\n{without.logs[0]}"
    alone = await play_direct(launcher, code, limits=Limits(), layers=NO_ISOLATION)
    assert bot.marker not in alone.logs[0] + repr(alone.actions), alone.logs[0]
    assert alone.statuses[0] in bot.expect, alone
    assert alone.statuses[1] == "DONE", alone
    assert_cleaned_up(alone)


# -- layer 4: resource limits alone ------------------------------------------------------------------


def test_layer_4_alone_stops_a_fork_in_an_outer_box() -> None:
    # Should RLIMIT_NPROC fail, the child exits at once; the box caps processes anyway.
    played = play_boxed(PRELUDE + """
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid

attempt("fork", fork)
attempt("uid", os.getuid)
""", limits=Limits(restricted=False), layers=NO_ISOLATION)
    seen = attempts(played.logs[0])
    assert seen["uid"] == "OK 65534"  # RLIMIT_NPROC binds no root: the runtime gave root up
    assert seen["fork"] == f"BlockingIOError errno={errno.EAGAIN}", played.logs[0]
    assert played.statuses == ["DONE", "DONE"]
    assert_cleaned_up(played)


def test_layer_4_alone_stops_4_gb_in_an_outer_box() -> None:
    # The box's memory cgroup (2 GB) would kill the seat should RLIMIT_AS fail: another reason.
    played = play_boxed("""
def agent(observation, configuration):
    return len(bytearray(4 << 30))
""", limits=Limits(restricted=False, memory_mb=1024), layers=NO_ISOLATION, config=SLOW_CLOCK)
    status, reason, _log = played.attacker
    assert (status, reason) == ("ERROR", "memory limit exceeded at step 1: MemoryError"), played
    assert played.actions == []
    assert_cleaned_up(played)


@pytest.fixture
def open_directory() -> Iterator[Path]:
    """A directory anyone may write to (the seat runs as uid 65534), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="arena-fsize-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


async def test_layer_4_alone_stops_writing_to_a_file(launcher: SeatLauncher, open_directory: Path) -> None:
    target = open_directory / "written"
    played = await play_direct(launcher, PRELUDE + f"""
file = open({str(target)!r}, "w")
attempt("write", lambda: (file.write("x" * 4096), file.flush()))
attempt("close", file.close)
attempt("append", lambda: open({str(target)!r}, "a").write("y"))
""", limits=Limits(restricted=False), layers=NO_ISOLATION)
    seen = attempts(played.logs[0])
    # RLIMIT_FSIZE 0 refuses every byte (SIGXFSZ, which Python ignores, then EFBIG)...
    assert seen["write"] == f"OSError errno={errno.EFBIG}", played.logs[0]
    # ...but not the creation of an empty file: the read-only view (layer 8) is what stops that.
    assert target.exists() and target.stat().st_size == 0
    assert played.statuses == ["DONE", "DONE"]
    assert_cleaned_up(played)


async def test_layer_4_alone_stops_a_cpu_spin(launcher: SeatLauncher) -> None:
    played = await play_direct(launcher, """
def agent(observation, configuration):
    while True:
        pass
""", limits=Limits(restricted=False, cpu_s=1), layers=NO_ISOLATION, config=SLOW_CLOCK)
    status, reason, _log = played.attacker
    assert (status, reason) == ("ERROR", "CPU time limit exceeded (1 s)"), played
    assert played.exit_codes[0] in (-signal.SIGXCPU, -signal.SIGKILL), played  # SIGKILL at the hard limit
    assert_cleaned_up(played)


# -- layer 5: deadlines alone ------------------------------------------------------------------------

DEAF = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
{where}
def agent(observation, configuration):
    time.sleep(3600)
"""


@pytest.mark.parametrize(("where", "config", "reason"), [
    # Generous enough for the good opponent to load on a busy machine; the bot itself never will.
    ("time.sleep(3600)", {"agentTimeout": 2.0}, r"not ready within agentTimeout \(2 s\)"),
    ("", {"agentTimeout": 20.0, "actTimeout": 0.3, "remainingOverageTime": 0.01},
     r"no move within 0\.3\d* s at step 1 "),
], ids=["at-start-up", "in-a-move"])
async def test_layer_5_alone_stops_a_bot_that_never_answers(
    launcher: SeatLauncher, where: str, config: dict[str, float], reason: str
) -> None:
    # It sleeps, so the CPU limit never fires; it ignores SIGTERM, so the grace period ends in SIGKILL.
    played = await play_direct(
        launcher, DEAF.format(where=where), limits=Limits(restricted=False, grace_s=0.2), layers=NO_ISOLATION,
        config=config,
    )
    status, got, _log = played.attacker
    assert status == "TIMEOUT" and re.match(reason, got or ""), played
    assert played.statuses[1] == "DONE"
    assert played.exit_codes[0] == -signal.SIGKILL, played
    assert not alive(played.pids[0])
    assert_cleaned_up(played)


# -- layers 6-8: proven one by one in tests/sandbox/test_isolation.py -------------------------------

SINGLE_LAYER_TESTS = {
    "namespaces": ["test_namespaces_alone_stop_a_connection_to_the_server",
                   "test_namespaces_alone_give_a_pid_namespace_of_its_own_and_a_hostname"],
    "seccomp": ["test_seccomp_alone_stops_sockets_and_opening_for_writing",
                "test_seccomp_alone_stops_forks_and_signals_to_others_in_an_outer_box"],
    "filesystem": ["test_filesystem_alone_hides_the_host_and_refuses_writes"],
}


def test_layers_6_to_8_each_have_a_single_layer_test() -> None:
    """The tests this module's docstring points to exist, and each turns its layer on alone."""
    source = TEST_ISOLATION.read_text()
    tree = ast.parse(source)
    functions = {
        node.name: ast.unparse(node) for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    # Their bots run below the validator, with the restricted runtime off, in-process and boxed alike.
    assert "Limits(restricted=False)" in functions["run_bot"] and source.count("Limits(restricted=False)") >= 2
    for layer, names in SINGLE_LAYER_TESTS.items():
        others = [other for other in SINGLE_LAYER_TESTS if other != layer]
        for name in names:
            assert name in functions, f"{name} (layer {layer} alone) is gone from {TEST_ISOLATION}"
            body = functions[name]
            assert f"{layer}=True)" in body and not any(f"{other}=True" in body for other in others), body
