"""One seat against another, both forked by one fork server: it sees none of the other's code,
memory or files, and can neither signal nor trace it.

A fresh seat is alone in a PID namespace of its own. Forked seats share the zygote's: a seat
could address its neighbour by pid. What stands in between, per seat (``zygote.py``): Landlock
(no ``/proc`` entry but its own; signals scoped to its own domain), "dumpable" off (no
``/proc/<pid>/mem``, ``environ``, ``maps``, ``fd``... for anyone but itself), and the runtime's
seccomp filter (signals to itself only; no ``ptrace``, ``process_vm_*``, ``pidfd_open``). The
zygote never sees a bot's code, so a seat forked after another loaded its code does not hold it.

The victim is a bot holding a secret in its code and its heap; the attacker (layer 2 off: it
imports ``os`` and ``ctypes``) is told the victim's pid as the seats see it, and tries every
way to it. All layers on, then Landlock off, then the per-seat seccomp filter off (test-only
switches of ``ForkServer``): what each of the others stops alone.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from server.matches.seats import ProcessSeat, SeatStart
from server.sandbox import Limits
from server.sandbox.forkserver import ForkServer
from tests.sandbox.test_isolation import PRELUDE, outcomes

START = SeatStart(seat=0, seed=1, configuration={})
PREFIX = "ARENA-SEAT-SECRET-"
EACCES, EPERM = 13, 1

VICTIM = """
SECRET = "{prefix}" + "{secret}"
HEAP = [SECRET * 3 for _ in range(4)]

def agent(observation, configuration):
    return len(HEAP) - 4
"""

ATTACKER = """
import ctypes, re, signal
libc = ctypes.CDLL(None, use_errno=True)
V, Z = {victim}, os.getppid()  # the victim and the zygote, as the seats see them
MINE = "{prefix}" + "{mine}"  # a secret of the attacker's own: the memory scan must find this one

def read(path):
    with open(path, "rb") as file:
        return file.read(4096)

def call(fn, *args):
    return fn(*args), ctypes.get_errno()

for what in ("environ", "cmdline", "maps", "smaps", "mem", "auxv", "stack", "syscall", "status", "stat",
             "io", "wchan", "pagemap", "fdinfo/0"):
    attempt("victim " + what.replace("/", " "), lambda: read(f"/proc/{{V}}/{{what}}"))
    attempt("zygote " + what.replace("/", " "), lambda: read(f"/proc/{{Z}}/{{what}}"))
attempt("victim fd", lambda: os.listdir(f"/proc/{{V}}/fd"))
attempt("zygote fd", lambda: os.listdir(f"/proc/{{Z}}/fd"))
attempt("zygote fd 3", lambda: read(f"/proc/{{Z}}/fd/3"))
attempt("victim fd 0", lambda: os.readlink(f"/proc/{{V}}/fd/0"))
attempt("victim root", lambda: os.listdir(f"/proc/{{V}}/root/"))
attempt("victim cwd", lambda: os.readlink(f"/proc/{{V}}/cwd"))
attempt("proc listing", lambda: sorted(os.listdir("/proc")))
attempt("kill victim", lambda: os.kill(V, signal.SIGKILL))
attempt("stop victim", lambda: os.kill(V, signal.SIGSTOP))
attempt("probe victim", lambda: os.kill(V, 0))
attempt("kill victim group", lambda: os.killpg(V, signal.SIGKILL))
attempt("kill zygote", lambda: os.kill(Z, signal.SIGKILL))
attempt("tgkill victim", lambda: call(libc.syscall, 234, V, V, 9))
attempt("ptrace attach", lambda: call(libc.ptrace, 16, V, 0, 0))
attempt("ptrace seize", lambda: call(libc.ptrace, 0x4206, V, 0, 0))
attempt("pidfd_open", lambda: call(libc.syscall, 434, V, 0))
attempt("pidfd kill", lambda: call(libc.syscall, 424, libc.syscall(434, V, 0), 9, 0, 0))  # pidfd_send_signal
attempt("pidfd getfd", lambda: call(libc.syscall, 438, libc.syscall(434, V, 0), 0, 0))  # its stdin
attempt("kcmp", lambda: call(libc.syscall, 312, os.getpid(), V, 0, 0, 0))

class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

buffer = ctypes.create_string_buffer(64)
local, remote = IOVec(ctypes.cast(buffer, ctypes.c_void_p), 64), IOVec(0x400000, 64)
attempt("process_vm_readv", lambda: call(libc.process_vm_readv, V, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))

def secrets_in_my_memory():  # its own /proc/self/mem is root's too (not dumpable): read through ctypes
    found = set()
    pattern = re.compile(b"{prefix}[0-9a-f]{{32}}")
    for line in open("/proc/self/maps"):
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        # Readable, private, not the kernel's pages nor a file mapping (its end may lie past the file's).
        if not fields[1].startswith("r") or name.startswith("[v") or fields[4] != "0" or end - start > 1 << 28:
            continue
        data = ctypes.string_at(start, end - start)
        found.update(m.group().decode() for m in pattern.finditer(data))
    return sorted(found)

attempt("memory scan", secrets_in_my_memory)
"""


def ns_pid(host_pid: int) -> int:
    """A seat's pid as the seats see it (the last NSpid)."""
    match = re.search(r"^NSpid:\s+(.*)$", Path(f"/proc/{host_pid}/status").read_text(), re.M)
    assert match is not None
    return int(match.group(1).split()[-1])


@asynccontextmanager
async def forked_seat(server: ForkServer, code: str, limits: Limits) -> AsyncIterator[ProcessSeat]:
    pending = await server.checkout(limits)
    async with server.open_seat(pending, limits, "seat") as process:
        seat = ProcessSeat(process, code, limits)
        with anyio.fail_after(20):
            await seat.start(START)
        yield seat


async def attack(**switches: bool) -> tuple[dict[str, str], str, str]:
    """The attacker's attempts against a live victim, the victim's secret, and the attacker's."""
    secret, mine = secrets.token_hex(16), secrets.token_hex(16)
    server = await anyio.to_thread.run_sync(lambda: ForkServer.launch(pool_size=0, **switches))
    try:
        victim_code = VICTIM.format(prefix=PREFIX, secret=secret)
        async with forked_seat(server, victim_code, Limits()) as victim:
            assert (await victim.act(1, {})).action == 0
            pid = ns_pid(victim.process.pid)
            # Forked on demand, after the victim loaded its code: whatever the zygote held, it holds too.
            code = PRELUDE + textwrap.dedent(ATTACKER.format(victim=pid, prefix=PREFIX, mine=mine))
            async with forked_seat(server, code, Limits(restricted=False)) as attacker:
                assert (await attacker.act(1, {})).action == 0
            assert (await victim.act(2, {})).action == 0  # alive, not stopped, still playing
            assert victim.process.exit_status is None
        seen = outcomes(attacker.log_text())
        assert secret not in attacker.log_text()
        assert victim.log_text() == ""
    finally:
        await anyio.to_thread.run_sync(server.close)
    return seen, secret, mine


PROC_FILES = ("environ", "cmdline", "maps", "smaps", "mem", "auxv", "stack", "syscall", "status", "stat", "io",
              "wchan", "pagemap", "fdinfo 0")
SECRET_FILES = ("environ", "maps", "smaps", "mem", "auxv", "stack", "syscall", "io", "pagemap", "fdinfo 0")


def assert_no_signal_or_trace(seen: dict[str, str]) -> None:
    for name in ("kill victim", "stop victim", "probe victim", "kill victim group", "kill zygote"):
        assert seen[name] == f"PermissionError errno={EPERM}", (name, seen)
    for name in ("tgkill victim", "ptrace attach", "ptrace seize", "pidfd_open", "pidfd kill", "pidfd getfd", "kcmp",
                 "process_vm_readv"):
        assert seen[name] == f"OK (-1, {EPERM})", (name, seen)


def assert_no_secret_in_memory(seen: dict[str, str], secret: str, mine: str) -> None:
    assert seen["memory scan"] == f"OK [{PREFIX + mine!r}]"  # its own secret found: the scan works
    assert secret not in seen["memory scan"]


async def test_a_seat_cannot_reach_another_seat_with_every_layer() -> None:
    seen, secret, mine = await attack()
    for what in PROC_FILES:
        for whose in ("victim", "zygote"):
            assert seen[f"{whose} {what}"] == f"PermissionError errno={EACCES}", (whose, what, seen)
    for name in ("victim fd", "victim fd 0", "victim root", "victim cwd", "zygote fd", "zygote fd 3", "proc listing"):
        assert seen[name] == f"PermissionError errno={EACCES}", (name, seen)
    assert_no_signal_or_trace(seen)
    assert_no_secret_in_memory(seen, secret, mine)


async def test_without_landlock_dumpable_off_and_seccomp_still_hold() -> None:
    seen, secret, mine = await attack(seat_landlock=False)
    for what in SECRET_FILES:  # neither the victim nor the zygote is dumpable: their private files are root's
        for whose in ("victim", "zygote"):
            assert seen[f"{whose} {what}"] == f"PermissionError errno={EACCES}", (whose, what, seen)
    for name in ("victim fd", "victim fd 0", "victim root", "victim cwd", "zygote fd", "zygote fd 3"):
        assert seen[name] == f"PermissionError errno={EACCES}", (name, seen)
    # What Landlock hides beyond that: that the victim exists, its state and its command line
    # (the zygote's: no secret in it).
    assert "/arena/zygote.py" in seen["victim cmdline"] and seen["victim status"].startswith("OK b'Name:")
    assert seen["proc listing"].startswith("OK [")
    assert_no_signal_or_trace(seen)
    assert_no_secret_in_memory(seen, secret, mine)


async def test_without_the_seats_seccomp_filter_landlock_still_holds() -> None:
    seen, secret, mine = await attack(seat_seccomp=False)
    for what in PROC_FILES:
        assert seen[f"victim {what}"] == f"PermissionError errno={EACCES}", (what, seen)
    for name in ("kill victim", "stop victim", "probe victim", "kill victim group", "kill zygote"):
        assert seen[name] == f"PermissionError errno={EPERM}", (name, seen)  # Landlock's signal scope
    assert seen["tgkill victim"] == f"OK (-1, {EPERM})"
    # The zygote's own filter (which it needs to fork) lets pidfd_open through, but nothing that uses the
    # pidfd on another process; ptrace, process_vm_readv and kcmp stay outside it too.
    assert re.fullmatch(r"OK \(\d+, \d+\)", seen["pidfd_open"]), seen["pidfd_open"]
    for name in ("ptrace attach", "ptrace seize", "pidfd kill", "pidfd getfd", "kcmp", "process_vm_readv"):
        assert seen[name] == f"OK (-1, {EPERM})", (name, seen)
    assert_no_secret_in_memory(seen, secret, mine)


@pytest.mark.parametrize("switch", ["seat_landlock", "seat_seccomp"])
def test_the_switches_are_on_by_default(switch: str) -> None:
    assert ForkServer.__init__.__kwdefaults__ is not None and ForkServer.__init__.__kwdefaults__[switch] is True
