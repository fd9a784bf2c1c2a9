"""The fork server (``server/sandbox/forkserver.py``, ``seat/zygote.py``): seats forked from one zygote.

Real zygotes under bubblewrap, real seats. The test session's fork server (``tests/conftest.py``,
started by the first test that opens seats) serves most tests; those that break a fork server on
purpose start one of their own. The
isolation between forked seats (one seat against another) is proven in
``tests/security/test_seat_isolation.py``; the attack suite runs against both modes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from protocol.errors import AgentCrashed, ConfigError, LayerUnavailable
from server.config import load_settings
from server.matches.seats import ProcessSeat, SeatStart, open_process_seat
from server.sandbox import Limits, SeatLauncher, forkserver
from server.sandbox._forkseat import ForkSeatProcess, PendingSeat
from server.sandbox._seccomp import SeccompTemplate, seat_seccomp_template, seccomp_program
from server.sandbox.forkserver import ForkServer
from server.sandbox.fresh import FreshSeatProcess
from server.sandbox.isolation import SEAT_NICE, default_isolation, isolation_override
from server.sandbox.process import bot_python
from server.sandbox.view import RUNTIME_PATH
from tests.sandbox.test_isolation import KILLERS, PRELUDE, assert_killers_failed, outcomes, run_boxed
from tests.server.conftest import (
    RPS_ROCK,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

START = SeatStart(seat=0, seed=1, configuration={})
BOT = "def agent(observation, configuration):\n    return 0\n"  # passes layer 2, unlike PRELUDE


def alive(pid: int) -> bool:
    """Running or a zombie not yet reaped."""
    return Path(f"/proc/{pid}").exists()


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def status_field(pid: int, name: str) -> str:
    match = re.search(rf"^{name}:\s+(.*)$", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match is not None, name
    return match.group(1)


async def run_forked(launcher: SeatLauncher, code: str, limits: Limits | None = None) -> dict[str, str]:
    """A seat forked by ``launcher`` (in fork mode) for ``PRELUDE + code`` (layer 2 off: the bot
    imports ``os`` to reach the layers)."""
    code = PRELUDE + textwrap.dedent(code)
    async with open_process_seat(launcher, code, limits or Limits(restricted=False)) as seat:
        assert isinstance(seat.process, ForkSeatProcess)
        with anyio.fail_after(20):
            await seat.start(START)
            assert (await seat.act(1, {})).action == 0
    return outcomes(seat.log_text())


@asynccontextmanager
async def private_fork_server(pool_size: int = 0) -> AsyncIterator[ForkServer]:
    """A fork server of the test's own, stopped at the end."""
    server = await anyio.to_thread.run_sync(lambda: ForkServer.launch(pool_size=pool_size))
    try:
        yield server
    finally:
        await anyio.to_thread.run_sync(server.close)


# -- the mode ---------------------------------------------------------------------------------------


async def test_seats_are_forked_by_default_here(launcher: SeatLauncher) -> None:
    async with open_process_seat(launcher, BOT, Limits()) as seat:
        assert isinstance(seat.process, ForkSeatProcess) and seat.process.mode == "fork"
        await seat.start(START)
    status = launcher.status()
    assert (status.configured, status.active, status.pool_size) == ("auto", "fork", forkserver.DEFAULT_POOL_SIZE)
    assert "Landlock ABI" in status.reason


async def test_fresh_mode_and_test_overrides_start_fresh_processes(
    launcher: SeatLauncher, fork_launcher: SeatLauncher
) -> None:
    async with open_process_seat(SeatLauncher("fresh"), BOT, Limits()) as seat:
        assert isinstance(seat.process, FreshSeatProcess)
    with isolation_override(default_isolation(bot_python(), RUNTIME_PATH)):  # a test's layers: always fresh
        async with open_process_seat(launcher, BOT, Limits()) as seat:
            assert isinstance(seat.process, FreshSeatProcess)
        with pytest.raises(LayerUnavailable, match="default interpreter and isolation"):
            async with open_process_seat(fork_launcher, BOT, Limits()):
                pass


def nice_of(pid: int) -> int:
    """A process's nice value (field 19 of /proc/PID/stat, after the command's parenthesis)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def test_seats_run_below_the_servers_priority_in_both_modes(launcher: SeatLauncher) -> None:
    below_ours = min(19, nice_of(os.getpid()) + SEAT_NICE)  # nice adds to what it starts at
    for seat_launcher in (launcher, SeatLauncher("fresh")):
        async with open_process_seat(seat_launcher, BOT, Limits()) as seat:
            await seat.start(START)
            assert nice_of(seat.process.pid) == below_ours, type(seat.process)


def test_settings_take_a_seat_mode() -> None:
    assert load_settings(None).seat_mode == "auto"
    assert load_settings(None, seat_mode="fresh", seat_pool_size=2).seat_pool_size == 2
    with pytest.raises(ConfigError, match="seat_mode"):
        load_settings(None, seat_mode="zygote")


def test_the_per_seat_filter_is_the_one_libseccomp_builds_for_that_pid() -> None:
    template = seat_seccomp_template()
    assert template.offsets  # the pid is compared somewhere: kill, tkill, tgkill
    for pid in (3, 4242, 4194304):
        assert template.for_pid(pid) == seccomp_program(pid, after_load=True)


# -- a forked seat's own layers -----------------------------------------------------------------------

SELF = """
import resource, socket
def status(name):
    return [line.split(":", 1)[1].strip() for line in open("/proc/self/status") if line.startswith(name + ":")][0]
attempt("ids", lambda: (os.getuid(), os.getgid(), os.uname().nodename))
attempt("session", lambda: open("/proc/self/stat").read().rsplit(")", 1)[1].split()[2:4] == [str(os.getpid())] * 2)
attempt("no new privs", lambda: status("NoNewPrivs"))
attempt("filters", lambda: status("Seccomp_filters"))
attempt("limits", lambda: [resource.getrlimit(r) for r in (resource.RLIMIT_CPU, resource.RLIMIT_NPROC,
                                                            resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)])
attempt("fds", lambda: sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
attempt("socket", lambda: socket.socket())
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("write", lambda: open("/arena/x", "w"))
attempt("runtime", lambda: open("/arena/bot_runtime.py").read(20))
attempt("own proc", lambda: status("Name"))
attempt("proc", lambda: os.listdir("/proc"))
attempt("pid 1", lambda: open("/proc/1/status").read())
attempt("parent", lambda: open(f"/proc/{os.getppid()}/cmdline").read())
"""


async def test_a_forked_seat_applies_every_layer_to_itself(fork_launcher: SeatLauncher) -> None:
    seen = await run_forked(fork_launcher, SELF, Limits(restricted=False, cpu_s=7, open_files=32))
    assert seen["ids"] == "OK (65534, 65534, 'arena')"
    assert seen["session"] == "OK True"
    assert seen["no new privs"] == "OK '1'"
    assert seen["filters"] == "OK '2'"  # the zygote's (from bubblewrap) and the seat's own
    assert seen["limits"] == "OK [(7, 8), (0, 0), (0, 0), (32, 32)]"
    # As in a fresh seat: stdio, the protocol's two, /dev/null as sys.stdin, and listdir's own: nothing
    # of the zygote's (its socket, other seats' sockets and pidfds).
    assert seen["fds"] == "OK [0, 1, 2, 3, 4, 5, 6]"
    assert seen["socket"] == "PermissionError errno=1"
    assert seen["passwd"] == "FileNotFoundError errno=2"
    assert seen["write"] == "PermissionError errno=1"
    assert seen["runtime"].startswith("OK '\"\"\"The bot runtime")
    assert seen["own proc"].startswith("OK 'python3")
    for name in ("proc", "pid 1", "parent"):  # Landlock: no /proc entry but its own
        assert seen[name] == "PermissionError errno=13", (name, seen)


async def test_a_forked_seat_can_neither_exec_nor_fork_nor_signal_others(fork_launcher: SeatLauncher) -> None:
    seen = await run_forked(fork_launcher, """
        import ctypes, signal, sys
        libc = ctypes.CDLL(None, use_errno=True)
        attempt("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]))
        attempt("fork", lambda: os.fork())
        attempt("kill zygote", lambda: os.kill(os.getppid(), signal.SIGKILL))
        attempt("kill reaper", lambda: os.kill(1, signal.SIGKILL))
        attempt("seccomp again", lambda: (libc.prctl(22, 2, 0, 0, 0), ctypes.get_errno()))
        attempt("dumpable", lambda: (libc.prctl(3, 0, 0, 0, 0), ctypes.get_errno()))  # PR_GET_DUMPABLE
    """)
    for name in ("execv", "fork", "kill zygote", "kill reaper"):
        assert seen[name] == "PermissionError errno=1", (name, seen)
    assert seen["seccomp again"] == seen["dumpable"] == "OK (-1, 1)"  # no prctl at all


def test_forks_and_signals_fail_in_a_forked_seat_in_an_outer_box() -> None:
    assert_killers_failed(run_boxed(KILLERS, namespaces=True, seccomp=True, filesystem=True, fork=True))


# -- its process, as the server sees it ---------------------------------------------------------------


async def test_the_seat_is_a_child_of_the_zygote_in_the_servers_pid_namespace(fork_launcher: SeatLauncher) -> None:
    async with open_process_seat(fork_launcher, BOT, Limits()) as seat:
        await seat.start(START)
        pid = seat.process.pid
        inner = status_field(pid, "NSpid").split()
        assert len(inner) == 2 and inner[0] == str(pid)  # ours, then the sandbox's own number
        zygote = int(status_field(pid, "PPid"))
        assert "/arena/zygote.py" in cmdline(zygote)
        assert status_field(pid, "Uid").split()[0] == "65534"
        seat.stop("test stops it")
        with anyio.fail_after(5):
            await seat.process.wait()
    assert seat.process.exit_status == -signal.SIGKILL
    assert not alive(pid)  # reaped by the zygote, not a zombie
    assert "[arena] test stops it" in seat.log_text()


@pytest.mark.parametrize(("code", "limits", "reason"), [
    ("while True:\n    pass\n", Limits(cpu_s=1), r"CPU time limit exceeded \(1 s\)"),
    (PRELUDE + "import signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", Limits(restricted=False),
     "killed by signal SIGSEGV"),
    (PRELUDE + "os._exit(7)\n", Limits(restricted=False), "exited with code 7"),
], ids=["cpu-limit", "signals-itself", "exit-code"])
async def test_exit_statuses_are_reported_as_for_a_fresh_process(
    fork_launcher: SeatLauncher, code: str, limits: Limits, reason: str
) -> None:
    async with open_process_seat(fork_launcher, code, limits) as seat:
        with anyio.fail_after(20), pytest.raises(AgentCrashed, match=reason):
            await seat.start(START)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def zygote_of(server: ForkServer) -> int:
    """bubblewrap, its reaper (PID 1 of the sandbox), the zygote."""
    assert server.pid is not None
    (reaper,) = children(server.pid)
    (zygote,) = children(reaper)
    return zygote


async def settles(zygote: int, seats: int) -> None:
    await until(lambda: len(children(zygote)) == seats)


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (what /proc says has no event to wait on), for at most 10 s."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_the_pool_is_forked_ahead_and_refills_after_a_seat_is_taken() -> None:
    async with private_fork_server(pool_size=3) as server:
        zygote = zygote_of(server)
        await settles(zygote, 3)
        pending = await server.checkout(Limits())
        await settles(zygote, 4)  # the seat taken, and its replacement
        pending.discard()
        await settles(zygote, 3)
        other = await server.checkout(Limits(cpu_s=3))  # other limits than the pool's: forked on demand
        await settles(zygote, 4)
        other.discard()
        await settles(zygote, 3)


# -- failures -----------------------------------------------------------------------------------------


async def test_a_seat_fails_closed_when_its_filter_cannot_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forkserver, "seat_seccomp_template", lambda: SeccompTemplate(b"\0" * 7, ()))
    async with private_fork_server() as server:
        pending = await server.checkout(Limits())
        async with server.open_seat(pending, Limits(), "broken") as process:
            seat = ProcessSeat(process, "print('LOADED')\n" + BOT, Limits())
            with anyio.fail_after(20), pytest.raises(AgentCrashed, match="exited with code 3"):
                await seat.start(START)
    assert "could not apply its sandbox layers" in process.log_text() and "LOADED" not in process.log_text()


async def test_a_seat_refuses_limits_other_than_those_it_applied() -> None:
    async with private_fork_server() as server:
        pending = await server.checkout(Limits(cpu_s=5))
        async with server.open_seat(pending, Limits(cpu_s=5), "mismatch") as process:
            seat = ProcessSeat(process, BOT, Limits(cpu_s=50))  # init asks for more CPU than it has
            with anyio.fail_after(20), pytest.raises(AgentCrashed, match="exited with code 3"):
                await seat.start(START)
    assert "prepared with limits" in process.log_text()


async def test_seats_die_with_the_zygote_and_the_server_says_so() -> None:
    async with private_fork_server() as server:
        pending = await server.checkout(Limits())
        async with server.open_seat(pending, Limits(), "orphan") as process:
            seat = ProcessSeat(process, BOT, Limits())
            await seat.start(START)
            zygote = int(status_field(process.pid, "PPid"))
            os.kill(zygote, signal.SIGKILL)
            with anyio.fail_after(10):
                await process.wait()
            assert process.exit_status == -signal.SIGKILL
        assert "[arena] the fork server stopped" in process.log_text()
        await until(lambda: not alive(process.pid))  # killed with the zygote, reaped as the sandbox ends
        await until(lambda: not server.is_alive)  # bubblewrap exits once its command did


async def test_auto_mode_falls_back_to_fresh_when_the_fork_server_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    async with private_fork_server() as server:
        server.close()

        async def dead() -> ForkServer:
            return server

        auto, fork = SeatLauncher("auto", server), SeatLauncher("fork", server)
        for launcher in (auto, fork):  # as if it died after the launcher's check that it runs
            monkeypatch.setattr(launcher, "fork_server", dead)
        async with open_process_seat(auto, BOT, Limits()) as seat:
            assert isinstance(seat.process, FreshSeatProcess)
            await seat.start(START)
        with pytest.raises(LayerUnavailable, match="not running"):
            async with open_process_seat(fork, BOT, Limits()):
                pass


# -- reported -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "active"), [("auto", "fork"), ("fresh", "fresh")])
async def test_health_says_how_seats_start_and_matches_play(tmp_path: Path, mode: str, active: str) -> None:
    async with api_client(quiet_settings(tmp_path, seat_mode=mode, seat_pool_size=2)) as client:
        seats = (await client.get("/api/health")).json()["sandbox"]["seat_mode"]
        user = await create_user(client, "ann")
        agent = (await submit_agent(client, user, "rock", "rps", RPS_ROCK))["id"]
        match = await start_match(client, user, "rps", [agent, agent], {"episodeSteps": 3})
        match = await wait_finished(client, match["id"])
    assert (seats["configured"], seats["active"], seats["pool_size"]) == (mode, active, 2 if active == "fork" else 0)
    assert seats["reason"]
    assert [s["status"] for s in match["seats"]] == ["DONE", "DONE"], match


def test_doctor_says_how_seats_start() -> None:
    done = subprocess.run([sys.executable, "-m", "client", "doctor"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "seat start-up: fork (seat_mode auto): seats forked from a zygote" in done.stdout


async def test_a_seat_cancelled_while_attaching_is_discarded_whole() -> None:
    """Cancelled after one of its pipes was wrapped in a stream, a pending seat is still given up
    whole: the stream closes that pipe, ``discard`` the rest and the socket, nothing twice (a
    double close once failed before the socket, which leaked)."""
    pipes = [os.pipe() for _ in range(3)]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pending = PendingSeat(pipes[0][1], pipes[1][0], pipes[2][0], ours)
    held = [pipes[0][1], pipes[1][0], pipes[2][0]]
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await ForkSeatProcess.attach(pending, Limits(), "seat")
        finally:
            pending.discard()
    assert scope.cancelled_caught
    assert ours.fileno() == -1
    for fd in held:
        with pytest.raises(OSError):
            os.fstat(fd)
    for read_end, write_end in pipes:
        for fd in (read_end, write_end):
            if fd not in held:
                os.close(fd)
    theirs.close()
