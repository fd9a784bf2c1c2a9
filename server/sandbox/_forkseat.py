"""A seat forked by the fork server, as the server sees it (see ``forkserver.py``).

:class:`PendingSeat` is what the server holds from the request until the seat runs: its ends of
the seat's pipes and socket, then the seat's pidfd. :class:`ForkSeatProcess` is the running
seat, a :class:`~server.sandbox.process.SeatProcess` whose process is reached through that pidfd
(signals) and that socket (its wait status, sent by the zygote that reaps it).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
from typing import IO

import anyio

from protocol.errors import SandboxError

from .limits import Limits
from .process import SeatProcess

__all__ = ["ForkSeatProcess", "PendingSeat"]

_MESSAGE_BYTES = 1 << 16


class PendingSeat:
    """A seat the zygote was asked to fork: the server's ends of its pipes and socket, then its pidfd."""

    def __init__(self, stdin: int, stdout: int, stderr: int, sock: socket.socket) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.sock = sock
        self.pidfd: int | None = None
        self.pid = 0  # in the server's PID namespace, once known

    async def started(self) -> None:
        """Until the zygote has forked it (at once for a pooled seat).

        Raises:
            SandboxError: the zygote could not fork it, or is gone.
        """
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, _MESSAGE_BYTES, 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
                continue
            if not fds:
                message = json.loads(data) if data else {"error": "the fork server is gone"}
                raise SandboxError(f"the fork server could not start a seat: {message.get('error', message)}")
            self.pidfd = fds[0]
            self.pid = pid_of(self.pidfd)
            return

    def has_exited(self) -> bool:
        """Whether the forked seat is already gone (its pidfd is readable once it exits)."""
        if self.pidfd is None:
            return False
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(0))

    def discard(self) -> None:
        """Give the seat up unused: it is killed (it would exit at EOF anyway) and the zygote reaps it.
        Closes what the server still holds of it (a pipe already wrapped in a stream is -1)."""
        if self.pidfd is not None:
            pidfd_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = None
        for fd in (self.stdin, self.stdout, self.stderr):
            if fd >= 0:
                os.close(fd)
        self.stdin = self.stdout = self.stderr = -1
        self.sock.close()


def pid_of(pidfd: int) -> int:
    """The pid a pidfd refers to, in this process's PID namespace.

    Raises:
        SandboxError: the kernel does not say (older than Linux 5.10).
    """
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise SandboxError(f"no pid in /proc/self/fdinfo/{pidfd}")


def pidfd_signal(pidfd: int, sig: int) -> None:
    """Signal the process of ``pidfd``; one that already exited (a zombie until reaped) is no error."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pipe_file(fd: int, mode: str) -> IO[bytes]:
    """A pipe's descriptor as the file object asyncio's pipe transports take (and close)."""
    return os.fdopen(fd, mode, buffering=0)


class ForkSeatProcess(SeatProcess):
    """A running seat forked by the fork server. Get one from ``ForkServer.open_seat`` (a seat
    launcher in fork or auto mode does: ``launch.SeatLauncher.open_seat``)."""

    mode = "fork"

    def __init__(
        self, pending: PendingSeat, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader, transports: list[asyncio.BaseTransport], limits: Limits, label: str,
    ) -> None:
        super().__init__(stdin, stdout, stderr, limits, label, is_sandboxed=True)
        assert pending.pidfd is not None
        self._pidfd: int | None = pending.pidfd
        self._pid = pending.pid
        self._sock = pending.sock
        self._transports = transports
        self._returncode: int | None = None
        self._reading = False  # a task is reading the seat's status from its socket
        self._read_done = anyio.Event()

    @classmethod
    async def attach(cls, pending: PendingSeat, limits: Limits, label: str) -> ForkSeatProcess:
        """The running seat for a started pending one: its pipes wrapped as asyncio streams."""
        loop = asyncio.get_running_loop()
        transports: list[asyncio.BaseTransport] = []
        files: list[IO[bytes]] = []
        # Each pipe wrapped in a file is the file's to close: the pending seat's copy becomes -1, so
        # that a failure here leaves the rest (the pidfd, the socket, any pipe not wrapped yet) to
        # ``pending.discard()``, the caller's, and nothing is closed twice (a second close would
        # fail and leave the socket open).
        try:
            readers = []
            for is_stdout in (True, False):
                reader = asyncio.StreamReader(limit=limits.reply_bytes, loop=loop)
                if is_stdout:
                    files.append(_pipe_file(pending.stdout, "rb"))
                    pending.stdout = -1
                else:
                    files.append(_pipe_file(pending.stderr, "rb"))
                    pending.stderr = -1
                transport, _ = await loop.connect_read_pipe(
                    lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop), files[-1])  # type: ignore[misc]
                transports.append(transport)
                readers.append(reader)
            files.append(_pipe_file(pending.stdin, "wb"))
            pending.stdin = -1
            write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, files[-1])
            transports.append(write_transport)
        except BaseException:
            for opened in transports:
                opened.close()
            for file in files[len(transports):]:
                file.close()
            raise
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        return cls(pending, writer, readers[0], readers[1], transports, limits, label)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def exit_status(self) -> int | None:
        return self._returncode

    async def wait(self) -> None:
        while self._returncode is None:
            if self._reading:  # another task reads the status: wait until it has it, or gave up
                await self._read_done.wait()
            else:
                await self.watch_exit()

    def _signal(self, sig: int) -> None:
        # The seat is alone in its session: no fork, no clone (seccomp; RLIMIT_NPROC 0).
        if self._returncode is None and self._pidfd is not None:
            pidfd_signal(self._pidfd, sig)

    async def _stop(self) -> None:
        self._signal(signal.SIGKILL)
        await self.wait()

    async def watch_exit(self) -> None:
        """Until the zygote reports the seat's wait status (or is gone: then the seat is too).

        The seat's task group runs this, so that ``exit_status`` is known as soon as the zygote
        tells; :meth:`wait` reads the status itself if that task is gone (cancelled).
        """
        if self._reading or self._returncode is not None:
            return await self.wait()
        self._reading = True
        try:
            while True:
                try:
                    data = self._sock.recv(_MESSAGE_BYTES)
                except BlockingIOError:
                    await anyio.wait_readable(self._sock)
                    continue
                break
            if data:
                self._returncode = os.waitstatus_to_exitcode(json.loads(data)["status"])
            else:  # the zygote died: the seat died with it (PR_SET_PDEATHSIG)
                self.note("the fork server stopped")
                self._returncode = -signal.SIGKILL
        finally:
            self._reading = False
            done, self._read_done = self._read_done, anyio.Event()
            done.set()

    async def release(self) -> None:
        """Close what the server held of the seat: its streams, pidfd and socket."""
        for transport in self._transports:
            transport.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._sock.close()
        await anyio.lowlevel.checkpoint()  # let the transports' closing callbacks run
