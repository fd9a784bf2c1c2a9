"""Layers 6-8 of the sandbox (namespaces, seccomp, filesystem view), proven by real bots.

Every attack is a real bot that tries something at load time and prints what happened to its
log (``name: OK ...`` or ``name: ExceptionType errno=N``); the test reads the log after the seat
is closed. Each layer is also run alone (the others off; the runtime's rlimits stay on) to show
that it holds by itself, and a run with no layer at all shows that the attack would work, so
the bots really attack. The attacks that could hurt the machine if a layer failed (forks,
``kill(-1)``, signals to the parent) run inside an outer box of the test's own: a separate
interpreter in a new PID namespace (and a cgroup v1 ``pids`` limit when writable).
On a machine with bubblewrap and libseccomp (CI) these tests fail, not skip, when a layer is off.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from protocol.errors import AgentCrashed
from protocol.messages import StepRecord
from server.bots import example_bots
from server.matches.games import get_game, resolve_config
from server.matches.runner import MatchSpec, run_match
from server.matches.seats import SeatStart, open_process_seat
from server.sandbox import Limits, SeatLauncher
from server.sandbox.isolation import (
    Isolation,
    LayerUnavailable,
    as_user,
    build_isolation,
    default_isolation,
    isolation_override,
    isolation_status,
    sandbox_process_groups,
)
from server.sandbox.layers import sandbox_layers
from server.sandbox.process import bot_python
from server.sandbox.view import RUNTIME_PATH, others_may_read, readable_runtime, seat_files
from tests.sandbox_box import ATTEMPT_PRELUDE, outer_box

PROJECT = Path(__file__).resolve().parents[2]
PYTHON = bot_python()
EPERM, ENOENT, EROFS = 1, 2, 30

PRELUDE = ATTEMPT_PRELUDE


def only(*, namespaces: bool = False, seccomp: bool = False, filesystem: bool = False) -> Isolation:
    return build_isolation(python=PYTHON, namespaces=namespaces, seccomp=seccomp, filesystem=filesystem)


def host_has(path: str) -> bool:
    return os.path.lexists(path)


def outcomes(log: str) -> dict[str, str]:
    """``name -> what happened`` from the attempt lines of a bot's log."""
    return dict(re.findall(r"^([\w .-]+): (.*)$", log, re.M))


async def run_bot(code: str, isolation: Isolation | None, limits: Limits | None = None) -> dict[str, str]:
    """Start a seat for ``PRELUDE + code`` with ``isolation``, ask one move, return its attempts.

    The restricted runtime (layer 2) is off unless ``limits`` say otherwise: these bots import
    ``os`` and ``socket`` on purpose, to reach the layers under test. The seat is fresh: the
    fork server runs seats with every layer only.
    """
    code = PRELUDE + textwrap.dedent(code)
    with isolation_override(isolation):
        async with open_process_seat(SeatLauncher("fresh"), code, limits or Limits(restricted=False)) as seat:
            assert seat.process.is_sandboxed == (isolation is not None)
            with anyio.fail_after(20):
                await seat.start(SeatStart(seat=0, seed=1, configuration={}))
                assert (await seat.act(1, {})).action == 0
    return outcomes(seat.log_text())


BOXED = """
import json, sys, anyio
from contextlib import AsyncExitStack
from server.matches.seats import SeatStart, open_process_seat
from server.sandbox import Limits, SeatLauncher, serve_seats
from server.sandbox.isolation import build_isolation, isolation_override
from server.sandbox.process import bot_python

async def main(code, layers, fork):
    async with AsyncExitStack() as stack:
        if fork:  # a seat forked by a fork server of the box's own, which has every layer
            launcher = await stack.enter_async_context(serve_seats("fork"))
        else:
            launcher = SeatLauncher("fresh")
            stack.enter_context(isolation_override(build_isolation(python=bot_python(), **layers)))
        async with open_process_seat(launcher, code, Limits(restricted=False)) as seat:
            with anyio.fail_after(20):
                await seat.start(SeatStart(seat=0, seed=1, configuration={}))
                action = (await seat.act(1, {})).action
    print(json.dumps({"log": seat.log_text(), "action": action}))

anyio.run(main, *json.loads(sys.stdin.read()))
"""


def run_boxed(code: str, *, fork: bool = False, **layers: bool) -> dict[str, str]:
    """Like :func:`run_bot`, but the whole seat, server side included, runs in an outer box.

    ``fork``: the seat is forked by a fork server (started in the box) rather than wrapped in ``layers``.

    The box (``tests/sandbox_box.py``) is a new PID namespace (``kill(-1)`` there reaches only
    the box), with its own ``/proc``, inside a cgroup with at most 64 processes when cgroup v1 is
    writable.
    """
    with outer_box() as box:
        done = subprocess.run(
            box.wrap([sys.executable, "-c", BOXED]), input=json.dumps([PRELUDE + textwrap.dedent(code), layers, fork]),
            capture_output=True, text=True, timeout=60, cwd=PROJECT,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["action"] == 0  # the seat still played after its attacks
    return outcomes(result["log"])


# -- the machine offers all three, and they are reported --------------------------------------------


def test_all_three_layers_are_active_here() -> None:
    status = isolation_status(PYTHON, RUNTIME_PATH)
    assert {name: state.active for name, state in status.items()} == {
        "namespaces": True, "seccomp": True, "filesystem": True}, status
    isolation = default_isolation(PYTHON, RUNTIME_PATH)
    assert isolation is not None and (isolation.namespaces, isolation.seccomp, isolation.filesystem) == (
        True, True, True)
    reported = {layer.name: layer for layer in sandbox_layers()}
    for name in ("namespaces", "seccomp", "filesystem"):
        assert reported[name].active and reported[name].reason == status[name].reason


def test_missing_pieces_are_reported_with_their_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.sandbox import isolation as module

    monkeypatch.setattr(module, "_find_bwrap", lambda: None)
    states = module._detect_now(PYTHON, RUNTIME_PATH)  # the detection, run afresh (uncached)
    assert states.isolation is None
    assert all(not s.active and "bwrap" in s.reason for s in states.states.values())
    with pytest.raises(LayerUnavailable, match="bubblewrap"):
        build_isolation(python=PYTHON)

    monkeypatch.undo()
    states = module._detect_now("/nonexistent/python3", RUNTIME_PATH)
    assert all(not s.active and "could not inspect the bot interpreter /nonexistent/python3" in s.reason
               for s in states.states.values())
    # A sandbox that cannot start the interpreter (its view lacks it): the reason is bwrap's first line.
    empty_view = dataclasses.replace(build_isolation(python=PYTHON), view=("--dir", "/dev"))
    failure = module.probe(empty_view, PYTHON, RUNTIME_PATH)
    assert failure == f"probe failed: bwrap: execvp {os.path.realpath(PYTHON)}: No such file or directory"

    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # the binding is not installed
    with pytest.raises(LayerUnavailable, match="seccomp binding missing: pip install pyseccomp"):
        module._seccomp_program.__wrapped__(2)


async def test_example_bots_play_a_whole_match_in_the_sandbox(launcher: SeatLauncher) -> None:
    bots = dict(example_bots()["connectx"])
    spec = MatchSpec("connectx", resolve_config(get_game("connectx"), {}), seed=3)
    steps: list[StepRecord] = []

    class Recorder:
        async def record_step(self, record: StepRecord) -> None:
            steps.append(record)

    async with open_process_seat(launcher, bots["connectx_greedy"], Limits()) as a, open_process_seat(
        launcher, bots["connectx_random"], Limits()
    ) as b:
        assert a.process.is_sandboxed and b.process.is_sandboxed
        with anyio.fail_after(30):
            result = await run_match(spec, [a, b], Recorder())
    assert [s.status for s in result.seats] == ["DONE", "DONE"], result
    assert result.steps > 4


# -- layer 6: namespaces --------------------------------------------------------------------------

CONNECT = """
import socket
attempt("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2).close())
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def connections(listener: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


async def test_without_layers_the_connect_attack_reaches_the_server(listener: socket.socket) -> None:
    seen = await run_bot(CONNECT.format(port=listener.getsockname()[1]), None)
    assert seen["connect"] == "OK None"
    assert connections(listener) == 1


async def test_namespaces_alone_stop_a_connection_to_the_server(listener: socket.socket) -> None:
    seen = await run_bot(CONNECT.format(port=listener.getsockname()[1]), only(namespaces=True))
    assert seen["connect"] == "ConnectionRefusedError errno=111"  # the sandbox's own loopback: nobody there
    assert connections(listener) == 0


async def test_namespaces_alone_give_a_pid_namespace_of_its_own_and_a_hostname() -> None:
    seen = await run_bot("""
        attempt("pid", lambda: (os.getpid(), os.getppid()))
        attempt("proc", lambda: sorted(p for p in os.listdir("/proc") if p.isdigit()))
        attempt("hostname", lambda: os.uname().nodename)
    """, only(namespaces=True))
    assert seen["pid"] == "OK (2, 1)"
    assert seen["proc"] == "OK ['1', '2']"  # bwrap's reaper and the bot: nothing of the host
    assert seen["hostname"] == "OK 'arena'" != f"OK {socket.gethostname()!r}"


# -- layer 7: seccomp -----------------------------------------------------------------------------

SYSCALLS = """
import socket
attempt("socket", lambda: socket.socket())
attempt("socketpair", lambda: socket.socketpair())
attempt("write open", lambda: os.open("/dev/null", os.O_WRONLY))
attempt("create", lambda: os.open("/arena-created", os.O_RDONLY | os.O_CREAT))
attempt("read open", lambda: os.close(os.open("/dev/null", os.O_RDONLY)))
"""


async def test_seccomp_alone_stops_sockets_and_opening_for_writing() -> None:
    seen = await run_bot(SYSCALLS, only(seccomp=True))
    for name in ("socket", "socketpair", "write open", "create"):
        assert seen[name] == "PermissionError errno=1", (name, seen)
    assert seen["read open"] == "OK None"  # reading stays allowed
    assert not host_has("/arena-created")


async def test_without_layers_the_socket_attack_works() -> None:
    seen = await run_bot(SYSCALLS, None)
    assert seen["socket"].startswith("OK <socket.socket")


KILLERS = """
import ctypes, signal
libc = ctypes.CDLL(None, use_errno=True)

def raw(fn, *args):  # a libc call: its result and errno
    return fn(*args), ctypes.get_errno()

attempt("fork", lambda: os.fork())
attempt("fork bomb", lambda: [os.fork() for _ in range(1000)])
attempt("kill parent", lambda: os.kill(os.getppid(), signal.SIGKILL))
attempt("kill 1", lambda: os.kill(1, signal.SIGKILL))
attempt("kill all", lambda: os.kill(-1, signal.SIGKILL))
attempt("kill group", lambda: os.killpg(0, signal.SIGTERM))
attempt("ptrace", lambda: raw(libc.ptrace, 16, 1, 0, 0))  # PTRACE_ATTACH
attempt("unshare", lambda: raw(libc.unshare, 0x10000000))  # CLONE_NEWUSER
attempt("mount", lambda: raw(libc.mount, b"none", b"/usr", b"tmpfs", 0, None))
attempt("setsid", lambda: os.setsid())
"""


def assert_killers_failed(seen: dict[str, str]) -> None:
    for name in ("fork", "fork bomb", "kill parent", "kill 1", "kill all", "kill group", "setsid"):
        assert seen[name] == "PermissionError errno=1", (name, seen)
    for name in ("ptrace", "unshare", "mount"):
        assert seen[name] == "OK (-1, 1)", (name, seen)  # -1 and EPERM


def test_seccomp_alone_stops_forks_and_signals_to_others_in_an_outer_box() -> None:
    assert_killers_failed(run_boxed(KILLERS, seccomp=True))


def test_all_layers_stop_forks_and_signals_in_an_outer_box() -> None:
    assert_killers_failed(run_boxed(KILLERS, namespaces=True, seccomp=True, filesystem=True))


async def test_a_bot_may_still_signal_itself(launcher: SeatLauncher) -> None:
    code = PRELUDE + "import signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    async with open_process_seat(launcher, code, Limits(restricted=False)) as seat:
        with anyio.fail_after(20), pytest.raises(AgentCrashed, match="killed by signal SIGSEGV"):
            await seat.start(SeatStart(seat=0, seed=1, configuration={}))


async def test_cpu_limit_is_reported_through_bubblewrap(launcher: SeatLauncher) -> None:
    async with open_process_seat(launcher, "while True:\n    pass\n", Limits(cpu_s=1)) as seat:
        with anyio.fail_after(20), pytest.raises(AgentCrashed, match=r"CPU time limit exceeded \(1 s\)"):
            await seat.start(SeatStart(seat=0, seed=1, configuration={}))


EXEC = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
attempt("seccomp again", lambda: (libc.prctl(22, 2, 0, 0, 0), ctypes.get_errno()))  # PR_SET_SECCOMP
attempt("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", "print('EXEC' + 'ED', flush=True)"]))
"""


@pytest.mark.parametrize("layers", [{"namespaces": True, "seccomp": True, "filesystem": True}, {"seccomp": True}],
                         ids=["all layers", "seccomp alone"])
async def test_seccomp_stops_exec_once_the_runtime_has_loaded(layers: dict[str, bool]) -> None:
    isolation = only(**layers)
    assert isolation.runtime_seccomp_program is not None
    seen = await run_bot(EXEC, isolation)  # layer 2 off: the bot imports os and ctypes
    assert seen["execv"] == "PermissionError errno=1"
    assert seen["seccomp again"] == "OK (-1, 1)"  # nor can it install a filter of its own


def test_no_runtime_filter_without_the_seccomp_layer() -> None:
    assert only(namespaces=True, filesystem=True).runtime_seccomp_program is None


async def test_without_the_runtimes_filter_exec_gets_through(launcher: SeatLauncher) -> None:
    """bwrap's filter must allow execve (it execs the interpreter): only the runtime's second filter stops it."""
    isolation = dataclasses.replace(default_isolation(PYTHON, RUNTIME_PATH), runtime_seccomp_program=None)
    with isolation_override(isolation):
        async with open_process_seat(launcher, PRELUDE + EXEC, Limits(restricted=False)) as seat:
            with anyio.fail_after(20), pytest.raises(AgentCrashed, match="exited with code 0"):
                await seat.start(SeatStart(seat=0, seed=1, configuration={}))
    assert "EXECED" in seat.log_text()  # the interpreter ran again, without the runtime


async def test_the_runtime_fails_closed_when_its_filter_cannot_be_installed(launcher: SeatLauncher) -> None:
    isolation = dataclasses.replace(default_isolation(PYTHON, RUNTIME_PATH), runtime_seccomp_program=b"\0" * 7)
    with isolation_override(isolation):
        async with open_process_seat(launcher, PRELUDE + "print('LOADED')\n", Limits(restricted=False)) as seat:
            with anyio.fail_after(20), pytest.raises(AgentCrashed, match="exited with code 3"):
                await seat.start(SeatStart(seat=0, seed=1, configuration={}))
    assert "could not install its seccomp filter" in seat.log_text() and "LOADED" not in seat.log_text()


# -- layer 8: the filesystem view -----------------------------------------------------------------

FILES = """
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("project", lambda: open({project!r}).read())
attempt("database", lambda: open({database!r}, "rb").read())
attempt("other bots", lambda: os.listdir({bots!r}))
attempt("root", lambda: os.listdir("/root"))
attempt("home", lambda: os.listdir("/home"))
attempt("write tmp", lambda: open("/tmp/arena-x", "w"))
attempt("write arena", lambda: open("/arena/x", "w"))
attempt("write usr", lambda: open("/usr/arena-x", "w"))
attempt("runtime", lambda: open("/arena/bot_runtime.py").read(20))
attempt("top", lambda: sorted(os.listdir("/")))
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "arena.db"
    path.write_bytes(b"SQLite format 3\0 secret")
    return path


def files_code(database: Path) -> str:
    return FILES.format(
        project=str(PROJECT / "pyproject.toml"), database=str(database), bots=str(PROJECT / "server" / "bots"))


async def test_without_layers_the_file_attacks_read_the_host(database: Path) -> None:
    reads = "\n".join(line for line in files_code(database).splitlines() if "write" not in line)
    seen = await run_bot(reads, None)
    assert seen["passwd"].startswith("OK 'root:")
    if others_may_read(PROJECT / "pyproject.toml"):
        assert seen["project"].startswith("OK '[build-system]")
    else:  # a checkout only root may enter: the host's own permissions stop the bot, no layer of ours
        assert seen["project"] == "PermissionError errno=13"


async def test_filesystem_alone_hides_the_host_and_refuses_writes(database: Path) -> None:
    seen = await run_bot(files_code(database), only(filesystem=True))
    for name in ("passwd", "project", "database", "other bots", "root", "home", "write tmp"):
        assert seen[name] == f"FileNotFoundError errno={ENOENT}", (name, seen)
    for name in ("write arena", "write usr"):
        assert seen[name] == f"OSError errno={EROFS}", (name, seen)  # read-only file system
    assert seen["runtime"].startswith("OK '\"\"\"The bot runtime")
    assert seen["top"] == "OK ['arena', 'bin', 'dev', 'lib', 'lib64', 'sbin', 'usr']"
    assert not host_has("/tmp/arena-x")


async def test_all_layers_together(database: Path, listener: socket.socket) -> None:
    code = files_code(database) + CONNECT.format(port=listener.getsockname()[1]) + """
attempt("proc", lambda: sorted(p for p in os.listdir("/proc") if p.isdigit()))
attempt("sysctl", lambda: os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY))
attempt("ids", lambda: (os.getuid(), os.getpid(), os.uname().nodename))
"""
    seen = await run_bot(code, default_isolation(PYTHON, RUNTIME_PATH))
    for name in ("passwd", "project", "database", "other bots", "root", "home"):
        assert seen[name] == f"FileNotFoundError errno={ENOENT}", (name, seen)
    for name in ("write tmp", "write arena", "write usr", "connect", "sysctl"):
        assert seen[name].startswith("PermissionError errno=1"), (name, seen)  # seccomp answers first
    assert seen["proc"] == "OK ['1', '2']"  # bwrap's reaper and the bot
    assert seen["ids"] == "OK (65534, 2, 'arena')"
    assert connections(listener) == 0


# -- stopping a sandboxed seat ----------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def test_killing_a_seat_leaves_nothing_behind() -> None:
    # A fresh seat: bubblewrap, its reaper, the bot (a forked seat: tests/sandbox/test_forkserver.py).
    async with open_process_seat(SeatLauncher("fresh"), PRELUDE, Limits(grace_s=0.2, restricted=False)) as seat:
        with anyio.fail_after(20):
            await seat.start(SeatStart(seat=0, seed=1, configuration={}))
        bwrap = seat.process.pid
        inner = sandbox_process_groups(bwrap)
        assert len(inner) == 1 and alive(inner[0])  # bwrap's reaper, PID 1 of the sandbox
        bot = sandbox_process_groups(inner[0])  # the reaper's one child: the bot
        assert len(bot) == 1 and alive(bot[0])
        seat.stop("test stops it")
        with anyio.fail_after(5):
            await seat.process.proc.wait()
    assert seat.process.proc.returncode == 128 + 9  # bubblewrap reaped its child and passed on its SIGKILL
    assert seat.process.exit_status == -9
    assert not alive(bwrap) and not alive(inner[0]) and not alive(bot[0])
    assert "[arena] test stops it" in seat.log_text()


@pytest.mark.skipif(os.getuid() != 0, reason="only a root server starts bubblewrap as another user")
async def test_a_root_server_starts_bubblewrap_as_nobody_without_groups() -> None:
    """Every id of the fresh seat's bwrap process is 65534 and it keeps no supplementary group,
    whether ``setpriv`` or ``subprocess`` switched them (``as_user``)."""
    assert as_user(["bwrap"], None) == (["bwrap"], {})
    argv, switch = as_user(["bwrap", "--x"], 65534)
    assert argv[-2:] == ["bwrap", "--x"] and (switch == {} or switch["user"] == 65534)
    config = resolve_config(get_game("tictactoe"), None)
    bot = "def agent(obs, config):\n    return 0\n"
    async with open_process_seat(SeatLauncher("fresh"), bot, Limits()) as seat:
        await seat.start(SeatStart(seat=0, seed=1, configuration=config))
        status = await anyio.Path(f"/proc/{seat.process.pid}/status").read_text()
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()
           if line.startswith(("Uid:", "Gid:", "Groups:"))}
    assert ids == {"Uid": ["65534"] * 4, "Gid": ["65534"] * 4, "Groups": []}


def test_a_runtime_nobody_may_read_is_copied_where_it_may() -> None:
    """Without the filesystem view bwrap runs as 65534 from the host's tree: a runtime under a
    directory only root may enter is run from a read-only copy instead; a readable one is not copied."""
    with tempfile.TemporaryDirectory() as top:  # pytest's tmp_path sits under a directory only its user may enter
        os.chmod(top, 0o755)
        _check_runtime_copies(Path(top))


def _check_runtime_copies(top: Path) -> None:
    for mode in (0o700, 0o755):
        home = top / f"checkout-{mode:o}"
        home.mkdir()
        for name in seat_files():
            (home / name).write_text(f"# {name}\n")
            (home / name).chmod(0o644)
        home.chmod(mode)
        runtime = readable_runtime(home / "bot_runtime.py")
        if mode == 0o755:
            assert runtime == home / "bot_runtime.py"
            continue
        assert runtime.parent != home and others_may_read(runtime)
        for name in seat_files():
            assert (runtime.parent / name).read_text() == f"# {name}\n"
            assert (runtime.parent / name).stat().st_mode & 0o777 == 0o444
