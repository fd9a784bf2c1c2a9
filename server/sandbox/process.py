"""One seat's process as the server sees it: its pipes, its bounded log, how it ends and why.

A seat's process runs the bot runtime (``seat/bot_runtime.py``) under the bot interpreter with a
clean environment (:data:`CLEAN_ENV`), in a session (and process group) of its own, with only
its three pipes open. :class:`SeatProcess` is what both kinds have in common: a fresh process
per seat (``fresh.py``) or one forked by the fork server (``forkserver.py``, ``_forkseat.py``);
``launch.py`` chooses between them. Its stderr is the seat's log: a task drains it all the
time, keeps the first ``log_bytes`` for the owner and cuts the seat off once it has written
``output_bytes``, so a bot that floods its output never makes the server buffer it. Closing
always ends in SIGKILL and a reaped child; :func:`describe_exit` says in words how it ended.
Both kinds run the same way, :func:`run_seat`: that task beside the block that uses the seat,
then the seat closed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from protocol.errors import AgentCrashed, AgentFault, AgentInvalid
from protocol.status import FaultLimit

from .limits import Limits

__all__ = ["CLEAN_ENV", "SeatProcess", "bot_python", "describe_exit", "run_seat"]

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

    Get one from a seat launcher (``launch.SeatLauncher.open_seat``). This base holds everything
    but the process itself: ``fresh.FreshSeatProcess`` is a fresh process per seat,
    ``_forkseat.ForkSeatProcess`` one forked by the fork server. Both take ``init`` on stdin and
    answer on stdout, as the match runner's ``ProcessSeat`` expects.
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

    def pause(self) -> None:
        """Stop the runtime where it is (SIGSTOP: it cannot catch or ignore it), so that it uses no CPU."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused runtime go on (SIGCONT)."""
        self._signal(signal.SIGCONT)

    async def _stop(self) -> None:
        """After SIGTERM and the grace period: SIGKILL whatever is left and wait until it is reaped."""
        raise NotImplementedError

    def log_text(self) -> str:
        """What the bot printed (its first ``log_bytes``), with a note when it was cut. Bytes that
        are not UTF-8, and NUL (which PostgreSQL's text cannot hold), read as U+FFFD."""
        text = self._log.decode("utf-8", "replace").replace("\0", "\ufffd")
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
        return AgentCrashed(describe_exit(self.exit_status, self.limits), limit=_exit_limit(self.exit_status))

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
                self.fault = AgentCrashed(f"output limit exceeded: more than {self.limits.output_bytes} bytes printed",
                                          limit=FaultLimit.OUTPUT)
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


SeatT = TypeVar("SeatT", bound=SeatProcess)


@asynccontextmanager
async def run_seat(seat: SeatT, *watchers: Callable[[], Coroutine[object, object, None]]) -> AsyncIterator[SeatT]:
    """Run a started seat for the block: its log drained, and ``watchers`` run, in a task group of
    their own; at the end, even when cancelled, close it (killed and reaped)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(seat.drain_log)
        for watch in watchers:
            tg.start_soon(watch)
        try:
            yield seat
        finally:
            with anyio.CancelScope(shield=True):
                await seat.close()


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


def _exit_limit(returncode: int | None) -> FaultLimit:
    """What ended a seat's process that stopped talking: RLIMIT_CPU sends SIGXCPU, then SIGKILL
    at its hard limit (a seat the arena stops for a deadline is a TIMEOUT, not asked here)."""
    if returncode is not None and -returncode in (signal.SIGXCPU, signal.SIGKILL):
        return FaultLimit.CPU
    return FaultLimit.CRASH
