"""The fork server: seats forked from one warm zygote instead of a fresh sandboxed process each.

Theory of operation. A fresh seat (``fresh.py``) costs a bubblewrap sandbox and an interpreter
start per seat, tens of milliseconds. The fork server starts one zygote (``zygote.py``) per
server, in bubblewrap with the outer layers (the filesystem view, no network, PID, IPC, UTS and
cgroup namespaces, a user namespace, uid 65534, a seccomp filter), with the bot runtime and layer
2 already loaded. Per seat, the server

1. makes the seat's three pipes and a ``SOCK_SEQPACKET`` socket pair itself, and sends the
   child ends, with the seat's limits, to the zygote (``SCM_RIGHTS``): one non-blocking
   ``sendmsg``, nothing to wait for;
2. receives, on the seat's socket, the seat's pidfd: the seat's pid in the server's PID
   namespace (from ``/proc/self/fdinfo``) and a handle that signals exactly that process,
   never a recycled pid; later, on the same socket, the seat's wait status (the zygote reaps
   it), so ``describe_exit`` works as for a fresh process;
3. wraps its ends of the pipes in asyncio streams: :class:`ForkSeatProcess` behaves as a
   fresh ``SeatProcess`` (``init`` with the bot's code on stdin, the same runtime loop).

numpy, the operator's opt-in, follows the pool's limits: with ``allow_numpy`` the zygote's view
holds numpy (its package, the libraries it loads) and the zygote imports it before forking, so
seats share it; without, neither, and a seat whose limits allow numpy is refused here (``auto``
then starts it fresh, with numpy in its own view).

The forked seat applies the per-seat layers itself before it reads ``init`` (see ``zygote.py``):
its own session, rlimits, not dumpable, Landlock (its own ``/proc`` entry only, signals scoped
to itself), the runtime's seccomp filter with its own pid. So seats are forked ahead of need:
a pool of ``pool_size`` seats per server, with the server's default limits, waits for ``init``;
taking one sends the request for its replacement at once, and the zygote forks it while the
match plays: the pool refills in the background with no task or thread of the server's.

Lifetime and ownership. A :class:`ForkServer` is a resource with an owner: whoever runs
matches starts one through a seat launcher (``launch.py``: ``serve_seats`` in the app's lifespan,
``arena play``, tests, benchmarks), and it stops when that owner's block ends. Nothing in this
module is process-wide. One zygote can serve several event loops: its socket and the pool are
plain descriptors, and each seat's streams are made in the loop that opens it. The zygote lives
exactly as long as its socket: the server closing it, or dying, makes it kill its seats and
exit. Which seats fork and which start fresh (the seat modes) is the launcher's choice.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from protocol.errors import LayerUnavailable, SandboxError

from ._forkseat import ForkSeatProcess, PendingSeat
from ._seccomp import seat_seccomp_template, zygote_seccomp_program
from .isolation import Isolation, at_seat_priority, default_isolation
from .limits import Limits
from .process import CLEAN_ENV, bot_python, run_seat
from .view import RUNTIME_PATH, ZYGOTE_PATH, numpy_view

__all__ = ["DEFAULT_POOL_SIZE", "ForkSeatProcess", "ForkServer"]

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 8
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 5.0
_RESTART_INTERVAL_S = 10.0  # at most one restart of a dead zygote per interval
_MESSAGE_BYTES = 1 << 16


def _runtime_key(limits: Limits) -> tuple[Any, ...]:
    """What makes two seats' layers alike: the limits the runtime applies (in a fixed order)."""
    return tuple(limits.for_runtime().values())


class ForkServer:
    """A zygote in the sandbox's outer layers, and a pool of seats forked ahead of need.

    :meth:`start` and :meth:`close` block (run them off the event loop); the rest is quick
    and thread-safe.
    """

    def __init__(
        self, isolation: Isolation, *, python: str, pool_size: int, pool_limits: Limits,
        seat_landlock: bool = True, seat_seccomp: bool = True,
    ) -> None:
        self.isolation = isolation
        # Test-only switches: leave a per-seat layer out, to show that the others hold alone.
        self.seat_landlock = seat_landlock
        self.seat_seccomp = seat_seccomp
        self.python = python
        self.pool_size = pool_size
        self.pool_limits = pool_limits
        self.pool_key = _runtime_key(pool_limits)
        self.has_numpy = pool_limits.allow_numpy  # in the zygote's view, and imported by it (see start)
        self.info: dict[str, Any] = {}  # what the zygote said about itself
        self._lock = threading.Lock()
        self._pool: deque[PendingSeat] = deque()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._failure: str | None = None
        self._started_at = 0.0

    @classmethod
    def launch(
        cls, *, pool_size: int = DEFAULT_POOL_SIZE, pool_limits: Limits | None = None, **switches: bool
    ) -> ForkServer:
        """A started fork server with every isolation layer this machine supports.

        ``switches``: the test-only ``seat_landlock`` and ``seat_seccomp`` (never turn them off in production).

        Raises:
            LayerUnavailable: a layer is off here, or the zygote did not start.
        """
        python = bot_python()
        isolation = default_isolation(python, RUNTIME_PATH)
        if isolation is None or not (isolation.namespaces and isolation.seccomp and isolation.filesystem):
            raise LayerUnavailable("the fork server needs every isolation layer (namespaces, seccomp, filesystem)")
        server = cls(isolation, python=python, pool_size=pool_size, pool_limits=pool_limits or Limits(), **switches)
        server.start()
        return server

    @property
    def is_alive(self) -> bool:
        return self._proc is not None and self._failure is None and self._proc.poll() is None

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def pid(self) -> int | None:
        """bubblewrap's pid, the zygote's ancestor (for tests that account for every process)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the zygote and fill the pool. Blocks until the zygote is ready (some 100 ms).

        Raises:
            LayerUnavailable: the zygote did not start, or lacks Landlock.
        """
        template = seat_seccomp_template()
        if self.pool_limits.allow_numpy:
            # Without numpy installed (numpy_view says why in the log) the zygote starts without it:
            # seats allowed numpy then start fresh and fail to load, saying why; the others fork.
            self.has_numpy = bool(numpy_view(self.python))
        isolation = dataclasses.replace(self.isolation, seccomp_program=zygote_seccomp_program())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv, fds = isolation.wrap_command(
            [self.python, "-I", "-S", str(ZYGOTE_PATH), str(theirs.fileno())], runtime_path=RUNTIME_PATH,
            python=self.python, env=CLEAN_ENV, die_with_parent=False,  # it dies with its socket instead
            numpy=self.has_numpy,
        )
        user = isolation.user
        try:
            proc = subprocess.Popen(  # its seats inherit its priority
                at_seat_priority(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=CLEAN_ENV, cwd="/",
                start_new_session=True, pass_fds=[theirs.fileno(), *fds],
                user=user, group=user, extra_groups=[] if user is not None else None,
            )
        except OSError as exc:
            ours.close()
            raise LayerUnavailable(f"could not start the fork server: {exc}") from exc
        finally:
            theirs.close()
            for fd in fds:
                os.close(fd)
        try:
            ours.settimeout(_START_TIMEOUT_S)
            program = base64.b64encode(template.program).decode("ascii")
            config: dict[str, Any] = {"seccomp_offsets": template.offsets, "landlock": self.seat_landlock,
                                      "numpy": self.has_numpy}
            if self.seat_seccomp:
                config["seccomp"] = program
            ours.send(json.dumps(config).encode())
            reply = json.loads(ours.recv(_MESSAGE_BYTES) or b'{"error": "it exited"}')
            if not reply.get("ready"):
                raise LayerUnavailable(f"the fork server's zygote failed: {reply.get('error')}")
            if reply.get("landlock_abi", 0) < 1:
                raise LayerUnavailable("the fork server needs Landlock (Linux 5.13 or later, enabled)")
        except (OSError, ValueError, LayerUnavailable) as exc:
            ours.close()
            _stop_process(proc)
            raise exc if isinstance(exc, LayerUnavailable) else LayerUnavailable(
                f"the fork server's zygote did not start: {exc}") from exc
        ours.settimeout(_START_TIMEOUT_S)  # a send blocks only if the zygote stopped reading: then it is broken
        with self._lock:
            self._proc, self._control, self._failure = proc, ours, None
            self.info = reply
            self._started_at = time.monotonic()
            for _ in range(self.pool_size):
                self._pool.append(self._request(self.pool_limits))
        log.info("fork server started: zygote under bubblewrap pid %d, pool of %d, Landlock ABI %d",
                 proc.pid, self.pool_size, reply["landlock_abi"])

    def restart_if_dead(self) -> bool:
        """Start a dead zygote again (at most once per interval): whether it runs. Blocks."""
        if self.is_alive:
            return True
        if time.monotonic() - self._started_at < _RESTART_INTERVAL_S:
            return False
        log.warning("fork server: the zygote died (%s); starting it again", self._failure or "it exited")
        self.close()
        try:
            self.start()
        except LayerUnavailable as exc:
            self._failure = str(exc)
            self._started_at = time.monotonic()
            return False
        return True

    def close(self) -> None:
        """Stop the zygote: its seats are killed and reaped, the pool given up. Blocks briefly."""
        with self._lock:
            pool, self._pool = list(self._pool), deque()
            control, self._control = self._control, None
            proc = self._proc
        for seat in pool:
            seat.discard()
        if control is not None:
            control.close()  # EOF: the zygote kills its seats and exits
        if proc is not None:
            _stop_process(proc)

    def take(self, limits: Limits) -> PendingSeat:
        """A seat for ``limits``: a pooled one (its replacement requested now), else a new request.

        Raises:
            SandboxError: the zygote is gone, or the limits allow numpy and this zygote has none.
        """
        if limits.allow_numpy and not self.has_numpy:
            raise SandboxError("the fork server has no numpy: its pool's limits do not allow it")
        with self._lock:
            if _runtime_key(limits) == self.pool_key and self._pool:
                seat = self._pool.popleft()
                self._pool.append(self._request(self.pool_limits))
                return seat
            return self._request(limits)

    def _request(self, limits: Limits) -> PendingSeat:
        """Ask the zygote for one seat (the lock is held): one ``sendmsg``, no reply awaited."""
        if self._control is None or self._failure is not None:
            raise SandboxError(f"the fork server is not running: {self._failure or 'stopped'}")
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            request = json.dumps({"limits": limits.for_runtime()}).encode()
            socket.send_fds(self._control, [request], [stdin_r, stdout_w, stderr_w, theirs.fileno()])
        except OSError as exc:
            self._failure = f"the zygote stopped taking requests: {exc}"
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            ours.close()
            raise SandboxError(f"the fork server could not start a seat: {exc}") from exc
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
            theirs.close()
        ours.setblocking(False)
        return PendingSeat(stdin_w, stdout_r, stderr_r, ours)

    async def checkout(self, limits: Limits) -> PendingSeat:
        """A started seat for ``limits``, its layers applied or being applied, waiting for ``init``.

        Raises:
            SandboxError: the zygote is gone or could not fork.
        """
        for _ in range(self.pool_size + 1):
            seat = self.take(limits)
            try:
                await seat.started()
            except BaseException:
                seat.discard()
                raise
            if not seat.has_exited():
                return seat
            seat.discard()  # died waiting in the pool (the zygote restarted, or a failure to apply a layer)
        raise SandboxError("the fork server's seats exit before they are used")

    @asynccontextmanager
    async def open_seat(self, pending: PendingSeat, limits: Limits, label: str) -> AsyncIterator[ForkSeatProcess]:
        """Run a checked-out seat: its log drained, its exit watched; killed and reaped at the end."""
        try:
            seat = await ForkSeatProcess.attach(pending, limits, label)
        except BaseException:
            pending.discard()
            raise
        try:
            async with run_seat(seat, seat.watch_exit):
                yield seat
        finally:
            with anyio.CancelScope(shield=True):
                await seat.release()


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
