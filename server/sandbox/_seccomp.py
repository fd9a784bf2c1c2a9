"""The seccomp programs of layer 7, built with libseccomp (through ``pyseccomp``) once per process.

Three programs share one allow-list:

* bubblewrap's, for a fresh seat (:func:`seccomp_program`): bwrap installs it on its reaper and
  right before it execs the interpreter, so ``execve`` and ``wait4`` stay allowed, and the two
  ``prctl`` calls that installing the next program takes;
* the runtime's (``after_load=True``): the same list without ``execve``, ``execveat``, ``wait4``
  and ``prctl``, which the seat installs on itself before the bot's code runs. Signals go only to
  the seat itself: ``kill``/``tkill``/``tgkill`` with its own pid;
* the zygote's (:func:`zygote_seccomp_program`), for the fork server (``forkserver.py``): bwrap
  installs it on the zygote, which forks seats, so it adds what forking and the per-seat layers
  take (``clone`` without namespace, thread or shared-memory flags, ``pidfd_open``, ``setsid``,
  Landlock, four ``prctl`` options, ``sendmsg``/``recvmsg`` on the sockets it inherited: never
  ``socket`` itself). Every forked seat then installs the runtime's program, with its own pid
  written into a template (:func:`seat_seccomp_template`), before the bot's code runs. Filters
  stack: a call passes only if every filter allows it, so a seat gets the runtime's list.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from typing import Any, Final

from protocol.errors import LayerUnavailable

__all__ = [
    "ALLOWED_SYSCALLS",
    "CONDITIONAL_SYSCALLS",
    "LOADER_SYSCALLS",
    "SeccompTemplate",
    "seat_seccomp_template",
    "seccomp_program",
    "zygote_seccomp_program",
]

# The calls a seat's interpreter makes from exec to exit (traced on Python 3.11 with the bot
# runtime loading a bot and answering moves), plus a few harmless relatives that a different
# libc or interpreter build may pick instead (``fstat`` for ``newfstatat``, ``dup3``...).
ALLOWED_SYSCALLS: Final = (
    # file descriptors that are already open (the pipes), and read-only lookups
    "read", "readv", "pread64", "write", "writev", "close", "lseek", "fcntl", "dup", "dup2", "dup3",
    "newfstatat", "fstat", "stat", "lstat", "statx", "readlink", "readlinkat", "access", "faccessat",
    "faccessat2", "getdents64", "getcwd",
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    # signals (handlers and masks only: sending is below) and the thread the interpreter runs on
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "futex", "set_tid_address",
    "set_robust_list", "rseq", "arch_prctl", "gettid", "getpid", "getppid",
    "getuid", "geteuid", "getgid", "getegid",
    # clocks, randomness, system facts the interpreter reads at start-up
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "getrandom",
    "sysinfo", "uname", "sched_yield", "sched_getaffinity", "getrusage", "times",
    # the end of the process; execve and wait4 for bwrap (its exec of the interpreter, its reaper)
    "exit", "exit_group", "execve", "wait4",
)  # fmt: skip
# Allowed with a condition on their arguments (see ``_build``).
CONDITIONAL_SYSCALLS: Final = ("open", "openat", "ioctl", "prlimit64", "kill", "tkill", "tgkill", "prctl")
# Left out of the program the runtime installs on itself once loaded: bwrap's exec of the
# interpreter and its reaper's wait are done by then (execveat is not in the list at all).
LOADER_SYSCALLS: Final = ("execve", "execveat", "wait4")
# What the zygote adds for forking seats and applying their layers (see the module docstring).
ZYGOTE_SYSCALLS: Final = (
    "sendmsg", "recvmsg", "sendto", "recvfrom", "getsockopt", "getsockname", "poll", "ppoll",
    "pidfd_open", "waitid", "setsid", "getpgid", "getsid", "close_range",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
)  # fmt: skip
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS, _SECCOMP_MODE_FILTER = 1, 4, 22, 38, 2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_TCGETS, _FIONCLEX, _FIOCLEX = 0x5401, 0x5450, 0x5451  # isatty() and os.set_inheritable()
# clone() flags the zygote may not use: new namespaces, threads, shared memory or a new parent.
_CLONE_FORBIDDEN = (
    0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000  # NEW*
    | 0x00010000 | 0x00000100 | 0x00004000 | 0x00008000  # CLONE_THREAD, CLONE_VM, CLONE_VFORK, CLONE_PARENT
)
# Stand-ins for a seat's pid in the template: distinct from every constant of the program.
_MAGIC_PIDS = (0x3A5E7A11, 0x2C4F1D33)
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter


@functools.cache
def seccomp_program(self_pid: int | None, *, after_load: bool = False) -> bytes:
    """The allow-list as BPF for a fresh seat (bwrap's), or the runtime's with ``after_load``.

    ``self_pid``: the seat's pid as it sees it, the only one it may signal (None: no signals).

    Raises:
        LayerUnavailable: no usable binding or libseccomp.
    """
    return _build(self_pid, after_load=after_load, zygote=False)


@functools.cache
def zygote_seccomp_program() -> bytes:
    """The fork server's zygote's program: the list plus what forking seats takes.

    Raises:
        LayerUnavailable: no usable binding or libseccomp.
    """
    return _build(None, after_load=False, zygote=True)


class SeccompTemplate:
    """The runtime's program with a stand-in pid, and where to write a seat's own pid into it."""

    __slots__ = ("offsets", "program")

    def __init__(self, program: bytes, offsets: tuple[int, ...]) -> None:
        self.program = program
        self.offsets = offsets  # byte offsets of the 32-bit ``k`` fields to overwrite

    def for_pid(self, pid: int) -> bytes:
        """The program a seat with ``pid`` installs (what :func:`seccomp_program` would build for it)."""
        out = bytearray(self.program)
        for offset in self.offsets:
            struct.pack_into("=I", out, offset, pid)
        return bytes(out)


@functools.cache
def seat_seccomp_template() -> SeccompTemplate:
    """The runtime's program for any pid: built twice with two stand-ins, checked to differ only there.

    A forked seat cannot run libseccomp (its interpreter has no third-party module); it writes
    its pid into the template's comparisons instead. Building with two stand-ins and comparing
    proves that those comparisons are the only place the pid reaches.

    Raises:
        LayerUnavailable: no usable binding, or the programs differ elsewhere.
    """
    first, second = (_build(magic, after_load=True, zygote=False) for magic in _MAGIC_PIDS)
    if len(first) != len(second):
        raise LayerUnavailable("libseccomp laid out the per-seat program differently for two pids")
    offsets = []
    for at in range(0, len(first), _BPF_INSTRUCTION.size):
        a, b = (_BPF_INSTRUCTION.unpack_from(p, at) for p in (first, second))
        if a == b:
            continue
        if a[:3] != b[:3] or a[0] != _BPF_JEQ_K or (a[3], b[3]) != _MAGIC_PIDS:
            raise LayerUnavailable(f"the per-seat program depends on the pid beyond comparisons (at byte {at})")
        offsets.append(at + 4)
    if not offsets:
        raise LayerUnavailable("the per-seat program does not compare the pid anywhere")
    return SeccompTemplate(first, tuple(offsets))


def _build(self_pid: int | None, *, after_load: bool, zygote: bool) -> bytes:
    try:
        import pyseccomp as sc  # type: ignore[import-untyped,import-not-found,unused-ignore]  # ctypes, libseccomp.so.2
    except ImportError as exc:
        raise LayerUnavailable(f"seccomp binding missing: pip install pyseccomp ({exc})") from exc
    except (OSError, RuntimeError) as exc:  # the binding raises RuntimeError when libseccomp is not found
        raise LayerUnavailable(f"libseccomp not loadable: {exc} (apt-get install libseccomp2)") from exc
    try:
        flt = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # e.g. 32-bit calls through int 0x80
        names = [name for name in ALLOWED_SYSCALLS if not (after_load and name in LOADER_SYSCALLS)]
        if zygote:
            names += ZYGOTE_SYSCALLS
        rules: list[tuple[str, tuple[Any, ...]]] = [(name, ()) for name in names]
        rules += [
            ("openat", (sc.Arg(2, sc.MASKED_EQ, _WRITE_FLAGS, 0),)),
            ("open", (sc.Arg(1, sc.MASKED_EQ, _WRITE_FLAGS, 0),)),
            ("prlimit64", (sc.Arg(0, sc.EQ, 0),)),  # its own limits only (it can only lower them)
        ]
        if not after_load:  # what the runtime calls to install the second program, nothing else
            rules += [
                ("prctl", (sc.Arg(0, sc.EQ, _PR_SET_NO_NEW_PRIVS), sc.Arg(1, sc.EQ, 1))),
                ("prctl", (sc.Arg(0, sc.EQ, _PR_SET_SECCOMP), sc.Arg(1, sc.EQ, _SECCOMP_MODE_FILTER))),
            ]
        if zygote:  # a seat's first steps after the fork; forks without namespaces, threads or shared memory
            rules += [
                ("prctl", (sc.Arg(0, sc.EQ, _PR_SET_PDEATHSIG),)),
                ("prctl", (sc.Arg(0, sc.EQ, _PR_SET_DUMPABLE), sc.Arg(1, sc.EQ, 0))),
                ("clone", (sc.Arg(0, sc.MASKED_EQ, _CLONE_FORBIDDEN, 0),)),
            ]
        # The kernel reads ioctl's command as 32 bits: compare those only.
        rules += [("ioctl", (sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, cmd),)) for cmd in (_TCGETS, _FIOCLEX, _FIONCLEX)]
        if zygote:  # each seat narrows this to itself with the runtime's program
            rules += [("kill", ()), ("tkill", ()), ("tgkill", ())]
        elif self_pid is not None:  # signals to itself (raise(), abort(), os.kill(os.getpid(), ...))
            rules += [
                ("kill", (sc.Arg(0, sc.EQ, self_pid),)),
                ("tkill", (sc.Arg(0, sc.EQ, self_pid),)),
                ("tgkill", (sc.Arg(0, sc.EQ, self_pid), sc.Arg(1, sc.EQ, self_pid))),
            ]
        for name, args in rules:
            if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
                continue  # not a call on this architecture (e.g. open, arch_prctl on aarch64)
            flt.add_rule(sc.ALLOW, name, *args)
        if zygote and sc.resolve_syscall(sc.Arch.NATIVE, "clone3") >= 0:
            # clone3's flags sit in memory, out of the filter's reach: ENOSYS makes libc fall back to clone.
            flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        fd = os.memfd_create("arena-seccomp-build", os.MFD_CLOEXEC)
        with os.fdopen(fd, "w+b") as out:
            flt.export_bpf(out)
            out.seek(0)
            program = out.read()
    except OSError as exc:
        raise LayerUnavailable(f"libseccomp could not build the filter: {exc}") from exc
    if not program:
        raise LayerUnavailable("libseccomp exported an empty filter")
    return program
