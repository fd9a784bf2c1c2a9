"""The fork server's zygote: one warm interpreter that forks a seat per request.

Theory of operation. The server (``forkserver.py``) starts ``python3 -I -S /arena/zygote.py FD``
once, in bubblewrap with the sandbox's outer layers (the read-only filesystem view, no network,
PID, IPC, UTS and cgroup namespaces, a user namespace, uid 65534, the zygote's seccomp filter).
``FD`` is its end of a ``SOCK_SEQPACKET`` socket pair, the only way in. The zygote

1. reads its configuration (the runtime's seccomp program with a stand-in pid, and where to
   write a seat's pid into it; whether the server allows numpy), loads ``bot_runtime.py`` by
   path (which loads its neighbours in this folder as it needs them), compiles layer 2
   (``restricted.py`` and the modules it imports), imports every module a bot may import (numpy
   too when allowed: the view then holds it), freezes the garbage collector's view of all that
   (so that forked seats share those pages) and answers ``ready``; it never sees a bot's code:
   that goes straight from the server to a seat;
2. per request (the seat's limits, with four descriptors: the seat's stdin, stdout and stderr
   pipes, which the server made, and a socket of the seat's own) forks a seat, sends the seat's
   pidfd back on the seat's socket (the server signals and identifies the seat through it, in its
   own PID namespace), and keeps watching that pidfd;
3. reaps every seat as soon as it exits and sends its wait status on the seat's socket, then
   closes it: the server's ``describe_exit`` works as for a fresh process;
4. at EOF on its socket (the server closed it, or died) kills its seats, reaps them and exits;
   bubblewrap then ends with it.

A forked seat applies its own layers before anything else (:func:`become_seat`): it dies with
the zygote (``PR_SET_PDEATHSIG``), leads a session of its own, takes its pipes as fds 0-2 and
closes every other descriptor (the zygote's socket, other seats' sockets and pidfds), moves the
protocol to private descriptors as a fresh seat does, lowers its rlimits, turns "dumpable" off
(no ``/proc/<pid>/mem``, ``environ``, ``maps`` or ``fd`` for anyone but itself), restricts itself
with Landlock (reads only under the view's directories and its own ``/proc/<pid>``; no signals
to, or abstract sockets of, anything outside its own domain), and installs the runtime's seccomp
filter with its own pid (signals to itself only; no exec, fork, ptrace, socket...). Then it waits
for ``init`` like a fresh seat. The server keeps a few such seats ready ahead of need.

Standard library only; it imports nothing of the project but the runtime, by path, and what
the runtime imports from this folder.
"""

from __future__ import annotations

import base64
import gc
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import types
from typing import Any

MAX_REQUEST_BYTES = 1 << 16
SEAT_FDS = 4  # stdin, stdout, stderr, the seat's socket
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
# Landlock (linux/landlock.h): system calls, rights and scopes.
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION, LANDLOCK_RULE_PATH_BENEATH = 1, 1
READ_FILE, READ_DIR, IOCTL_DEV = 1 << 2, 1 << 3, 1 << 15
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_RIGHTS = 0b11  # bind and connect on TCP ports (ABI 4): none allowed
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2  # ABI 6
_PATH_BENEATH = struct.Struct("=Qi")  # struct landlock_path_beneath_attr (packed)


def load_runtime() -> Any:
    """``bot_runtime.py``, next to this file, as a module (``python -I`` puts no directory on sys.path).

    Run by path, the runtime makes this folder a package and imports its neighbours from it: its
    file name (``seat.RUNTIME``) is the one name of the folder the zygote must know before that.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bot_runtime.py")
    with open(path, "rb") as file:
        source = file.read()
    module = types.ModuleType("bot_runtime")
    module.__file__ = path
    sys.modules[module.__name__] = module
    exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    return module


class Landlock:
    """A seat's Landlock domain: reads under the view's directories and its own /proc entry only."""

    def __init__(self, native: Any) -> None:
        self.native = native
        try:
            self.abi = native.syscall(LANDLOCK_CREATE_RULESET, 0, 0, LANDLOCK_CREATE_RULESET_VERSION)
        except OSError:
            self.abi = 0  # no Landlock in this kernel (or it is turned off)
        fs = max((rights for abi, rights in FS_RIGHTS_BY_ABI.items() if abi <= self.abi), default=0)
        fields = [fs]
        if self.abi >= 4:
            fields.append(NET_RIGHTS)
        if self.abi >= 6:
            fields.append(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
        self.ruleset_attr = struct.pack(f"={len(fields)}Q", *fields)
        self.read = READ_FILE | READ_DIR
        # Everything at the top of the view but /proc, where only the seat's own entry is allowed
        # (a merged-/usr link such as /sbin may point at nothing in the view: skipped).
        self.roots = sorted({os.path.realpath(os.path.join("/", name)) for name in os.listdir("/") if name != "proc"
                             and os.path.exists(os.path.join("/", name))})
        self.dev_rights = self.read | (IOCTL_DEV if self.abi >= 5 else 0)

    def restrict(self) -> None:
        """Restrict this process for good (``no_new_privs`` must be set).

        Raises:
            OSError: the kernel refused.
        """
        ruleset = self.native.syscall(LANDLOCK_CREATE_RULESET, self.ruleset_attr, len(self.ruleset_attr), 0)
        try:
            for path in (*self.roots, f"/proc/{os.getpid()}"):
                rights = self.dev_rights if path == "/dev" else self.read
                if not os.path.isdir(path):
                    rights &= ~READ_DIR  # a directory right on a file is EINVAL
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    rule = _PATH_BENEATH.pack(rights, fd)
                    self.native.syscall(LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0)
                finally:
                    os.close(fd)
            self.native.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0)
        finally:
            os.close(ruleset)


class Zygote:
    """The loop: fork seats on request, reap them, report their ends."""

    def __init__(self, control: socket.socket, config: dict[str, Any]) -> None:
        self.control = control
        self.runtime = load_runtime()
        self.restricted = self.runtime.load_restricted()
        self.native = self.runtime.native()
        program = config.get("seccomp")
        self.seccomp = None if program is None else bytes(base64.b64decode(program))
        self.seccomp_offsets: list[int] = list(config.get("seccomp_offsets", ()))
        self.landlock = Landlock(self.native)
        self.use_landlock = bool(config.get("landlock", True))  # off only in tests of the other layers
        self.numpy = bool(config.get("numpy", False))  # the server's limits allow numpy: its files are in the view
        self.pid = os.getpid()
        self.children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, the seat's socket)
        self.poller = select.poll()  # holds no descriptor of its own, unlike epoll: nothing for a seat to inherit

    def preload(self) -> None:
        """Import every module a bot may import, so that no seat pays for it."""
        for name in sorted(self.restricted.ALLOWED_MODULES):
            importlib.import_module(name)
        if self.numpy:  # measured: +40 ms and +19 MB here once (shared); else ~43 ms and ~19 MB private per seat
            self.runtime.enable_numpy()
        self.runtime.warm_up({"restricted": True})

    def serve(self) -> None:
        """Until EOF on the control socket."""
        control_fd = self.control.fileno()
        self.poller.register(control_fd, select.POLLIN)
        while True:
            for fd, _ in self.poller.poll():
                if fd != control_fd:
                    self.reap(fd)
                elif not self.receive():
                    self.shutdown()
                    return

    def receive(self) -> bool:
        """Take one request off the control socket: False at EOF."""
        try:
            data, fds, flags, _ = socket.recv_fds(self.control, MAX_REQUEST_BYTES, SEAT_FDS)
        except InterruptedError:
            return True
        if not data and not fds:
            return False
        if len(fds) != SEAT_FDS or flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            sys.stderr.write(f"arena zygote: a request with {len(fds)} descriptors, not {SEAT_FDS}\n")
            return True
        self.spawn(json.loads(data), fds)
        return True

    def spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        stdin, stdout, stderr, seat = fds
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            self.send(seat, {"error": f"fork failed: {exc}"})
            for fd in fds:
                os.close(fd)
            return
        if pid == 0:
            become_seat(self, stdin, stdout, stderr, request["limits"])  # never returns
        for fd in (stdin, stdout, stderr):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, seat)
        self.poller.register(pidfd, select.POLLIN)
        self.send(seat, {"pid": pid}, pidfd)

    def reap(self, pidfd: int) -> None:
        pid, seat = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        _, status = os.waitpid(pid, 0)  # it has exited: the pidfd said so
        self.send(seat, {"status": status})
        os.close(seat)
        os.close(pidfd)

    def send(self, seat: int, message: dict[str, Any], fd: int | None = None) -> None:
        """One message on a seat's socket; a server that already closed its end is no error."""
        sock = socket.socket(fileno=seat)
        try:
            socket.send_fds(sock, [json.dumps(message).encode()], [] if fd is None else [fd])
        except OSError:
            pass
        finally:
            sock.detach()

    def shutdown(self) -> None:
        for pid, _ in self.children.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pidfd in list(self.children):
            self.reap(pidfd)


def become_seat(zygote: Zygote, stdin: int, stdout: int, stderr: int, limits: dict[str, Any]) -> None:
    """In the forked child: apply the per-seat layers, then serve the bot like a fresh seat. Never returns."""
    code = 3
    try:
        native = zygote.native
        native.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote.pid:  # the zygote died before the line above: so must we
            os._exit(code)
        os.setsid()
        for target, fd in enumerate((stdin, stdout, stderr)):
            os.dup2(fd, target)
        zygote.control.detach()  # its descriptor closes below, with every other one
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        runtime = zygote.runtime
        channel = runtime.open_channel()
        runtime.apply_limits(limits)
        native.prctl(PR_SET_DUMPABLE, 0)
        native.set_no_new_privs()
        if zygote.landlock.abi and zygote.use_landlock:
            zygote.landlock.restrict()
        if zygote.seccomp is not None:
            program = bytearray(zygote.seccomp)
            for offset in zygote.seccomp_offsets:
                struct.pack_into("=I", program, offset, os.getpid())
            native.install_seccomp(bytes(program))
        runtime.warm_up(limits)  # under every layer: it runs the sample bot as a bot would run
    except BaseException as exc:  # the arena's fault: no bot runs without its layers
        os.write(2, f"arena: the seat could not apply its sandbox layers: {exc!r}\n".encode())
        os._exit(code)
    try:
        code = runtime.serve(channel, applied_limits=limits)
    except BaseException:  # the runtime's own failure; the bot's are reported by serve itself
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: S110 - a closed or broken log is no reason not to exit
                pass
    os._exit(code)


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.stderr.write("usage: zygote.py CONTROL-FD\n")
        return 2
    control = socket.socket(fileno=int(sys.argv[1]))
    config = json.loads(control.recv(MAX_REQUEST_BYTES) or b"{}")
    try:
        zygote = Zygote(control, config)
        # Not dumpable: its /proc entries (fd/, mem, environ...) are root's, not uid 65534's. Between
        # a request and the fork it holds a new seat's pipes, which a seat must never reopen.
        zygote.native.prctl(PR_SET_DUMPABLE, 0)
        zygote.preload()
    except Exception as exc:  # tell the server why, rather than only dying
        control.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        raise
    control.send(json.dumps({"ready": True, "pid": zygote.pid, "landlock_abi": zygote.landlock.abi,
                             "python": sys.version.split()[0]}).encode())
    gc.freeze()  # what is loaded now stays shared with every seat: the collector never touches it
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
