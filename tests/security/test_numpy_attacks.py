"""Attacks through numpy, the operator's opt-in, on layer 2 alone.

With ``allow_numpy`` the bot may import numpy, numpy.random, numpy.linalg and numpy.fft, as
stand-ins that hold numpy's vetted public members (``restricted.py``, ``_numpy_guards.py``).
Every attack here is a real bot in a real match with ``Limits(allow_numpy=True)``, the validator
(layer 1) not on the path (``open_process_seat`` never calls it) and no bubblewrap layer
(``isolation_override(None)``): only the restricted runtime stands between the bot and its goal.
A bot prints its marker only if its attack worked (the marker is never whole in its source, so a
traceback quoting a line cannot fake it) and then plays a legal move; each test asserts that the
attacking seat lost with ERROR for the expected reason, at load or at its first move, that the
marker is in neither its moves nor its log, and that its process is gone. Controls run some of
the same bots with layer 2 off (``restricted=False``): the attack then gets through, so it
really attacks (none of them touches freed memory: each stops once the memory is freed).

The last tests run some of the attacks again with every layer, in both seat modes (a fresh
sandboxed process, and a seat forked by a fork server whose pool allows numpy).
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

import anyio
import pytest

from protocol.messages import StepRecord
from server.matches.games import get_game, resolve_config
from server.matches.runner import MatchResult, MatchSpec, run_match
from server.matches.seats import ProcessSeat, open_process_seat
from server.sandbox import Limits, SeatLauncher, serve_seats
from server.sandbox.isolation import isolation_override

NUMPY = Limits(allow_numpy=True)
UNRESTRICTED = Limits(allow_numpy=True, restricted=False)
MARKER = "PWNED-numpy"
SPLIT_MARKER = "'PWNED' + '-numpy'"  # how the bots spell it
FIRST_FREE = "def agent(obs, config):\n    return obs.board.index(0)\n"
MATCH_LIMIT_S = 30.0


def at_move(body: str) -> str:
    """A tic-tac-toe bot that runs ``body`` (which sets ``x``) at its first move, then boasts."""
    return (
        "import numpy as np\n\n"
        "def agent(obs, config):\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        + f"    print({SPLIT_MARKER}, repr(x)[:200])\n"
        + "    return obs.board.index(0)\n"
    )


def at_load(body: str) -> str:
    """A tic-tac-toe bot that runs ``body`` (which sets ``x``) when its module loads, then boasts."""
    return (
        "import numpy as np\n"
        + textwrap.dedent(body).strip()
        + f"\nprint({SPLIT_MARKER}, repr(x)[:200])\n"
        + FIRST_FREE
    )


# Memory the bot could free under an array: each attack stops right after freeing it.
FREED = "b = bytearray(64)\n"  # resized below: its 64 bytes move, the array would keep the old address
GROW = "b.extend(bytes(1 << 16))\nx = 'the buffer moved under the array'\n"

# (id, bot, a fact the seat's reason must hold)
ATTACKS = [
    # -- native pointers
    ("ctypeslib-import", at_load("import numpy.ctypeslib\nx = 1"), "import of 'numpy.ctypeslib' is not allowed"),
    ("ctypeslib-member", at_load("x = np.ctypeslib.as_ctypes"),
     "RestrictedError: attribute 'ctypeslib' is not allowed"),
    ("ndarray-ctypes", at_move("x = np.zeros(3).ctypes.data"), "RestrictedError: attribute 'ctypes' is not allowed"),
    ("ndarray-ctypes-dynamic", at_move("x = getattr(np.zeros(3), 'ct' + 'ypes').data"),
     "AttributeError: attribute 'ctypes' is not allowed in the arena"),
    ("bitgen-capsule", at_move("x = np.random.PCG64().capsule"), "RestrictedError: attribute 'capsule' is not allowed"),
    ("bitgen-capsule-dynamic", at_move("x = getattr(np.random.PCG64(), 'cap' + 'sule')"),
     "AttributeError: attribute 'capsule' is not allowed in the arena"),
    ("bitgen-cffi-dynamic", at_move("x = getattr(np.random.MT19937(), 'cf' + 'fi')"),
     "AttributeError: attribute 'cffi' is not allowed in the arena"),
    ("from-dlpack", at_move("x = np.from_dlpack(np.zeros(3))"), "module 'numpy' has no attribute 'from_dlpack'"),
    ("array-interface", at_move("x = np.zeros(3).__array_interface__"),
     "RestrictedError: attribute '__array_interface__' is not allowed"),
    # -- arbitrary strides
    ("as-strided", at_move("x = np.lib.stride_tricks.as_strided(np.zeros(1), (1 << 20,), (8,))"),
     "RestrictedError: attribute 'stride_tricks' is not allowed"),
    ("lib-dynamic", at_move("x = getattr(np, 'l' + 'ib')"), "module 'numpy' has no attribute 'lib' in the arena"),
    ("core-dynamic", at_move("x = getattr(np, 'co' + 're').multiarray"), "module 'numpy' has no attribute 'core'"),
    ("ndarray-strides", at_move("x = np.ndarray((2,), np.uint8, strides=(1 << 40,))"),
     "TypeError: numpy.ndarray() over a buffer is not available in the arena"),
    # -- memory freed under an array
    ("ndarray-buffer", at_move(FREED + "a = np.ndarray((64,), np.uint8, buffer=b)\n" + GROW),
     "TypeError: numpy.ndarray() over a buffer is not available in the arena"),
    ("ndarray-buffer-array-module", at_move(
        "import array\nb = array.array('b', bytes(64))\na = np.ndarray((64,), np.int8, buffer=b)\n" + GROW),
     "TypeError: numpy.ndarray() over a buffer is not available in the arena"),
    ("type-of-array-buffer", at_move(FREED + "a = type(np.zeros(1))((64,), np.uint8, b)\n" + GROW),
     "TypeError: numpy.ndarray() over a buffer is not available in the arena"),
    ("ndarray-subclass", at_move(FREED + "class A(np.ndarray):\n    pass\na = A((64,), np.uint8, b)\n" + GROW),
     "TypeError: subclasses of numpy.ndarray are not available in the arena"),
    ("recarray-buf", at_move(FREED + "a = np.recarray((8,), dtype=[('v', 'i8')], buf=b)\n" + GROW),
     "module 'numpy' has no attribute 'recarray'"),
    ("chararray-buffer", at_move(FREED + "a = np.chararray((8,), itemsize=8, buffer=b)\n" + GROW),
     "module 'numpy' has no attribute 'chararray'"),
    ("resize-no-refcheck", at_move(
        "a = np.zeros(1000)\nview = a[:]\na.resize(1 << 20, refcheck=False)\nx = 'resized under its view'"),
     "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-unbound", at_move(
        "a = np.zeros(1000)\nview = a[:]\nnp.ndarray.resize(a, 1 << 20, refcheck=False)\nx = 'resized'"),
     "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-dynamic", at_move(
        "a = np.zeros(1000)\nview = a[:]\ngetattr(a, 're' + 'size')(1 << 20, refcheck=False)\nx = 'resized'"),
     "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-matrix", at_move(
        "a = np.matrix(np.zeros((10, 10)))\nview = a[:]\nnp.matrix.resize(a, (1 << 10, 1 << 10), refcheck=False)"
        "\nx = 'resized'"), "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-super", at_move(
        "a = np.matrix(np.zeros((10, 10)))\nview = a[:]\nsuper(np.matrix, a).resize((1 << 10, 1 << 10), refcheck=False)"
        "\nx = 'resized'"), "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-subclass-super", at_move(
        "class M(np.matrix):\n    def grow(self):\n        super().resize((1 << 10, 1 << 10), refcheck=False)\n"
        "a = M(np.zeros((10, 10)))\nview = a[:]\na.grow()\nx = 'resized'"),
     "ValueError: ndarray.resize(refcheck=False) is not available in the arena"),
    ("resize-pattern", at_move(
        "a = np.zeros(1000)\nmatch a:\n    case np.ndarray(resize=r):\n        r(1 << 20, refcheck=False)\n"
        "x = 'resized'"), "RestrictedError: attribute 'resize' cannot be captured by a pattern"),
    ("data-store", at_move("a = np.zeros(1000)\nview = a[:]\na.data = bytearray(8000)\nx = 'data replaced'"),
     "TypeError: assigning numpy.ndarray.data is not available in the arena"),
    ("data-setattr", at_move("a = np.zeros(1000)\nview = a[:]\nsetattr(a, 'da' + 'ta', bytearray(8000))\nx = 1"),
     "TypeError: assigning numpy.ndarray.data is not available in the arena"),
    ("writeable-bytes", at_move("a = np.frombuffer(b'interned?', np.uint8)\na.setflags(write=True)\na[0] = 0\nx = a"),
     "ValueError: cannot set WRITEABLE flag to True of this array"),
    ("object-view", at_move("x = np.zeros(2, np.int64).view(object)"),
     "TypeError: Cannot change data-type for object array"),
    # -- files
    ("load-pickle", at_move("x = np.load('/etc/hostname', allow_pickle=True)"),
     "module 'numpy' has no attribute 'load'"),
    ("save", at_move("np.save('/tmp/arena-pwned-numpy', np.zeros(1))\nx = 1"),
     "module 'numpy' has no attribute 'save'"),
    ("fromfile", at_move("x = np.fromfile('/etc/hostname', dtype=np.uint8)"),
     "module 'numpy' has no attribute 'fromfile'"),
    ("loadtxt", at_move("x = np.loadtxt('/etc/hostname', dtype=str)"), "module 'numpy' has no attribute 'loadtxt'"),
    ("genfromtxt", at_move("x = np.genfromtxt('/etc/hostname', dtype=str)"),
     "module 'numpy' has no attribute 'genfromtxt'"),
    ("recfromtxt", at_move("x = np.recfromtxt('/etc/hostname', dtype=str, delimiter='\\n')"),
     "module 'numpy' has no attribute 'recfromtxt'"),
    ("memmap", at_move("x = np.memmap('/etc/hostname', mode='r')"), "module 'numpy' has no attribute 'memmap'"),
    ("datasource", at_move("x = np.DataSource().open('/etc/hostname').read()"),
     "module 'numpy' has no attribute 'DataSource'"),
    ("tofile", at_move("np.zeros(3).tofile('/tmp/arena-pwned-numpy')\nx = 1"),
     "RestrictedError: attribute 'tofile' is not allowed"),
    ("dump-dynamic", at_move("getattr(np.zeros(3), 'du' + 'mp')('/tmp/arena-pwned-numpy')\nx = 1"),
     "AttributeError: attribute 'dump' is not allowed in the arena"),
    ("source", at_move("x = np.source(np.zeros)"), "module 'numpy' has no attribute 'source'"),
    # -- modules by name, and the caller's frame
    ("lookfor", at_move("x = np.lookfor('system', module='os')"), "module 'numpy' has no attribute 'lookfor'"),
    ("add-newdoc", at_move("np.add_newdoc('os', 'system', 'x')\nx = 1"),
     "module 'numpy' has no attribute 'add_newdoc'"),
    ("info", at_move("x = np.info('os')"), "module 'numpy' has no attribute 'info'"),
    ("bmat-frame", at_move("import heapq\nx = heapq.nsmallest(1, ['_' + '_all_' + '_'], key=np.bmat)"),
     "module 'numpy' has no attribute 'bmat'"),
    ("r-frame", at_move("import string\nx = string.Template('$' + '_' * 2 + 'all' + '_' * 2).substitute(np.r_)"),
     "module 'numpy' has no attribute 'r_'"),
    ("testing", at_move("x = np.testing.assert_equal"), "module 'numpy' has no attribute 'testing'"),
    ("random-test", at_move("x = np.random.test()"), "module 'numpy.random' has no attribute 'test'"),
    ("f2py", at_move("x = getattr(np, 'f2' + 'py')"), "module 'numpy' has no attribute 'f2py'"),
]
# Attacks that get through with layer 2 off, stopping as soon as they have (never using freed memory).
CONTROLS = [
    "bitgen-capsule", "ndarray-buffer", "ndarray-buffer-array-module", "recarray-buf", "resize-no-refcheck",
    "resize-super", "resize-subclass-super", "data-store", "recfromtxt", "bmat-frame", "r-frame",
]


class Recorder:
    def __init__(self) -> None:
        self.moves: list[object] = []  # the attacker's

    async def record_step(self, record: StepRecord) -> None:
        if record.actions[0] is not None:
            self.moves.append(record.actions[0])


@contextmanager
def layers(alone: bool) -> Iterator[None]:
    """``alone``: no bubblewrap layer (namespaces, seccomp, filesystem view), layer 2 stands alone."""
    if alone:
        with isolation_override(None):
            yield
    else:
        yield


async def play(
    launcher: SeatLauncher, bot: str, limits: Limits, *, alone: bool = True
) -> tuple[MatchResult, list[object], str, list[ProcessSeat]]:
    """The attacker against a good bot, seats opened by ``launcher``: the result, the attacker's
    moves and log, the seats."""
    spec = MatchSpec("tictactoe", resolve_config(get_game("tictactoe"), {}), seed=3)
    recorder = Recorder()
    with anyio.fail_after(MATCH_LIMIT_S), layers(alone):
        async with AsyncExitStack() as stack:
            seats = [await stack.enter_async_context(open_process_seat(launcher, code, seat_limits))
                     for code, seat_limits in ((bot, limits), (FIRST_FREE, Limits()))]
            result = await run_match(spec, seats, recorder)
    return result, recorder.moves, seats[0].log_text(), seats


def assert_stopped(result: MatchResult, moves: list[object], log: str, seats: list[ProcessSeat], reason: str) -> None:
    attacker, opponent = result.seats
    assert attacker.status == "ERROR", (attacker, log)
    assert attacker.reason is not None and reason in attacker.reason, (attacker.reason, log)
    assert (attacker.reward, opponent.status) == (-1.0, "DONE"), result
    assert MARKER not in log and MARKER not in repr(moves), log
    assert all(seat.process.exit_status is not None for seat in seats)  # reaped


@pytest.mark.parametrize(("bot", "reason"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_layer_2_alone_refuses_the_attack(launcher: SeatLauncher, bot: str, reason: str) -> None:
    result, moves, log, seats = await play(launcher, bot, NUMPY)
    assert_stopped(result, moves, log, seats, reason)


@pytest.mark.parametrize("name", CONTROLS)
async def test_without_layer_2_the_attack_gets_through(launcher: SeatLauncher, name: str) -> None:
    bot = dict((a[0], a[1]) for a in ATTACKS)[name]
    result, _, log, _ = await play(launcher, bot, UNRESTRICTED)
    assert MARKER in log, log
    assert result.seats[0].status == "DONE", result


def test_every_control_is_an_attack() -> None:
    assert set(CONTROLS) <= {a[0] for a in ATTACKS}


# -- the same attacks with every layer, in both seat modes ------------------------------------------


@asynccontextmanager
async def full_sandbox(mode: str) -> AsyncIterator[SeatLauncher]:
    if mode == "fork":
        async with serve_seats("fork", limits=NUMPY, pool_size=1) as launcher:
            yield launcher
    else:
        yield SeatLauncher("fresh")


EVERY_LAYER = ["ndarray-buffer", "resize-dynamic", "data-setattr", "bitgen-capsule-dynamic", "bmat-frame"]


@pytest.mark.parametrize("mode", ["fresh", "fork"])
async def test_every_layer_refuses_them_in_both_seat_modes(mode: str) -> None:
    attacks = {a[0]: a[1:] for a in ATTACKS}
    async with full_sandbox(mode) as launcher:
        for name in EVERY_LAYER:
            bot, reason = attacks[name]
            result, moves, log, seats = await play(launcher, bot, NUMPY, alone=False)
            assert [seat.process.mode for seat in seats] == [mode, mode]
            assert all(seat.process.is_sandboxed for seat in seats)
            assert_stopped(result, moves, log, seats, reason)
