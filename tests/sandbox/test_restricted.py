"""Layer 2 of the sandbox, the restricted runtime, proven by real bots on its own.

Every attack is a real bot played in a real match through ``open_process_seat`` and
``run_match``: that path never calls the validator (layer 1), and the bubblewrap layers (6-8)
are switched off here, so only the restricted runtime stands between the bot and its goal.
An attack that works prints ``PWNED`` and plays a legal move; each test asserts that the
attacking seat lost with ERROR for the expected reason, at load or at its first move, and
that the marker is in neither its moves nor its log. Control tests turn layer 2 off
(``Limits(restricted=False)``) and show the same kind of bot getting through, so the attacks
really attack. Acceptance tests show that the example bots and realistic Kaggle-style bots
still play normally with layer 2 on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from server.sandbox import Limits, SeatLauncher
from server.sandbox.isolation import isolation_override
from server.sandbox.layers import sandbox_layers
from server.sandbox.seat._guards import HIDDEN_CLASSES, SafeType
from server.sandbox.seat._stdlib_guards import forward_ref_without_code
from server.sandbox.validator import validate_source
from tests.sandbox.restricted_play import (
    FIRST_FREE,
    MARKER,
    UNRESTRICTED,
    ListRecorder,
    actions_of,
    at_load,
    in_agent,
    play,
)


@pytest.fixture(autouse=True)
def restricted_runtime_alone() -> Iterator[None]:
    """No bubblewrap layers (namespaces, seccomp, filesystem view): layer 2 stands alone."""
    with isolation_override(None):
        yield


GENERATOR = "def gen():\n    yield 1\n"
TEMPLATE = "t = '{0.' + '_' * 2 + 'class' + '_' * 2 + '}'\n"  # built at run time: no literal dunder

# (id, bot, a fact the seat's reason must hold)
ATTACKS = [
    # -- builtins recovery
    ("builtins-name", at_load("x = __builtins__"), "RestrictedError: name '__builtins__'"),
    ("subclasses", in_agent("x = ().__class__.__base__.__subclasses__()"), "RestrictedError: attribute '__class__'"),
    ("type-subclasses", in_agent("x = type.__subclasses__(object)"), "attribute '__subclasses__'"),
    ("getattr-built-name", in_agent("x = getattr(0, '__cl' + 'ass__')"), "AttributeError: attribute '__class__'"),
    ("list-class", in_agent("x = [].__class__"), "attribute '__class__'"),
    ("print-self", in_agent("x = print.__self__"), "attribute '__self__'"),
    ("lambda-globals", in_agent("x = (lambda: 0).__globals__"), "attribute '__globals__'"),
    ("getattr-lying-str", in_agent("""
        class S(str):
            def startswith(self, *args):
                return False
        x = getattr(len, S('__self__'))
     """), "AttributeError: attribute '__self__' is not allowed"),
    ("type-of-type", in_agent("x = type(int)('X', (), {})"), "TypeError: type() takes exactly one argument"),
    ("type-3-args", in_agent("x = type('X', (), {'__exit__': len})"), "TypeError: type() takes exactly one argument"),
    ("abc-metaclass", in_agent("import collections.abc\nx = type(collections.abc.Sequence)('X', (), {})"),
     "TypeError: type() takes exactly one argument"),
    ("metaclass-keyword", at_load("class X(metaclass=print):\n    pass\nx = X"), "metaclass= is not allowed"),
    # -- module internals that lead back to os, sys or builtins
    ("random-os", in_agent("import random\nx = random._os"), "attribute '_os'"),
    ("random-init-globals", in_agent("import random\nx = random.Random.__init__.__globals__"), "'__init__'"),
    ("sys-modules-via-statistics", in_agent("import statistics\nx = statistics.sys.modules"), "attribute 'sys'"),
    ("getattr-sys-via-typing", in_agent("import typing\nx = getattr(typing, 'sy' + 's')"), "attribute 'sys'"),
    ("dataclasses-sys", in_agent("import dataclasses\nx = getattr(dataclasses, 'builtins')"), "'builtins'"),
    ("json-decoder", in_agent("import json\nx = json.decoder.c_scanstring"),
     "module 'json' has no attribute 'decoder'"),
    ("from-json-import-decoder", at_load("from json import decoder\nx = decoder.re"), "cannot import name 'decoder'"),
    ("collections-abc-loader", in_agent("import collections.abc\nx = collections.abc.__loader__"), "'__loader__'"),
    ("from-random-import-os", at_load("from random import _os\nx = _os"), "private name '_os'"),
    ("typing-get-type-hints", in_agent("""
        import typing
        def f(a: "print.__self__"):
            pass
        x = typing.get_type_hints(f)
     """), "module 'typing' has no attribute 'get_type_hints'"),
    ("typing-get-origin", in_agent("import typing\nx = typing.get_origin(typing.Type)"), "no attribute 'get_origin'"),
    # -- str.format and friends reach attributes by themselves
    ("string-formatter", in_agent("import string\nx = string.Formatter().get_field('0.__class__', [1], {})"),
     "module 'string' has no attribute 'Formatter'"),
    ("format-attribute", in_agent("x = '{0.__class__}'.format(1)"), "ValueError: format field '0.__class__'"),
    ("format-item", in_agent("x = '{0[0]}'.format([print])"), "ValueError: format field '0[0]'"),
    ("format-built-template", in_agent(TEMPLATE + "x = t.format(1)"), "format field '0.__class__'"),
    ("format-unbound", in_agent(TEMPLATE + "x = str.format(t, 1)"), "format field '0.__class__'"),
    ("format-map", in_agent(TEMPLATE.replace("0.", "a.") + "x = t.format_map({'a': 1})"), "format field 'a.__class__'"),
    ("format-via-getattr", in_agent(TEMPLATE + "x = getattr(t, 'format')(1)"), "format field '0.__class__'"),
    ("format-in-spec", in_agent("x = '{0:{1.real}}'.format(1, 2)"), "format field '1.real'"),
    ("format-pattern-capture", in_agent("match 'a':\n    case str(format=f):\n        x = f"),
     "attribute 'format' cannot be captured"),
    ("fstring", in_agent("y = 1\nx = f'{y.__class__}'"), "attribute '__class__'"),
    # -- builtins that are not there
    *[(f"builtin-{name}", in_agent(call), f"NameError: name '{name}' is not defined") for name, call in [
        ("vars", "x = vars()"), ("globals", "x = globals()"), ("locals", "x = locals()"), ("dir", "x = dir()"),
        ("eval", "x = eval('1')"), ("exec", "x = exec('y = 1')"), ("compile", "x = compile('1', 'f', 'eval')"),
        ("open", "x = open('/etc/passwd').read()"), ("breakpoint", "x = breakpoint()"), ("input", "x = input()"),
        ("memoryview", "x = memoryview(b'a')"),
    ]],
    ("dunder-import", in_agent("x = __import__('os')"), "RestrictedError: name '__import__'"),
    # -- imports
    *[(f"import-{module}", at_load(f"import {module}\nx = {module}"),
       f"ImportError: import of '{module}' is not allowed in the arena") for module in [
        "os", "sys", "importlib", "subprocess", "builtins", "gc", "inspect", "ctypes", "socket", "numpy",
    ]],
    ("import-private-module", at_load("from _thread import start_new_thread as x"),
     "ImportError: import of '_thread' is not allowed"),
    ("import-runtime-ctypes", at_load("import _ctypes\nx = _ctypes"), "import of '_ctypes' is not allowed"),
    ("relative-import", at_load("from . import x"), "relative imports are not allowed"),
    # -- frames and tracebacks
    ("generator-frame", in_agent(GENERATOR + "x = gen().gi_frame.f_back.f_globals"), "attribute 'gi_frame'"),
    ("getattr-generator-frame", in_agent(GENERATOR + "x = getattr(gen(), 'gi_' + 'frame')"),
     "AttributeError: attribute 'gi_frame'"),
    ("traceback-frame", in_agent("""
        try:
            1 / 0
        except ZeroDivisionError as e:
            x = e.__traceback__.tb_frame
     """), "attribute '__traceback__'"),
    ("attribute-error-object", in_agent("""
        import typing
        try:
            typing.Type.nothing  # typing looks it up on the real type, which the error carries
        except AttributeError as e:
            real_type = e.obj
        x = real_type('X', (), {})
     """), "TypeError: 'NoneType' object is not callable"),
    ("property-getter-reuse", in_agent("import fractions\nx = fractions.Fraction.numerator.fget(print)"),
     "attribute 'fget'"),
    ("match-class-dunder", in_agent("match 1:\n    case int(__class__=c):\n        x = c"), "attribute '__class__'"),
    ("async-code", at_load("async def f():\n    pass\nx = f"), "async code is not allowed"),
    # -- stdlib routes that build classes from any dict or compile names into source
    ("enum-dunder-members", in_agent("import enum\nx = enum.Enum('X', [('__annotations__', {'a=print(1)': int})])"),
     "enum member name '__annotations__' is not allowed"),
    ("typeddict-into-dataclass", in_agent("""
        import typing, dataclasses
        T = typing.TypedDict('T', {'a=print.__self__': int})
        x = dataclasses.dataclass(T)
     """), "dataclass field name 'a=print.__self__' is not allowed"),
    ("update-wrapper-globals", in_agent("""
        import functools, random
        def f():
            pass
        x = functools.update_wrapper(f, random.choice, assigned=(), updated=('__globals__',))
     """), "unexpected keyword argument 'assigned'"),
    ("cached-property-plant", in_agent("""
        import functools, typing
        type(typing.Type).peek = functools.cached_property(len)
        x = typing.Type.peek
     """), "attributes of class '_SpecialGenericAlias' are read-only"),
    ("cached-property-attrname", in_agent("""
        import functools
        peek = functools.cached_property(len)
        peek.attrname = '__origin__'
        x = peek
     """), "attribute 'attrname' of 'cached_property' object cannot be set in the arena"),
    ("patch-stdlib-class", in_agent("import random\nrandom.Random.choice = print\nx = random.Random"),
     "attributes of class 'Random' are read-only"),
    ("patch-runtime-struct", in_agent("type(obs).keys = print\nx = obs"), "attributes of class 'Struct' are read-only"),
    ("dataclass-on-stdlib-class", in_agent("import dataclasses, random\nx = dataclasses.dataclass(random.Random)"),
     "dataclass() takes a class of the bot's own"),
    ("write-module-proxy", in_agent("import math\nmath.pi = 3\nx = math.pi"), "AttributeError:"),
    # -- "_" attributes: only on the bot's own classes and their instances, and only its own
    ("getattr-module-private", in_agent("import random\nx = getattr(random, '_o' + 's')"),
     "AttributeError: attribute '_os' of <module 'random' (arena)> is private in the arena"),
    ("stdlib-object-private", in_agent("import random\nx = random.Random()._randbelow(6)"),
     "attribute '_randbelow' of 'Random' object is private in the arena: '_' attributes are open only on the bot's"),
    ("stdlib-class-private", in_agent("import fractions\nx = fractions.Fraction._numerator"),
     "attribute '_numerator' of class 'Fraction' is private"),
    ("own-subclass-reaches-stdlib", in_agent("""
        import random
        class R(random.Random):
            pass
        x = R()._randbelow(6)
     """), "attribute '_randbelow' of 'R' object is private in the arena: defined by class 'Random', not by the bot"),
    ("own-class-reaches-stdlib", in_agent("""
        import collections
        class C(collections.Counter):
            pass
        x = C._keep_positive
     """), "attribute '_keep_positive' of class 'C' is private in the arena: defined by class 'Counter'"),
    ("own-dict-subclass", in_agent("""
        class A(dict):
            pass
        x = A()._something_from_dict
     """), "AttributeError: 'A' object has no attribute '_something_from_dict'"),
    ("super-reaches-stdlib", in_agent("""
        import random
        class R(random.Random):
            def _randbelow(self, n):
                return super()._randbelow(n)
        x = R().randrange(6)
     """), "attribute '_randbelow' of 'super' object is private in the arena: defined by class 'Random'"),
    ("own-instance-shadows-stdlib", in_agent("""
        import random
        class R(random.Random):
            pass
        r = R()
        r._randbelow = print
        x = r.randrange(6)
     """), "attribute '_randbelow' of 'R' object is private in the arena: defined by class 'Random'"),
    ("function-private-read", in_agent("x = agent._x"), "attribute '_x' of 'function' object is private"),
    ("function-private-store", in_agent("agent._cache = {}\nx = agent._cache"),
     "attribute '_cache' of 'function' object is private"),
    ("setattr-private-stdlib", in_agent("import random\nr = random.Random()\nsetattr(r, '_x', 1)\nx = r"),
     "attribute '_x' of 'Random' object is private"),
    ("enum-new-member", in_agent("""
        import enum, random
        class S(enum.Enum):
            A = 1
        x = S._new_member_(random.Random)
     """), "attribute '_new_member_' of class 'S' is private in the arena: set by the standard library"),
    ("metaclass-private", in_agent("""
        import enum
        class S(enum.Enum):
            A = 1
        x = S._create_
     """), "attribute '_create_' of class 'S' is private in the arena: defined by its metaclass 'EnumType'"),
    ("runtime-struct-hook", in_agent("""
        class A(type(obs)):
            pass
        a = A()
        a._seen = 1
        x = a
     """), "attribute '_seen' of 'A' object is private in the arena: class 'Struct' handles its attributes"),
    ("dataclass-field-reaches-stdlib", in_agent("""
        import dataclasses, random
        @dataclasses.dataclass
        class D(random.Random):
            _randbelow: int = dataclasses.field(init=False)  # no value: Random's is read
            def __post_init__(self):
                super().__init__()
        x = dataclasses.asdict(D())["_randbelow"]
     """), "dataclass field name '_randbelow' is a private attribute of class 'Random'"),
    ("private-in-pattern", in_agent("match obs:\n    case object(_x=c):\n        x = c"),
     "attribute '_x' cannot be captured by a pattern"),
    # -- type() hands out no class of functions, code, generators, methods, builtins or modules
    ("type-of-function", in_agent("x = type(agent)"), "TypeError: type() of a function is not available in the arena"),
    ("type-of-lambda", in_agent("x = type(lambda: 0)"), "type() of a function is not available"),
    ("type-of-generator", in_agent(GENERATOR + "x = type(gen())"), "type() of a generator is not available"),
    ("type-of-method", in_agent("class A:\n    def m(self):\n        pass\nx = type(A().m)"),
     "type() of a method is not available"),
    ("type-of-builtin", in_agent("x = type(len)"), "type() of a builtin function is not available"),
    ("type-of-stdlib-method", in_agent("import random\nx = type(random.random)"), "type() of a builtin function"),
    ("type-of-method-descriptor", in_agent("x = type(str.join)"), "type() of a method descriptor is not available"),
    ("type-through-partial", in_agent("import functools\nx = functools.partial(type, agent)()"),
     "type() of a function is not available"),
    ("type-through-map", in_agent("x = list(map(type, [1, agent]))"), "type() of a function is not available"),
    ("type-through-sorted-key", in_agent("x = sorted([agent], key=type)"), "type() of a function is not available"),
    ("type-through-groupby", in_agent("import itertools\nx = [k for k, _ in itertools.groupby([agent], key=type)]"),
     "type() of a function is not available"),
    ("type-through-a-dict", in_agent("x = {'t': type}['t'](agent)"), "type() of a function is not available"),
    ("type-of-module-proxy", in_agent("import math\nx = type(math)('m')"), "TypeError:"),
    # -- typing: a ForwardRef (any string in a type expression) keeps no code, and nothing evaluates it
    ("forwardref-evaluate", in_agent("""
        import typing
        ref = typing.get_args(typing.List["print"])[0]
        x = ref._evaluate({}, {}, frozenset())
     """), "attribute '_evaluate' of 'ForwardRef' object is private"),
    ("forwardref-class", in_agent("import typing\nx = typing.ForwardRef('print')"), "no attribute 'ForwardRef'"),
    ("forwardref-subclass", in_agent("""
        import typing
        class R(type(typing.get_args(typing.List["x"])[0])):
            pass
        x = R
     """), "TypeError: subclasses of ForwardRef are not available in the arena"),
    ("forwardref-subclass-root", in_agent("""
        import typing
        class R(type(typing.get_args(typing.List["x"])[0]), _root=True):
            pass
        x = R
     """), "TypeError: subclasses of ForwardRef are not available in the arena"),
    # -- copy.deepcopy takes no memo: the memo receives the inner state of every object copied
    ("deepcopy-memo", in_agent("import copy, typing\nm = {}\ncopy.deepcopy(typing.List['x'], m)\nx = m"),
     "TypeError: _deepcopy() takes 1 positional argument but 2 were given"),
    ("deepcopy-memo-keyword", in_agent("import copy\nx = copy.deepcopy([1], memo={})"),
     "TypeError: _deepcopy() got an unexpected keyword argument 'memo'"),
    ("deepcopy-memo-partial", in_agent("import copy, functools\nx = functools.partial(copy.deepcopy, memo={})([1])"),
     "TypeError: _deepcopy() got an unexpected keyword argument 'memo'"),
    # -- a submodule by its dotted name: the same list as the validator's
    ("import-dotted-submodule", at_load("import json.decoder\nx = json.decoder"),
     "ImportError: import of 'json.decoder' is not allowed in the arena"),
    ("import-dotted-submodule-as", at_load("import json.scanner as x"), "import of 'json.scanner' is not allowed"),
]


@pytest.mark.parametrize(("bot", "fact"), [(bot, fact) for _, bot, fact in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_attack_fails(launcher: SeatLauncher, bot: str, fact: str) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    attacker, opponent = result.seats
    assert (attacker.status, attacker.reward, opponent.status) == ("ERROR", -1.0, "DONE"), result
    assert attacker.reason is not None and fact in attacker.reason, attacker.reason
    assert result.steps == 1 and actions_of(steps, 0) == []  # stopped at load or at its first move
    assert MARKER not in logs[0]


def test_there_are_enough_attacks() -> None:
    assert len(ATTACKS) >= 25


async def test_refusal_names_line_and_column(launcher: SeatLauncher) -> None:
    bot = "import random\n\ndef agent(obs, config):\n    return obs.__class__\n"
    result, _, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    reason = result.seats[0].reason
    assert reason == (
        "failed to load at start-up: RestrictedError: attribute '__class__' is not allowed: names starting "
        "with '__' are reserved here (bot.py, line 4, column 12)"
    )
    assert "    return obs.__class__\n" in logs[0] and "^" in logs[0] and "restricted.py" not in logs[0]


# -- control: with layer 2 off, the same bots get through -----------------------------------------

CONTROLS = {
    "open": in_agent("x = open('/etc/hostname').read()"),
    "type-of-function": in_agent("x = type(agent)"),
    "type-through-map": in_agent("x = list(map(type, [agent]))"),
    "deepcopy-memo": in_agent("import copy, typing\nm = {}\ncopy.deepcopy(typing.List['x'], m)\nx = m"),
    "import-dotted-submodule": in_agent("import json.decoder\nx = json.decoder"),
    "import-os": in_agent("import os\nx = os.getcwd()"),
    "subclasses": in_agent("x = ().__class__.__base__.__subclasses__()"),
    "format-attribute": in_agent("x = '{0.__class__}'.format(1)"),
    "generator-frame": in_agent(GENERATOR + "x = gen().gi_frame.f_globals"),
    "patch-stdlib-class": in_agent("import random\nrandom.Random.choice = print\nx = random.Random"),
    "own-subclass-reaches-stdlib": in_agent("import random\nclass R(random.Random):\n    pass\nx = R()._randbelow"),
    "dataclass-field-reaches-stdlib": in_agent("""
        import dataclasses, random
        @dataclasses.dataclass
        class D(random.Random):
            _randbelow: int = dataclasses.field(init=False)  # no value: Random's is read
            def __post_init__(self):
                super().__init__()
        x = dataclasses.asdict(D())["_randbelow"]
    """),
}


@pytest.mark.parametrize("bot", list(CONTROLS.values()), ids=list(CONTROLS))
async def test_without_layer_2_the_attack_gets_through(launcher: SeatLauncher, bot: str) -> None:
    result, steps, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE], limits=[UNRESTRICTED, Limits()])
    assert result.seats[0].status == "DONE" and actions_of(steps, 0)[0] == 0
    assert MARKER in logs[0]


async def test_without_layer_2_a_bot_reads_a_file(launcher: SeatLauncher) -> None:
    bot = in_agent("x = open('/etc/hostname').read()")
    hostname = await anyio.Path("/etc/hostname").read_text()
    _, _, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE], limits=[UNRESTRICTED, Limits()])
    assert f"{MARKER} {hostname!r}"[:200] in logs[0]
    result, _, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    assert result.seats[0].reason == "raised at step 1: NameError: name 'open' is not defined"
    assert MARKER not in logs[0]


async def test_numpy_is_the_operators_opt_in(launcher: SeatLauncher) -> None:
    """Allowed, numpy plays (it must be installed: scripts/test installs it); by default it is refused.

    With every layer and in both seat modes: ``test_numpy.py``; attacks through it:
    ``tests/security/test_numpy_attacks.py``.
    """
    bot = "import numpy as np\n\ndef agent(obs, config):\n    return np.flatnonzero(np.array(obs.board) == 0)[0]\n"
    result, steps, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE],
                                     limits=[Limits(allow_numpy=True), Limits()])
    assert result.seats[0].status == "DONE", (result.seats[0], logs[0])
    assert actions_of(steps, 0)[0] == 0
    result, _, _ = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    assert result.seats[0].status == "ERROR"
    assert "import of 'numpy' is not allowed in the arena: numpy is off" in (result.seats[0].reason or "")


def test_layers_report_the_restricted_runtime() -> None:
    layer = {layer.name: layer for layer in sandbox_layers()}["restricted_runtime"]
    assert layer.active and "builtins whitelist" in layer.reason


# -- acceptance: real bots still play ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("game", "bots", "config"),
    [
        ("connectx", ["connectx_greedy", "connectx_random"], {}),
        ("tictactoe", ["tictactoe_minimax", "tictactoe_random"], {}),
        ("rps", ["rps_counter", "rps_random"], {"episodeSteps": 30}),
    ],
    ids=["connectx", "tictactoe", "rps"],
)
async def test_example_bots_play(launcher: SeatLauncher, game: str, bots: list[str], config: dict[str, object]) -> None:
    result, _, logs = await play(launcher, game, bots, config)
    assert [s.status for s in result.seats] == ["DONE", "DONE"], result
    assert result.termination != "forfeit" and logs == ["", ""]
    off, _, _ = await play(launcher, game, bots, config, limits=[UNRESTRICTED, UNRESTRICTED])
    assert off == result  # the same seed gives the same match with layer 2 on or off


KAGGLE_BOT = '''
"""A Kaggle-style rock-paper-scissors bot that uses most of what bots use."""
from __future__ import annotations

import collections.abc
import heapq
import itertools
import json
import math
import random
import re
import statistics
from collections import Counter, defaultdict, deque, namedtuple
from dataclasses import FrozenInstanceError, dataclass, field
from enum import Enum, auto
from functools import lru_cache, wraps
from time import perf_counter, time
from typing import NamedTuple, Optional

Pair = namedtuple("Pair", "mine theirs")


class Sign(Enum):
    ROCK = auto()
    PAPER = auto()
    SCISSORS = auto()


class Point(NamedTuple):
    x: int
    y: int


@dataclass
class Memory:
    history: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    best: Optional[int] = None

    def __post_init__(self):
        self.started = time()


@dataclass(frozen=True, order=True)
class Score:
    value: float
    sign: int = 0


class Strategy:
    def __init__(self, signs):
        self.signs = signs
        self.calls = 0

    def __repr__(self):
        return f"Strategy(signs={self.signs}, calls={self.calls})"

    def pick(self, memory):
        self.calls += 1
        if not memory.counts:
            return random.choice(range(self.signs))
        favourite, _ = memory.counts.most_common(1)[0]
        return (favourite + 1) % self.signs


class Counting(Strategy):
    def __init__(self, signs):
        super().__init__(signs)
        self.window = deque(maxlen=5)


def logged(fn):
    @wraps(fn)
    def inner(*args):
        return fn(*args)
    return inner


@lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


memory = Memory()
strategy = Counting(3)
frozen_refused = False
try:
    Score(1.0).value = 2.0
except FrozenInstanceError:
    frozen_refused = True


@logged
def agent(observation, configuration):
    started = perf_counter()
    if observation.step > 0:
        memory.counts[observation.lastOpponentAction] += 1
        memory.history.append(Pair(None, observation.lastOpponentAction))
    ranked = heapq.nlargest(1, [Score(1.0, 2), Score(0.5, 1)])
    pairs = list(itertools.islice(itertools.combinations(range(4), 2), 3))
    table = defaultdict(int)
    table["k"] += 1
    stats = statistics.mean([1, 2, 3]) + math.floor(math.sqrt(16))
    text = "{:.2f} {} {name}".format(math.pi, len(pairs), name=Sign.PAPER.name)
    parsed = json.loads(json.dumps({"a": [1, 2]}))
    assert isinstance(memory.history, collections.abc.Sequence) and isinstance(int, type)
    assert re.fullmatch(r"\\d+\\.\\d\\d \\d \\w+", text) and parsed == {"a": [1, 2]}
    assert Point(1, 2).y == 2 and fib(20) == 6765 and ranked[0] == Score(1.0, 2) and stats == 6
    assert frozen_refused and table == {"k": 1} and __name__ == "bot"
    if observation.step == 0:
        print(f"{strategy!r} {text} {perf_counter() - started >= 0}")
    return strategy.pick(memory)
'''


async def test_kaggle_style_bot_plays_with_layer_2_on(launcher: SeatLauncher) -> None:
    result, steps, logs = await play(launcher, "rps", [KAGGLE_BOT, "rps_random"], {"episodeSteps": 20})
    assert [s.status for s in result.seats] == ["DONE", "DONE"], (result, logs[0])
    assert logs[0] == "Strategy(signs=3, calls=0) 3.14 3 PAPER True\n"
    assert len(actions_of(steps, 0)) == 19
    off, off_steps, _ = await play(launcher, "rps", [KAGGLE_BOT, "rps_random"], {"episodeSteps": 20},
                                   limits=[UNRESTRICTED, Limits()])
    assert actions_of(off_steps, 0) == actions_of(steps, 0)  # layer 2 changes nothing for a fair bot


PRIVATE_ATTRIBUTES_BOT = '''
"""A Kaggle-style rock-paper-scissors bot whose classes keep their state in "_" attributes."""
import collections
import dataclasses
import enum
import random
from typing import NamedTuple


class Sign(enum.IntEnum):
    ROCK = 0
    PAPER = 1
    SCISSORS = 2


Seen = collections.namedtuple("Seen", "step sign")


class Guess(NamedTuple):
    sign: int
    weight: float = 1.0


class PatternError(Exception):
    def __init__(self, detail):
        super().__init__(detail)
        self._detail = detail


@dataclasses.dataclass
class Stats:
    wins: int = 0
    _streak: int = 0

    def _bump(self, won):
        self._streak = self._streak + 1 if won else 0
        return self._streak


class Base:
    _instances = 0

    def __init__(self, signs):
        Base._instances += 1
        self._signs = signs
        self._memo = {}
        self._count = 0

    @classmethod
    def _make(cls, signs):
        return cls(signs)

    @property
    def _last(self):
        return self._history[-1] if self._history else None

    def _helper(self, key):
        self._count += 1
        if key not in self._memo:
            self._memo[key] = (sum(key) * 7 + len(key)) % self._signs
        return self._memo[key]


class Predictor(Base):
    def __init__(self, signs):
        super().__init__(signs)
        self._history = collections.deque(maxlen=6)
        self._rng = random.Random(7)
        self._stats = Stats()

    def _helper(self, key):
        return (super()._helper(key) + 1) % self._signs

    def _predict(self):
        if len(self._history) < 3:
            raise PatternError("too little history")
        return self._helper(tuple(seen.sign for seen in self._history))

    def play(self, observation):
        if observation.step > 0:
            self._history.append(Seen(observation.step, observation.lastOpponentAction))
            self._stats._bump(observation.lastOpponentAction == self._last.sign)
        try:
            sign = self._predict()
        except PatternError as exc:
            assert exc._detail == "too little history"
            sign = self._rng.randrange(self._signs)
        guess = Guess(sign)._replace(weight=0.5)
        assert guess._asdict() == {"sign": sign, "weight": 0.5} and Guess._fields == ("sign", "weight")
        assert Sign(guess.sign)._value_ == sign and Sign.PAPER._name_ == "PAPER"
        setattr(self, "_calls", getattr(self, "_calls", 0) + 1)
        assert hasattr(self, "_calls") and not hasattr(self, "_nothing")
        return int(guess.sign)


predictor = Predictor._make(3)


def agent(observation, configuration):
    action = predictor.play(observation)
    if observation.step == 0:
        print(Base._instances, predictor._count, predictor._stats._streak, predictor._calls)
    return action
'''


async def test_a_bot_using_private_attributes_of_its_own_plays(launcher: SeatLauncher) -> None:
    result, steps, logs = await play(launcher, "rps", [PRIVATE_ATTRIBUTES_BOT, "rps_random"], {"episodeSteps": 30})
    assert [s.status for s in result.seats] == ["DONE", "DONE"], (result, logs[0])
    assert logs[0] == "1 0 0 1\n"
    off, off_steps, _ = await play(launcher, "rps", [PRIVATE_ATTRIBUTES_BOT, "rps_random"], {"episodeSteps": 30},
                                   limits=[UNRESTRICTED, Limits()])
    assert actions_of(off_steps, 0) == actions_of(steps, 0) and len(actions_of(steps, 0)) == 29
    assert validate_source(PRIVATE_ATTRIBUTES_BOT) == []  # layer 1 agrees


async def test_module_proxies_behave_like_modules(launcher: SeatLauncher) -> None:
    bot = '''
import math
import math as again
import collections.abc
from collections import abc
from random import choice, Random
from math import *

assert math is again and abc is collections.abc and floor is math.floor
assert choice([4]) == 4 and Random(1).random() == Random(1).random()
assert not hasattr(math, "os") and getattr(math, "nope", 5) == 5

def agent(obs, config):
    print(repr(math), sqrt(9))
    return obs.board.index(0)
'''
    result, _, logs = await play(launcher, "tictactoe", [bot, FIRST_FREE])
    assert result.seats[0].status == "DONE", result
    assert logs[0].startswith("<module 'math' (arena)> 3.0\n")


TYPED_BOT = '''
"""A bot written with type hints, string forward references included (no __future__ import)."""
import copy
import typing
from typing import Dict, Generic, List, NamedTuple, Optional, TypeVar

T = TypeVar("T", bound="Node")


class Node:
    def __init__(self, move: int, parent: Optional["Node"] = None) -> None:
        self.move = move
        self.parent = parent
        self.children: List["Node"] = []

    def add(self, move: int) -> "Node":
        child = Node(move, self)
        self.children.append(child)
        return child


class Scored(NamedTuple):
    node: "Node"
    score: "float" = 0.0


class Box(Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item


table: Dict[str, "Node"] = {}
alias = typing.List["Node"]
assert alias == typing.List["Node"] and typing.get_args(alias)[0] == typing.get_args(List["Node"])[0]
assert type(3) is int and type(Node(1)) is Node and type(alias) is type(List[int]) and isinstance(Node, type)
assert callable(Node.add) and copy.deepcopy([Node(1).move]) == [1]


def agent(obs, config):
    root = Box(Node(-1)).item
    scored = [Scored(root.add(c), float(-abs(c - config.columns // 2))) for c in range(config.columns)
              if obs.board[c] == 0]
    table["best"] = max(scored, key=lambda s: s.score).node
    return table["best"].move
'''


async def test_a_bot_with_string_type_hints_plays(launcher: SeatLauncher) -> None:
    result, steps, logs = await play(launcher, "connectx", [TYPED_BOT, "connectx_random"])
    assert [s.status for s in result.seats] == ["DONE", "DONE"], (result, logs[0])
    off, off_steps, _ = await play(launcher, "connectx", [TYPED_BOT, "connectx_random"],
                                   limits=[UNRESTRICTED, Limits()])
    assert actions_of(off_steps, 0) == actions_of(steps, 0)
    assert validate_source(TYPED_BOT) == []  # layer 1 agrees


# -- the guards themselves, in this process (nothing here installs them in it) ----------------------


def test_type_hides_the_interpreters_classes() -> None:
    def gen() -> Iterator[int]:
        yield 1

    hidden = {
        "function": gen, "generator": gen(), "method": ListRecorder().record_step, "builtin function": len,
        "method descriptor": str.join, "module": types, "slot wrapper": int.__add__, "method wrapper": (1).__add__,
        "code object": gen.__code__, "cell": (lambda: hidden).__closure__[0],
    }  # fmt: skip
    for kind, value in hidden.items():
        with pytest.raises(TypeError, match=rf"^type\(\) of an? {kind} is not available in the arena$"):
            SafeType(value)
    assert {kind.split()[-1] for kind in HIDDEN_CLASSES.values()} >= {"function", "generator", "module", "frame"}
    assert SafeType(1) is int and SafeType(ListRecorder()) is ListRecorder and SafeType(int) is SafeType
    with pytest.raises(TypeError, match="exactly one argument"):
        SafeType("X", (), {})


def test_a_forward_ref_keeps_no_code() -> None:
    ref = typing.ForwardRef.__new__(typing.ForwardRef)
    forward_ref_without_code(ref, "print.__self__", module="bot")
    assert ref.__forward_code__ is None and ref.__forward_arg__ == "print.__self__"
    assert ref == typing.ForwardRef("print.__self__", module="bot")
    with pytest.raises(SyntaxError, match="Forward reference must be an expression"):
        forward_ref_without_code(typing.ForwardRef.__new__(typing.ForwardRef), "1 +")


def test_the_seat_installs_the_forward_ref_guard() -> None:
    """In a seat's interpreter, once the runtime's environment exists, no ForwardRef holds code:
    neither new ones nor any made before (a cached ``List["x"]`` would hand an old one out), the
    allowed modules imported first as a fork server's zygote does."""
    check = (
        "import gc, importlib, sys, typing\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import bot_runtime\n"
        "before = typing.ForwardRef('1 + 1').__forward_code__\n"
        "restricted = bot_runtime.load_restricted()\n"
        "for name in sorted(restricted.ALLOWED_MODULES):\n"
        "    importlib.import_module(name)\n"
        "environment = restricted.Environment()\n"
        "for name in sorted(environment.allowed):\n"
        "    environment.module(name)\n"
        "after = [typing.ForwardRef('2').__forward_code__,\n"
        "         typing.get_args(typing.Dict[str, 'x'])[1].__forward_code__]\n"
        "refs = [o for o in gc.get_objects() if isinstance(o, typing.ForwardRef)]\n"
        "print(type(before).__name__, after, [ref for ref in refs if ref.__forward_code__ is not None])\n"
    )
    runtime_dir = Path(__file__).resolve().parents[2] / "server" / "sandbox" / "seat"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", check, str(runtime_dir)], capture_output=True,
                          text=True, timeout=30, check=True)
    assert done.stdout == "code [None, None] []\n", done.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="the runtime drops to an unprivileged user only when it starts as root")
def test_layer_2_loads_from_a_directory_only_root_may_read(tmp_path: Path) -> None:
    """Without bubblewrap the runtime reads layer 2 from the project's directory, and becomes an
    unprivileged user when it applies its limits: it must read those files first (a checkout in a
    0700 directory, as ``mktemp -d`` makes, once failed every bot with PermissionError)."""
    from server.sandbox.process import CLEAN_ENV, bot_python
    from server.sandbox.view import RUNTIME_PATH, seat_files

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    for name in seat_files():
        shutil.copy(RUNTIME_PATH.with_name(name), private)
    init = {"type": "init", "protocol_version": 1, "seat": 0, "seed": 1, "code": FIRST_FREE,
            "configuration": {}, "limits": Limits().for_runtime()}
    done = subprocess.run([bot_python(), "-I", "-S", str(private / "bot_runtime.py")], input=json.dumps(init) + "\n",
                          capture_output=True, text=True, timeout=30, env=CLEAN_ENV, cwd="/")
    assert done.stdout.splitlines()[:1] == ['{"type":"ready"}'], done.stdout + done.stderr
