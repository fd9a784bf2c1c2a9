"""One seat's process: start it, talk to it over pipes, bound its output, kill and reap it.

The child runs ``bot_runtime.py`` under the bot interpreter with a clean environment, in a
session (and process group) of its own, with only its three pipes open. Its stderr is the
seat's log: a task drains it all the time, keeps the first ``log_bytes`` for the owner and
cuts the seat off once it has written ``output_bytes``, so a bot that floods its output
never makes the server buffer it. Closing always ends in SIGKILL of the process group and a
reaped child.

With isolation (layers 6-8, ``isolation.py``) the child is bubblewrap, which runs the runtime
in its sandbox: signals then go to the sandbox's own process group and bubblewrap, left alive to
reap it, reports the runtime's status (``128 + signal`` for a signal, translated back here).
With the seccomp layer, the runtime's command line also carries the filter it installs on
itself once loaded (``--seccomp``, base64 BPF): from then on not even ``execve`` is allowed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from protocol.errors import AgentCrashed, AgentFault, AgentInvalid, LayerUnavailable, SandboxError

from .isolation import (
    Isolation,
    as_user,
    default_isolation,
    isolation_overridden,
    numpy_view,
    sandbox_process_groups,
)
from .limits import Limits

__all__ = [
    "DEFAULT_ISOLATION", "RUNTIME_PATH", "FreshSeatProcess", "SeatProcess", "bot_python", "describe_exit",
    "open_seat_process",
]  # fmt: skip

log = logging.getLogger(__name__)

RUNTIME_PATH = Path(__file__).with_name("bot_runtime.py")
SECCOMP_OPTION = "--seccomp"  # the runtime's one option: the filter to install on itself once loaded
# The BLAS under numpy (OpenBLAS, or an OpenMP one) would start a thread per core at import: the
# seat's seccomp filter and RLIMIT_NPROC refuse threads, and a fork server's zygote must have none.
CLEAN_ENV = {
    "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
}  # fmt: skip
_CHUNK = 64 << 10


def bot_python() -> str:
    """The interpreter for bots: the system's, in a world-readable prefix, else the server's own."""
    for candidate in ("/usr/bin/python3", shutil.which("python3") or "", sys.executable):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return sys.executable


class SeatProcess:
    """A running bot runtime: its pipes, its bounded log, and how it is stopped and reaped.

    Use :func:`open_seat_process` to get one. This base holds everything but the process itself:
    :class:`FreshSeatProcess` is a fresh process per seat, ``forkserver.ForkSeatProcess`` one
    forked by the fork server. Both take ``init`` on stdin and answer on stdout, as the match
    runner's ``ProcessSeat`` expects.
    """

    mode = "fresh"  # how it was started: "fresh" or "fork"

    def __init__(
        self, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader,
        limits: Limits, label: str, *, is_sandboxed: bool,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.limits = limits
        self.label = label
        self.is_sandboxed = is_sandboxed  # layers 6-8 wrap it
        self.fault: AgentFault | None = None
        self._log = bytearray()
        self._log_truncated = False
        self._output_bytes = 0
        self._closing = False

    @property
    def pid(self) -> int:
        """The process to watch (in the server's PID namespace)."""
        raise NotImplementedError

    @property
    def exit_status(self) -> int | None:
        """The runtime's exit status as ``returncode`` gives it (``-signal``), None while it runs."""
        raise NotImplementedError

    async def wait(self) -> None:
        """Until the runtime has exited and been reaped."""
        raise NotImplementedError

    def _signal(self, sig: int) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        """After SIGTERM and the grace period: SIGKILL whatever is left and wait until it is reaped."""
        raise NotImplementedError

    def log_text(self) -> str:
        """What the bot printed (its first ``log_bytes``), with a note when it was cut."""
        text = self._log.decode("utf-8", "replace")
        if self._log_truncated:
            text += f"\n[log truncated after {self.limits.log_bytes} bytes]\n"
        return text

    def note(self, text: str) -> None:
        """Append a line of the arena's own to the seat's log (e.g. why it was stopped)."""
        self._log += f"[arena] {text}\n".encode()

    async def send_line(self, data: bytes) -> None:
        """Write one line to the child's stdin.

        Raises:
            AgentCrashed: the child is gone.
        """
        stdin = self.stdin
        try:
            stdin.write(data + b"\n")
            if stdin.transport.get_write_buffer_size() > _CHUNK:
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise await self._gone() from exc

    async def receive_line(self) -> bytes:
        """Read one line from the child's protocol pipe.

        Raises:
            AgentCrashed: the child exited, was killed, or overran its output.
            AgentInvalid: the line is longer than ``reply_bytes``.
        """
        try:
            line = await self.stdout.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise await self._gone() from None
        except asyncio.LimitOverrunError:
            raise AgentInvalid(f"reply longer than {self.limits.reply_bytes} bytes") from None
        return line

    async def _gone(self) -> AgentFault:
        """The fault to report once the child stopped talking: the recorded one, or its exit."""
        with anyio.move_on_after(self.limits.grace_s):
            await self.wait()
        if self.fault is not None:
            return self.fault
        return AgentCrashed(describe_exit(self.exit_status, self.limits))

    async def drain_log(self) -> None:
        """Read the child's output until EOF, keeping the head and enforcing ``output_bytes``."""
        while chunk := await self.stderr.read(_CHUNK):
            self._output_bytes += len(chunk)
            room = self.limits.log_bytes - len(self._log)
            if room > 0:
                self._log += chunk[:room]
            if len(chunk) > room:
                self._log_truncated = True
            if self._output_bytes > self.limits.output_bytes and self.fault is None:
                self.fault = AgentCrashed(f"output limit exceeded: more than {self.limits.output_bytes} bytes printed")
                self.kill()

    def kill(self) -> None:
        """SIGKILL the runtime (its whole process group, or the sandbox's under bubblewrap) now."""
        self._signal(signal.SIGKILL)

    async def close(self) -> None:
        """End the child: EOF on stdin, then SIGTERM, a grace period, SIGKILL; always reaped."""
        if self._closing:
            return
        self._closing = True
        if self.exit_status is None:
            self.stdin.close()  # the runtime exits at EOF between moves
            with anyio.move_on_after(min(0.05, self.limits.grace_s)):
                await self.wait()
        if self.exit_status is None:
            self._signal(signal.SIGTERM)
            with anyio.move_on_after(self.limits.grace_s):
                await self.wait()
        await self._stop()
        await self._discard_replies()

    async def _discard_replies(self) -> None:
        """Read the protocol pipe to EOF so its transport closes.

        A reply over ``reply_bytes`` stops the stream reading (it pauses the transport with
        the line unread); the transport then never sees EOF and is never closed. Its writers
        are dead by now, so what is left is at most a pipe's buffer.
        """
        with anyio.move_on_after(self.limits.grace_s):
            while await self.stdout.read(_CHUNK):
                pass


class FreshSeatProcess(SeatProcess):
    """A fresh ``python3 -I -S bot_runtime.py`` (under bubblewrap with isolation) for one seat."""

    def __init__(
        self, proc: asyncio.subprocess.Process, limits: Limits, label: str, *, is_sandboxed: bool = False
    ) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        super().__init__(proc.stdin, proc.stdout, proc.stderr, limits, label, is_sandboxed=is_sandboxed)
        self.proc = proc  # bubblewrap when sandboxed: the runtime runs below it

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exit_status(self) -> int | None:
        code = self.proc.returncode
        if self.is_sandboxed and code is not None and 128 < code < 128 + signal.NSIG:
            return 128 - code  # bubblewrap exits with 128 + the signal that ended its child
        return code

    async def wait(self) -> None:
        await self.proc.wait()

    def _signal(self, sig: int) -> None:
        """Signal the runtime's process group: the sandbox's when bubblewrap started one, else the child's."""
        groups = sandbox_process_groups(self.proc.pid) if self.is_sandboxed and self.proc.returncode is None else []
        for pgid in groups:  # bubblewrap's children are alive until it reaps them: their pids stay theirs
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if not groups:
            _signal_group(self.proc, sig)

    async def _stop(self) -> None:
        proc = self.proc
        if proc.returncode is None and self.is_sandboxed:
            self._signal(signal.SIGKILL)  # the sandbox first, so that bubblewrap reaps it and exits
            with anyio.move_on_after(self.limits.grace_s):
                await proc.wait()
        # SIGKILL the group even after the leader exited: nothing it started may outlive it.
        _signal_group(proc, signal.SIGKILL)
        await proc.wait()


def describe_exit(returncode: int | None, limits: Limits) -> str:
    """Say in words why a seat's process ended."""
    if returncode is None:
        return "stopped answering"
    if returncode >= 0:
        return f"exited with code {returncode}"
    sig = -returncode
    if sig == signal.SIGXCPU:
        return f"CPU time limit exceeded ({limits.cpu_s} s)"
    if sig == signal.SIGKILL:
        return "killed by SIGKILL (CPU or memory limit, or stopped by the arena)"
    return f"killed by signal {signal.Signals(sig).name}"


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Default:
    """The ``isolation`` argument's default: every layer the machine supports."""


DEFAULT_ISOLATION = _Default()


@asynccontextmanager
async def open_seat_process(
    limits: Limits, *, python: str | None = None, label: str = "seat",
    isolation: Isolation | None | _Default = DEFAULT_ISOLATION, mode: str | None = None,
) -> AsyncIterator[SeatProcess]:
    """Start a bot runtime in its own session; on exit kill it and reap it.

    ``mode``: ``"fork"`` (a seat forked by the fork server, ``forkserver.py``), ``"fresh"`` (a
    new process) or ``"auto"`` (the fork server when it can run here, else fresh); None: this
    process's setting (``forkserver.serve_seats``; "auto" by default). ``isolation`` wraps a
    fresh seat in the namespaces, seccomp filter and filesystem view (by default all that this
    machine supports, probed once per process); None runs it without them. A seat with an
    explicit ``python`` or ``isolation``, or under ``isolation_override``, starts fresh in "auto".

    Raises:
        LayerUnavailable: ``mode`` is "fork" and the fork server cannot run this seat.
    """
    from . import forkserver  # it builds on this module

    chosen = forkserver.resolve_mode(mode)
    if python is not None or not isinstance(isolation, _Default) or isolation_overridden():
        if chosen is forkserver.SeatMode.FORK and forkserver.is_explicit(mode):
            raise LayerUnavailable("the fork server runs seats with the default interpreter and isolation only")
    elif chosen is not forkserver.SeatMode.FRESH:
        if (server := await forkserver.acquire_fork_server(chosen)) is not None:
            try:
                pending = await server.checkout(limits)
            except SandboxError as exc:
                if chosen is forkserver.SeatMode.FORK:
                    raise LayerUnavailable(str(exc)) from exc
                log.warning("%s: starting a fresh process instead (%s)", label, exc)
            else:
                async with server.open_seat(pending, limits, label) as seat:
                    yield seat
                return
    async with _open_fresh(limits, python=python, label=label, isolation=isolation) as fresh:
        yield fresh


@asynccontextmanager
async def _open_fresh(
    limits: Limits, *, python: str | None, label: str, isolation: Isolation | None | _Default
) -> AsyncIterator[SeatProcess]:
    python = python or bot_python()
    if isinstance(isolation, _Default):
        isolation = default_isolation(python, RUNTIME_PATH)
    argv = [python, "-I", "-S", str(RUNTIME_PATH)]
    pass_fds: list[int] = []
    user = None  # the uid to start the command as (bwrap's, when the server is root)
    if isolation is not None:
        if isolation.runtime_seccomp_program is not None:
            argv += [SECCOMP_OPTION, base64.b64encode(isolation.runtime_seccomp_program).decode("ascii")]
        if limits.allow_numpy and isolation.filesystem:
            await anyio.to_thread.run_sync(numpy_view, python)  # found once per process, by running python
        argv, pass_fds = isolation.wrap_command(
            argv, runtime_path=RUNTIME_PATH, python=python, env=CLEAN_ENV, numpy=limits.allow_numpy)
        user = isolation.user
    argv, switch_user = as_user(argv, user)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=CLEAN_ENV,
            cwd="/",
            start_new_session=True,
            limit=limits.reply_bytes,
            pass_fds=pass_fds,
            **switch_user,  # root starts bubblewrap as 65534: see isolation.py
        )
    finally:
        for fd in pass_fds:
            os.close(fd)
    seat = FreshSeatProcess(proc, limits, label, is_sandboxed=isolation is not None)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(seat.drain_log)
            try:
                yield seat
            finally:
                with anyio.CancelScope(shield=True):
                    await seat.close()
    finally:
        if proc.returncode is None:  # only when the task group itself failed
            seat.kill()
            with anyio.CancelScope(shield=True):
                if seat.is_sandboxed:  # let bubblewrap reap its sandbox first
                    with anyio.move_on_after(limits.grace_s):
                        await proc.wait()
                _signal_group(proc, signal.SIGKILL)
                await proc.wait()
