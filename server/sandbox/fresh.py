"""Fresh seats: a new ``python3 -I -S bot_runtime.py`` per seat, under bubblewrap with isolation.

The child runs the runtime under the bot interpreter with a clean environment, in a session
(and process group) of its own, with only its three pipes open (``process.py``). With isolation
(layers 6-8, ``isolation.py``) the child is bubblewrap, which runs the runtime in its sandbox:
signals then go to the sandbox's own process group and bubblewrap, left alive to reap it,
reports the runtime's status (``128 + signal`` for a signal, translated back here). With the
seccomp layer, the runtime's command line also carries the filter it installs on itself once
loaded (``--seccomp``, base64 BPF): from then on not even ``execve`` is allowed.

This is the reference way to start a seat, and what the ``auto`` seat mode falls back to when
the fork server cannot run (``launch.py``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from .isolation import Isolation, as_user, at_seat_priority, default_isolation, sandbox_process_groups
from .limits import Limits
from .process import CLEAN_ENV, SeatProcess, bot_python, run_seat
from .seat import SECCOMP_OPTION
from .view import RUNTIME_PATH, numpy_view

__all__ = ["DEFAULT_ISOLATION", "FreshSeatProcess", "IsolationChoice", "open_fresh_seat"]


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


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Default:
    """The ``isolation`` argument's default: every layer the machine supports (probed once per process)."""


DEFAULT_ISOLATION = _Default()
IsolationChoice = Isolation | None | _Default  # a fresh seat's layers: these, none, or the machine's


@asynccontextmanager
async def open_fresh_seat(
    limits: Limits, *, python: str | None = None, label: str = "seat",
    isolation: IsolationChoice = DEFAULT_ISOLATION,
) -> AsyncIterator[FreshSeatProcess]:
    """Start a fresh bot runtime for one seat; on exit kill it and reap it.

    ``python``: the bot interpreter (:func:`~server.sandbox.process.bot_python` by default).
    ``isolation`` wraps it in the namespaces, seccomp filter and filesystem view (by default all
    that this machine supports, probed once per process); None runs it without them.
    """
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
    argv, switch_user = as_user(at_seat_priority(argv), user)
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
        async with run_seat(seat):
            yield seat
    finally:
        if proc.returncode is None:  # only when the task group itself failed
            seat.kill()
            with anyio.CancelScope(shield=True):
                if seat.is_sandboxed:  # let bubblewrap reap its sandbox first
                    with anyio.move_on_after(limits.grace_s):
                        await proc.wait()
                _signal_group(proc, signal.SIGKILL)
                await proc.wait()
