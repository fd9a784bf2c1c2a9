"""The seat's native calls: ``prctl`` and raw system calls, through ``_ctypes``.

The runtime installs its seccomp filter with them (:func:`install_seccomp`) and the fork
server's zygote applies a forked seat's layers (``zygote.py``: death signal, dumpable, no new
privileges, Landlock, seccomp). Apart from the runtime's serve loop (``bot_runtime.py``): this
is the only code of the seat that reaches libc past the standard library's own wrappers.
"""

from __future__ import annotations

import os

__all__ = ["BPF_INSTRUCTION_BYTES", "Native", "install_seccomp", "native"]

PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 22, 38, 2
BPF_INSTRUCTION_BYTES = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class Native:
    """The few libc calls the runtime makes (``prctl``, ``syscall``), through ``_ctypes``.

    ``_ctypes`` is the C half of ``ctypes``: importing all of ``ctypes`` costs a seat some 2 ms,
    this about a fifth of that. The bot's code never sees it: the restricted runtime imports none
    of it. Built once per process (the fork server's zygote builds it before it forks seats).
    """

    def __init__(self) -> None:
        import _ctypes  # here: a seat without the seccomp layer never pays for it

        class ULong(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_ulong
            _type_ = "L"

        class Long(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_long
            _type_ = "l"

        class UShort(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_ushort
            _type_ = "H"

        class CharPointer(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_char_p
            _type_ = "z"

        class Fprog(_ctypes.Structure):  # struct sock_fprog
            _fields_ = [("len", UShort), ("filter", CharPointer)]

        class Function(_ctypes.CFuncPtr):  # a libc function returning long, with errno kept
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Long

        libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # the program itself, libc included
        self._ctypes = _ctypes
        self._prctl = Function(_ctypes.dlsym(libc, "prctl"))
        self._syscall = Function(_ctypes.dlsym(libc, "syscall"))
        self._ulong, self._pointer, self._fprog = ULong, CharPointer, Fprog

    def _checked(self, result: int, what: str) -> int:
        if result < 0:
            code = self._ctypes.get_errno()
            raise OSError(code, f"{what} failed: {os.strerror(code)}")
        return result

    def prctl(self, option: int, *args: int) -> int:
        """``prctl(option, *args)``, the unused arguments 0.

        Raises:
            OSError: the kernel refused.
        """
        padded = (option, *args, 0, 0, 0, 0)[:5]
        return self._checked(int(self._prctl(*(self._ulong(a) for a in padded))), f"prctl({option})")

    def syscall(self, number: int, *args: int | bytes) -> int:
        """A raw system call; ``bytes`` arguments pass as pointers to their data.

        Raises:
            OSError: the kernel refused.
        """
        converted = [self._pointer(a) if isinstance(a, bytes) else self._ulong(a) for a in args]
        return self._checked(int(self._syscall(self._ulong(number), *converted)), f"syscall({number})")

    def set_no_new_privs(self) -> None:
        """``PR_SET_NO_NEW_PRIVS``: no exec can grant this process privileges again (seccomp and Landlock need it).

        Raises:
            OSError: the kernel refused.
        """
        self.prctl(PR_SET_NO_NEW_PRIVS, 1)

    def install_seccomp(self, program: bytes) -> None:
        """``PR_SET_NO_NEW_PRIVS``, then ``PR_SET_SECCOMP`` with ``program`` (libseccomp's export), for good.

        Raises:
            OSError: the kernel refused (or the sandbox's first filter did).
            ValueError: ``program`` is not a whole number of instructions.
        """
        count, rest = divmod(len(program), BPF_INSTRUCTION_BYTES)
        if rest or not 0 < count <= 0xFFFF:
            raise ValueError(f"a seccomp program of {len(program)} bytes is not whole BPF instructions")
        fprog = self._fprog(count, program)  # keeps program alive and points into it
        self.set_no_new_privs()
        self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._ctypes.addressof(fprog))


_native: Native | None = None


def native() -> Native:
    """The process's :class:`Native`, made at first use."""
    global _native
    if _native is None:
        _native = Native()
    return _native


def install_seccomp(program: bytes) -> None:
    """Install a seccomp BPF program on this process (it has one thread), for good.

    Raises:
        OSError: the kernel refused (or the sandbox's first filter did).
        ValueError: ``program`` is not a whole number of instructions.
    """
    native().install_seccomp(program)
