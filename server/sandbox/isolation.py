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
  imports (found once by running it), the runtime copied in read-only through a descriptor (so
  the sandbox needs no access to the project's directory), ``/dev/null``, ``/dev/zero``,
  ``/dev/urandom`` and, with a PID namespace, a ``/proc`` of that namespace only. Not ``/etc``,
  ``/home``, ``/root``, ``/tmp``, the project, the database, other submissions. A seat whose
  limits allow numpy (the operator's opt-in) also gets numpy's package directory, alone in its
  site directory, the libraries it loads and the links the loader follows to them (Debian's
  ``/etc/alternatives/libblas.so.3-*`` and kin: those links, not ``/etc``), found once by
  importing numpy (:func:`numpy_view`); other seats' views do not hold them.

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

import atexit
import functools
import json
import logging
import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from protocol.errors import LayerUnavailable

from ._seccomp import ALLOWED_SYSCALLS, CONDITIONAL_SYSCALLS, seccomp_program

_seccomp_program = seccomp_program  # its name before it moved to _seccomp.py

__all__ = [
    "ALLOWED_SYSCALLS",
    "Isolation",
    "LayerState",
    "RUNTIME_COMPANIONS",
    "SANDBOX_RUNTIME_PATH",
    "as_user",
    "build_isolation",
    "default_isolation",
    "isolation_overridden",
    "isolation_override",
    "isolation_status",
    "numpy_view",
    "others_may_read",
    "readable_runtime",
    "sandbox_process_groups",
]

log = logging.getLogger(__name__)

NOBODY: Final = 65534
SANDBOX_RUNTIME_PATH: Final = "/arena/bot_runtime.py"
# Copied into the sandbox next to the runtime: the modules it loads by path from its own directory,
# and the fork server's zygote (``zygote.py``), which loads the runtime by path in turn.
RUNTIME_COMPANIONS: Final = (
    "restricted.py", "_guards.py", "_stdlib_guards.py", "_numpy_guards.py", "zygote.py",
)  # fmt: skip
SANDBOX_PID: Final = 2  # the command's PID inside a bwrap PID namespace: bwrap's reaper is 1
_PROBE_TIMEOUT_S = 20.0


# What the probe imports inside the sandbox: the modules bots are allowed, and then some.
_PROBE = (
    "import bisect, collections, copy, dataclasses, decimal, enum, fractions, functools, heapq, itertools, "
    "json, math, os, random, re, statistics, string, time, typing\n"
    "print('arena-probe-ok', os.getuid(), os.getpid())\n"
)
# Run once outside the sandbox: which files the interpreter maps and where its library lives.
_DISCOVER = (
    "import sys, json, math, random, collections, itertools, functools, heapq, bisect, statistics, string, re, "
    "time, typing, dataclasses, enum, copy, decimal, fractions\n"
    "maps = set()\n"
    "for line in open('/proc/self/maps'):\n"
    "    parts = line.split(None, 5)\n"
    "    if len(parts) == 6 and parts[5].startswith('/'):\n"
    "        maps.add(parts[5].strip())\n"
    "print(json.dumps({'executable': sys.executable, 'path': sys.path, 'maps': sorted(maps)}))\n"
)
# Run once outside the sandbox when a seat may use numpy: the runtime (argv[1]) imports it as in a
# seat; then what the process maps, and every library by the path the loader opened it under.
_DISCOVER_NUMPY = r"""
import ctypes, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bot_runtime", sys.argv[1])
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
runtime.enable_numpy()
maps = set()
for line in open("/proc/self/maps"):
    parts = line.split(None, 5)
    if len(parts) == 6 and parts[5].startswith("/"):
        maps.add(parts[5].strip())
class Info(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]
opened = []
def found(info, size, data):
    opened.append((info.contents.name or b"").decode())
    return 0
ctypes.CDLL(None).dl_iterate_phdr(ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p)(found), None)
package = sys.modules["numpy"].__path__[0]
print(json.dumps({"package": package, "maps": sorted(maps), "opened": [p for p in opened if p.startswith("/")]}))
"""


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

        ``argv`` is the command as it would run unsandboxed; ``python`` (its interpreter),
        ``runtime_path`` and its companions in it are mapped to their paths inside. The caller passes the returned
        descriptors to the child (``pass_fds``) and closes them once it has started.
        ``die_with_parent``: the sandbox dies with the thread that started it (bwrap's
        ``--die-with-parent``); the fork server's zygote dies with its socket instead. ``numpy``:
        the view holds numpy too (:func:`numpy_view`; it runs ``python`` the first time).

        Raises:
            OSError: the runtime cannot be read or a descriptor cannot be made.
        """
        # Without the filesystem view the host's tree is the sandbox's, runtime included (a copy
        # where bwrap's user could not read the original).
        if self.filesystem:
            inside_runtime = SANDBOX_RUNTIME_PATH
        else:
            inside_runtime = str(readable_runtime(runtime_path) if self.run_as_nobody else runtime_path)
        mapped = {python: os.path.realpath(python), str(runtime_path): inside_runtime}
        for name in RUNTIME_COMPANIONS:
            mapped[str(runtime_path.with_name(name))] = posixpath.join(posixpath.dirname(inside_runtime), name)
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
                runtime_fd = _data_fd("arena-runtime", runtime_path.read_bytes())
                fds.append(runtime_fd)
                cmd += ["--perms", "0444", "--ro-bind-data", str(runtime_fd), SANDBOX_RUNTIME_PATH]
                for name in RUNTIME_COMPANIONS:
                    companion_fd = _data_fd("arena-runtime", runtime_path.with_name(name).read_bytes())
                    fds.append(companion_fd)
                    inside = posixpath.join(posixpath.dirname(SANDBOX_RUNTIME_PATH), name)
                    cmd += ["--perms", "0444", "--ro-bind-data", str(companion_fd), inside]
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


@functools.cache
def readable_runtime(runtime_path: Path) -> Path:
    """``runtime_path`` if uid 65534 may read it and its companions, else a copy that it may.

    Without the filesystem view, bwrap (started as 65534) runs the runtime from the host's tree:
    a checkout under a directory only root may enter (``mktemp -d`` makes one) is out of its
    reach. The copy sits in a directory of its own under the system's temporary directory,
    owned by root, read-only for everyone else, removed when this process exits.
    """
    files = [runtime_path, *(runtime_path.with_name(name) for name in RUNTIME_COMPANIONS)]
    if all(others_may_read(path) for path in files):
        return runtime_path
    copy = Path(tempfile.mkdtemp(prefix="arena-runtime-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for path in files:
        shutil.copyfile(path, copy / path.name)
        (copy / path.name).chmod(0o444)
    copy.chmod(0o755)
    return copy / runtime_path.name


def others_may_read(path: Path) -> bool:
    """Whether a user neither owning nor in the group of ``path`` or its directories may read it."""
    resolved = path.resolve()
    if not os.stat(resolved).st_mode & stat.S_IROTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in resolved.parents)


SETPRIV: Final = shutil.which("setpriv", path="/usr/bin:/bin")  # util-linux


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


# -- the filesystem view --------------------------------------------------------------------------


@functools.cache
def _filesystem_view(python: str) -> tuple[str, ...]:
    """bwrap arguments for a root that holds only what ``python`` maps and imports.

    Raises:
        LayerUnavailable: the interpreter could not be run to find out.
    """
    args = ["--ro-bind", os.path.realpath(python), os.path.realpath(python)]
    for d in _view_directories(python):
        args += ["--ro-bind", d, d]
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):  # merged-/usr links
        link = f"/{top}"
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
    args += ["--dir", "/dev"]
    for dev in ("null", "zero", "urandom"):
        args += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
    return tuple(args)


@functools.cache
def _view_directories(python: str) -> tuple[str, ...]:
    """The directories the view binds for ``python``: what it maps and imports from, outermost only.

    Raises:
        LayerUnavailable: the interpreter could not be run to find out.
    """
    try:
        found = subprocess.run(
            [python, "-I", "-S", "-c", _DISCOVER], capture_output=True, env={}, cwd="/",
            timeout=_PROBE_TIMEOUT_S, check=True,
        )
        facts = json.loads(found.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise LayerUnavailable(f"could not inspect the bot interpreter {python}: {exc}") from exc
    executable = os.path.realpath(python)
    dirs = {os.path.realpath(p) for p in facts["path"] if os.path.isdir(p)}
    dirs |= {os.path.dirname(os.path.realpath(p)) for p in facts["maps"] if os.path.realpath(p) != executable}
    # The ELF interpreter is named by a fixed path (/lib64/ld-linux-x86-64.so.2): keep its directory.
    dirs |= {d for d in ("/lib64", "/usr/lib64", "/lib32", "/usr/lib32") if os.path.isdir(d) and not os.path.islink(d)}
    kept: list[str] = []
    for d in sorted(dirs):  # a directory inside one already bound comes with it
        if d != "/" and not _is_under(d, kept):
            kept.append(d)
    return tuple(kept)


def _is_under(path: str, directories: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in directories)


@functools.cache
def numpy_view(python: str) -> tuple[str, ...]:
    """bwrap arguments that add numpy to ``python``'s view; () when it cannot import numpy.

    numpy's package directory is bound alone at its path (its site directory holds nothing
    else in the view), then the directories of the libraries it maps that the view lacks,
    then, for every library, the links the loader followed that lie outside the view (Debian
    picks its BLAS through ``/etc/alternatives``): as links, with their targets.
    """
    try:
        found = subprocess.run(
            [python, "-I", "-S", "-c", _DISCOVER_NUMPY, str(Path(__file__).with_name("bot_runtime.py"))],
            capture_output=True, env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}, cwd="/",
            timeout=_PROBE_TIMEOUT_S,
        )
        facts = json.loads(found.stdout) if found.returncode == 0 else None
        why = (found.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {found.returncode}"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        facts, why = None, str(exc)
    if facts is None:
        log.warning("the bot interpreter %s cannot import numpy, so seats allowed numpy will fail to load: %s",
                    python, why)
        return ()
    inside = list(_view_directories(python))
    package = os.path.realpath(facts["package"])
    args = ["--ro-bind", package, os.path.normpath(facts["package"])]
    inside.append(package)
    executable = os.path.realpath(python)
    mapped = {os.path.realpath(p) for p in facts["maps"]} - {executable}
    for directory in sorted({os.path.dirname(p) for p in mapped} - {"/"}):
        if not _is_under(directory, inside):
            args += ["--ro-bind", directory, directory]
            inside.append(directory)
    links: dict[str, str] = {}
    for path in facts["opened"]:
        hops = 0
        while os.path.islink(path) and hops < 40:  # the kernel's own limit on a chain of links
            target = os.readlink(path)
            if not _is_under(os.path.realpath(os.path.dirname(path)), inside):
                links[path] = target
            path, hops = os.path.normpath(os.path.join(os.path.dirname(path), target)), hops + 1
    for path, target in sorted(links.items()):
        args += ["--symlink", target, path]
    return tuple(args)


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
        view=_filesystem_view(python) if filesystem else (),
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
