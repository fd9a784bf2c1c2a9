"""Layers 6-8 of the sandbox: namespaces, a seccomp allow-list and a read-only filesystem view.

Theory of operation. A seat's interpreter starts through bubblewrap (``bwrap``), which builds
the sandbox and then execs ``python3 -I -S /arena/bot_runtime.py`` in it:

* namespaces (layer 6): new user, network (nothing but a loopback of its own: no network at
  all, not even to the server on 127.0.0.1), PID (bwrap's reaper is PID 1, the bot PID 2),
  IPC, UTS (hostname ``arena``) and cgroup namespaces; no further user namespace inside
  (``--disable-userns``, bubblewrap 0.8 and later);
* seccomp (layer 7): a BPF allow-list that libseccomp (through ``pyseccomp``) builds once per
  server (``_seccomp.py``) and bwrap reads from a descriptor. bwrap installs it on its reaper and just before it
  execs the interpreter, so ``execve`` (and ``wait4`` for the reaper) must stay allowed. Every
  other call outside the list fails with EPERM; ``open``/``openat`` pass only without write,
  create, truncate or append flags; signals go only to the bot itself (PID 2, with a PID
  namespace); no ``socket``, ``clone``/``fork``, ``ptrace``, ``mount``, ``kill`` of others.
  A second program, the same list without ``execve``, ``wait4`` and ``prctl``, goes to the
  runtime on its command line (base64); the runtime installs it on itself once it has loaded,
  before the bot's code runs (filters stack: a call passes only if every filter allows it), so
  the bot can never exec anything, the interpreter without the runtime included. The first
  program allows the two ``prctl`` calls that installing it takes (``PR_SET_NO_NEW_PRIVS``,
  then ``PR_SET_SECCOMP`` with a filter) and no other;
* filesystem (layer 8): an empty read-only root holding only what the interpreter maps and
  imports, the seat folder's files (``server/sandbox/seat/``) copied in read-only through
  descriptors at ``/arena``, the devices the interpreter needs and, with a PID namespace, a
  ``/proc`` of that namespace only; numpy's files only for seats allowed it. What the view
  holds, and how it is found, is ``view.py``'s; this module puts it on bwrap's command line.

When the server runs as root, bwrap itself runs as uid/gid 65534 (:func:`as_user`: util-linux's
``setpriv`` drops them and execs bwrap, or else ``subprocess`` drops them in C between fork and
exec; never a ``preexec_fn``). Started by root, the sandboxed process would keep
host uid 0 behind its user namespace, and host uid 0 passes the owner check of global sysctls in
``/proc/sys`` (``kernel/core_pattern``...) without any capability: measured here.

bwrap sits between the server and the bot and exits with the bot's status (``128 + signal``
when a signal ended it). To stop a seat the server signals the sandbox's own process group
(bwrap's child, read from ``/proc``) and lets bwrap reap it, rather than killing bwrap and
leaving its orphaned reaper for PID 1 to collect.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from protocol.errors import LayerUnavailable

from ._seccomp import ALLOWED_SYSCALLS, CONDITIONAL_SYSCALLS, seccomp_program
from .seat import NOBODY
from .view import filesystem_view, numpy_view, seat_contents, seat_paths

_seccomp_program = seccomp_program  # its name before it moved to _seccomp.py

__all__ = [
    "ALLOWED_SYSCALLS",
    "Isolation",
    "LayerState",
    "as_user",
    "build_isolation",
    "default_isolation",
    "isolation_overridden",
    "isolation_override",
    "isolation_status",
    "sandbox_process_groups",
]

log = logging.getLogger(__name__)

SANDBOX_PID: Final = 2  # the command's PID inside a bwrap PID namespace: bwrap's reaper is 1
_PROBE_TIMEOUT_S = 20.0


# What the probe imports inside the sandbox: the modules bots are allowed, and then some.
_PROBE = (
    "import bisect, collections, copy, dataclasses, decimal, enum, fractions, functools, heapq, itertools, "
    "json, math, os, random, re, statistics, string, time, typing\n"
    "print('arena-probe-ok', os.getuid(), os.getpid())\n"
)


@dataclass(frozen=True, slots=True)
class LayerState:
    active: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Isolation:
    """How to wrap a seat's command in bubblewrap with the chosen layers. Build with :func:`build_isolation`."""

    bwrap: str
    namespaces: bool
    seccomp: bool
    filesystem: bool
    view: tuple[str, ...]  # the bwrap arguments that build the filesystem view
    seccomp_program: bytes | None
    run_as_nobody: bool  # the server is root: start bwrap as uid/gid 65534
    disable_userns: bool = True  # bubblewrap 0.8+: no nested user namespace in the sandbox
    # What the runtime installs on itself once loaded (no execve): None leaves the bwrap filter alone.
    runtime_seccomp_program: bytes | None = None

    @property
    def user(self) -> int | None:
        """The uid (and gid) to start bwrap as (see :func:`as_user`): None keeps ours."""
        return NOBODY if self.run_as_nobody else None

    def wrap_command(
        self, argv: Sequence[str], *, runtime_path: Path, python: str, env: Mapping[str, str] | None = None,
        die_with_parent: bool = True, numpy: bool = False,
    ) -> tuple[list[str], list[int]]:
        """The bwrap command line that runs ``argv`` in the sandbox, and the descriptors to pass it.

        ``argv`` is the command as it would run unsandboxed; ``python`` (its interpreter) and the
        files of ``runtime_path``'s folder (the seat folder) are mapped to their paths inside. The
        caller passes the returned descriptors to the child (``pass_fds``) and closes them once it
        has started. ``die_with_parent``: the sandbox dies with the thread that started it (bwrap's
        ``--die-with-parent``); the fork server's zygote dies with its socket instead. ``numpy``:
        the view holds numpy too (:func:`~server.sandbox.view.numpy_view`; it runs ``python`` the
        first time).

        Raises:
            OSError: the seat folder cannot be read or a descriptor cannot be made.
        """
        seat_dir = runtime_path.parent
        mapped = {python: os.path.realpath(python),
                  **seat_paths(seat_dir, has_view=self.filesystem, as_nobody=self.run_as_nobody)}
        command = [mapped.get(arg, arg) for arg in argv]
        fds: list[int] = []
        try:
            cmd = [self.bwrap, *(["--die-with-parent"] if die_with_parent else []), "--new-session", "--unshare-user",
                   *(["--disable-userns"] if self.disable_userns else []),
                   "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
            if self.namespaces:
                cmd += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                        "--hostname", "arena"]
            if self.filesystem:
                cmd += self.view
                if numpy:
                    cmd += numpy_view(python)
            else:
                cmd += ["--dev-bind", "/", "/"]
            if self.namespaces:
                cmd += ["--proc", "/proc"]  # this PID namespace's own
            if self.filesystem:
                for inside, data in seat_contents(seat_dir):  # copied: the sandbox cannot read the project
                    fds.append(_data_fd("arena-runtime", data))
                    cmd += ["--perms", "0444", "--ro-bind-data", str(fds[-1]), inside]
                cmd += ["--remount-ro", "/"]
            cmd += ["--chdir", "/", "--clearenv"]
            for key, value in (env or {}).items():
                cmd += ["--setenv", key, value]
            if self.seccomp_program is not None:
                seccomp_fd = _data_fd("arena-seccomp", self.seccomp_program)
                fds.append(seccomp_fd)
                cmd += ["--seccomp", str(seccomp_fd)]
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return [*cmd, "--", *command], fds


SETPRIV: Final = shutil.which("setpriv", path="/usr/bin:/bin")  # util-linux
NICE: Final = shutil.which("nice", path="/usr/bin:/bin")  # coreutils

# Seats run at a lower CPU priority than the server: the process that keeps their clocks, reads
# their replies and serves everyone else is never queued behind the bots it judges (with every
# core busy with thinking seats, a match's start or a reply's arrival would otherwise wait for
# the kernel to share a core with them). Between seats nothing changes: all run at this value.
SEAT_NICE: Final = 10


def at_seat_priority(argv: Sequence[str]) -> list[str]:
    """``argv`` run at ``SEAT_NICE`` (through ``nice``; as it is where there is none)."""
    return [NICE, "-n", str(SEAT_NICE), *argv] if NICE is not None else list(argv)


def as_user(argv: Sequence[str], user: int | None) -> tuple[list[str], dict[str, Any]]:
    """``argv`` and the ``subprocess`` keyword arguments that start it as ``user`` (uid and gid, no
    supplementary groups); ``None`` starts it as this process is.

    Through ``setpriv`` where there is one: ``subprocess`` can then vfork, while its own switch of
    user forces a fork of the whole server, which blocks the event loop (measured with a 100 MB
    process: 3.5 ms of CPU per start against 0.4 ms through ``setpriv``).
    """
    if user is None:
        return list(argv), {}
    if SETPRIV is not None:
        return [SETPRIV, f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv], {}
    return list(argv), {"user": user, "group": user, "extra_groups": []}


def _data_fd(name: str, data: bytes) -> int:
    """A fresh read-only-positioned descriptor holding ``data`` (bwrap reads it to the end)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


# -- detection ------------------------------------------------------------------------------------


def _find_bwrap() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


@functools.cache
def _bwrap_options(bwrap: str) -> frozenset[str]:
    """The options this bubblewrap lists in its ``--help``."""
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(word for word in out.split() if word.startswith("--"))


def build_isolation(
    *, python: str, namespaces: bool = True, seccomp: bool = True, filesystem: bool = True
) -> Isolation:
    """An isolation recipe with the chosen layers, not yet probed.

    Raises:
        LayerUnavailable: bwrap, the seccomp binding or the interpreter's view is missing.
    """
    self_pid = SANDBOX_PID if namespaces else None
    bwrap = _find_bwrap()
    if bwrap is None:
        raise LayerUnavailable("bubblewrap (bwrap) not installed: apt-get install bubblewrap")
    options = _bwrap_options(bwrap)
    needed = {"--ro-bind-data", "--perms", "--clearenv", "--die-with-parent", "--unshare-cgroup-try", "--seccomp"}
    if not needed <= options:
        lacking = ", ".join(sorted(needed - options))
        raise LayerUnavailable(f"{bwrap} is too old (0.5 or later needed): it lacks {lacking}")
    return Isolation(
        bwrap=bwrap, namespaces=namespaces, seccomp=seccomp, filesystem=filesystem,
        view=filesystem_view(python) if filesystem else (),
        seccomp_program=seccomp_program(self_pid) if seccomp else None,
        run_as_nobody=os.geteuid() == 0,
        disable_userns="--disable-userns" in options,
        runtime_seccomp_program=seccomp_program(self_pid, after_load=True) if seccomp else None,
    )


def probe(isolation: Isolation, python: str, runtime_path: Path) -> str | None:
    """Start ``python`` in the sandbox once and import what bots use: None if it works, else why."""
    argv, fds = isolation.wrap_command(
        [python, "-I", "-S", "-c", _PROBE], runtime_path=runtime_path, python=python, env={"LANG": "C.UTF-8"}
    )
    try:
        done = subprocess.run(
            argv, capture_output=True, env={}, cwd="/", pass_fds=fds, timeout=_PROBE_TIMEOUT_S,
            user=isolation.user, group=isolation.user, extra_groups=[] if isolation.user is not None else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"probe failed: {exc}"
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode == 0 and b"arena-probe-ok" in done.stdout:
        return None
    first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {done.returncode}"])[0]
    return f"probe failed: {first}"


@dataclass(frozen=True, slots=True)
class _Detected:
    isolation: Isolation | None
    states: dict[str, LayerState]


@functools.cache
def _detect(python: str, runtime_path: Path) -> _Detected:
    """Which of layers 6-8 work here, each with its reason; the best working recipe. Cached."""
    detected = _detect_now(python, runtime_path)
    for name, state in detected.states.items():
        if not state.active:
            log.warning("sandbox layer %s is off for bots run by %s: %s", name, python, state.reason)
    return detected


def _detect_now(python: str, runtime_path: Path) -> _Detected:
    seccomp_reason: str | None = None
    try:
        seccomp_program(SANDBOX_PID)
        seccomp_program(SANDBOX_PID, after_load=True)
    except LayerUnavailable as exc:
        seccomp_reason = str(exc)
    try:
        isolation = build_isolation(python=python, seccomp=seccomp_reason is None)
    except LayerUnavailable as exc:
        return _Detected(None, {name: LayerState(False, str(exc)) for name in ("namespaces", "seccomp", "filesystem")})
    failure = probe(isolation, python, runtime_path)
    if failure is not None and isolation.seccomp:
        without = build_isolation(python=python, seccomp=False)
        if probe(without, python, runtime_path) is None:
            seccomp_reason, isolation, failure = f"interpreter fails under the filter: {failure}", without, None
    if failure is not None:
        reason = f"bubblewrap {failure}"
        return _Detected(None, {name: LayerState(False, reason) for name in ("namespaces", "seccomp", "filesystem")})
    who = "uid 65534 (bwrap started as 65534, not root)" if isolation.run_as_nobody else "uid 65534 in a user namespace"
    if not isolation.disable_userns:
        who += "; nested user namespaces left to seccomp (bubblewrap older than 0.8)"
    states = {
        "namespaces": LayerState(True, f"bubblewrap: new user, network (none), PID, IPC, UTS, cgroup namespaces; "
                                       f"{who}"),
        "seccomp": LayerState(True, f"allow-list of {len(ALLOWED_SYSCALLS) + len(CONDITIONAL_SYSCALLS)} system calls, "
                                    "others fail with EPERM; no socket, fork, ptrace, kill of others, open for "
                                    "writing, exec once the runtime has loaded")
        if seccomp_reason is None else LayerState(False, seccomp_reason),
        "filesystem": LayerState(True, "read-only root with only the interpreter's files, the runtime and "
                                       "/dev/null, /dev/zero, /dev/urandom; /proc of the seat's PID namespace"),
    }
    return _Detected(isolation, states)


_override: ContextVar[tuple[Isolation | None] | None] = ContextVar("arena_isolation_override", default=None)


def default_isolation(python: str, runtime_path: Path) -> Isolation | None:
    """Every isolation layer this machine supports (probed once per process), or None when none does."""
    forced = _override.get()
    if forced is not None:
        return forced[0]
    return _detect(python, runtime_path).isolation


def isolation_status(python: str, runtime_path: Path) -> dict[str, LayerState]:
    """``namespaces``, ``seccomp`` and ``filesystem`` as seats started in this context get them
    (:func:`isolation_override` included): active or not, and why."""
    forced = _override.get()
    if forced is None:
        return dict(_detect(python, runtime_path).states)
    isolation = forced[0]
    detected = _detect(python, runtime_path).states
    states = {}
    for name in ("namespaces", "seccomp", "filesystem"):
        if isolation is not None and getattr(isolation, name):
            states[name] = detected[name] if detected[name].active else LayerState(True, "bubblewrap, as overridden")
        else:
            states[name] = LayerState(False, "turned off for the seats started here (the test-only isolation_override)")
    return states


def isolation_overridden() -> bool:
    """Whether :func:`isolation_override` chose this context's isolation."""
    return _override.get() is not None


@contextmanager
def isolation_override(isolation: Isolation | None) -> Iterator[None]:
    """Test-only switch: seats started in this context use ``isolation`` (None: no sandbox)."""
    token = _override.set((isolation,))
    try:
        yield
    finally:
        _override.reset(token)


def sandbox_process_groups(bwrap_pid: int) -> list[int]:
    """The process groups bwrap started (its children lead them: ``--new-session``); [] when none yet."""
    try:
        children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]
