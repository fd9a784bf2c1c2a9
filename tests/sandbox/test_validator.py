"""Tests for layer 1 of the sandbox, the static validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.errors import Finding, ValidationFailed
from server.sandbox.seat import restricted
from server.sandbox.validator import (
    ALLOWED_MODULES,
    MAX_SOURCE_BYTES,
    Rule,
    check_source,
    format_findings,
    validate_source,
)

BOTS_DIR = Path(__file__).resolve().parents[2] / "server" / "bots"
ESCAPED_NAMES_BOT = Path(__file__).resolve().parents[1] / "security" / "bots" / "static_escaped_names.py"


def places(source: bytes | str) -> set[tuple[str, int, int]]:
    """The (rule, line, col) of every finding for ``source``, numpy allowed (its members are checked)."""
    return {(f.rule, f.line, f.col) for f in validate_source(source, allow_numpy=True)}


# (source, rule, line, col): the validator must report `rule` exactly at line:col.
REJECTED = {
    # Imports: deny-list, allow-list, forms.
    "import os": (b"import os\n", "import", 1, 1),
    "import os.path": (b"x = 1\nimport os.path\n", "import", 2, 1),
    "from os import path": (b"from os import path\n", "import", 1, 1),
    "import as": (b"import subprocess as sp\n", "import", 1, 1),
    "second alias": (b"import math, socket\n", "import", 1, 1),
    "nested import": (b"def f():\n    import ctypes\n", "import", 2, 5),
    "not allowed": (b"import antigravity\n", "import", 1, 1),
    "operator": (b"from operator import attrgetter\n", "import", 1, 1),
    "relative": (b"from . import x\n", "import", 1, 1),
    "relative parent": (b"from ..pkg import x\n", "import", 1, 1),
    "star": (b"from math import *\n", "import", 1, 1),
    "private member": (b"from random import _os\n", "import", 1, 20),
    "forbidden member": (b"from dataclasses import sys\n", "import", 1, 25),
    "evaluator member": (b"from typing import get_type_hints\n", "import", 1, 20),
    "numpy submodule": (b"import numpy.ctypeslib\n", "import", 1, 1),
    # Submodules: the restricted runtime's list of modules, by dotted name, is the one list.
    "stdlib submodule": (b"import json.decoder\n", "import", 1, 1),
    "stdlib submodule as": (b"import json.scanner as s\n", "import", 1, 1),
    "from package import submodule": (b"from json import decoder\n", "import", 1, 18),
    "submodule attribute": (b"import json\nx = json.decoder\n", "attribute", 2, 10),
    "submodule by getattr": (b"import json\nx = getattr(json, 'encoder')\n", "builtin", 2, 5),
    "not a module of the list": (b"import collections.abc.nothing\n", "import", 1, 1),
    "member left out by layer 2": (b"import typing\nx = typing.get_origin\n", "attribute", 2, 12),
    "member of a reduced module": (b"from time import localtime\n", "import", 1, 18),
    "reduced module attribute": (b"import time as t\nx = t.strftime('%H')\n", "attribute", 2, 7),
    "submodule member left out": (b"import collections\nx = collections.UserString\n", "attribute", 2, 17),
    # Builtins.
    "__import__": (b"m = __import__('os')\n", "builtin", 1, 5),
    "eval": (b"x = eval('1')\n", "builtin", 1, 5),
    "exec": (b"exec('x = 1')\n", "builtin", 1, 1),
    "compile": (b"c = compile('1', 'f', 'eval')\n", "builtin", 1, 5),
    "open": (b"def f():\n    return open('/etc/passwd').read()\n", "builtin", 2, 12),
    "input": (b"x = input()\n", "builtin", 1, 5),
    "globals": (b"g = globals()\n", "builtin", 1, 5),
    "locals": (b"def f():\n    return locals()\n", "builtin", 2, 12),
    "vars": (b"v = vars(obj)\n", "builtin", 1, 5),
    "breakpoint": (b"breakpoint()\n", "builtin", 1, 1),
    "dir": (b"names = dir(obj)\n", "builtin", 1, 9),
    "eval as value": (b"f = [eval][0]\n", "builtin", 1, 6),
    "shadowing store": (b"open = 1\n", "builtin", 1, 1),
    "getattr variable": (b"name = 'x'\ny = getattr(obj, name)\n", "builtin", 2, 5),
    "getattr dunder": (b"y = getattr(obj, '__class__')\n", "builtin", 1, 5),
    "getattr frame": (b"y = getattr(gen, 'gi_frame')\n", "builtin", 1, 5),
    "getattr value": (b"import functools\nget = functools.partial(getattr, obj)\n", "builtin", 2, 25),
    "getattr starred": (b"y = getattr(*args)\n", "builtin", 1, 5),
    "setattr private module": (b"import random\nsetattr(random, '_inst', 1)\n", "builtin", 2, 1),
    "type three args": (b"C = type('C', (), {})\n", "builtin", 1, 5),
    # Dunders.
    "class chain": (b"x = ().__class__.__bases__\n", "dunder", 1, 8),
    "bases": (b"x = ().__class__.__bases__\n", "dunder", 1, 18),
    "__dict__": (b"d = obj.__dict__\n", "dunder", 1, 9),
    "__builtins__": (b"b = __builtins__\n", "dunder", 1, 5),
    "__globals__": (b"def f():\n    pass\ng = f.__globals__\n", "dunder", 3, 7),
    "__subclasses__": (b"s = object.__subclasses__()\n", "dunder", 1, 12),
    "mangled": (b"x = self.__secret\n", "dunder", 1, 10),
    "continued line": (b"x = a.b.\\\n    __class__\n", "dunder", 2, 5),
    "after non-ascii": ("é = 1; é.__class__\n".encode(), "dunder", 1, 10),
    "dunder def": (b"class A:\n    def __getattr__(self, name):\n        pass\n", "dunder", 2, 9),
    "dunder def outside class": (b"def __init__():\n    pass\n", "dunder", 1, 5),
    "dunder class attribute": (b"class A:\n    __slots__ = ()\n", "dunder", 2, 5),
    "dunder argument": (b"f = lambda __builtins__: 1\n", "dunder", 1, 12),
    "class pattern": (b"match x:\n    case C(__class__=c):\n        pass\n", "dunder", 2, 10),
    "init not via super": (b"class A(B):\n    def __init__(self):\n        B.__init__(x)\n", "dunder", 3, 11),
    # Frames, code, mro.
    "gi_frame": (b"def g():\n    yield 1\nf = g().gi_frame\n", "introspection", 3, 9),
    "tb_frame": (b"x = tb.tb_frame.f_globals\n", "introspection", 1, 8),
    "f_globals": (b"x = tb.tb_frame.f_globals\n", "introspection", 1, 17),
    "_getframe": (b"f = s._getframe(1)\n", "introspection", 1, 7),
    "cr_frame": (b"x = c.cr_frame\n", "introspection", 1, 7),
    "mro": (b"m = int.mro()\n", "introspection", 1, 9),
    # Escapes from allowed modules.
    "random._os": (b"import random\nrandom._os.system('id')\n", "attribute", 2, 8),
    "dataclasses.builtins": (b"import dataclasses as dc\nb = dc.builtins\n", "attribute", 2, 8),
    "typing.sys": (b"import typing\nm = typing.sys.modules\n", "attribute", 2, 12),
    "copy.types": (b"import copy\nt = copy.types\n", "attribute", 2, 10),
    "ndarray.ctypes": (b"import numpy as np\np = np.zeros(3).ctypes\n", "attribute", 2, 17),
    "np.load": (b"import numpy as np\nx = np.load('f.npy')\n", "attribute", 2, 8),
    "np.bmat (caller's frame)": (b"import numpy as np\nx = np.bmat('a')\n", "attribute", 2, 8),
    "np.recarray (buffer)": (b"from numpy import recarray\n", "import", 1, 19),
    "string.Formatter": (b"import string\nf = string.Formatter()\n", "attribute", 2, 12),
    # Private members of modules (a bot's own objects may have "_" attributes: see ACCEPTED).
    "module private": (b"import random\nx = random._inst\n", "attribute", 2, 12),
    "module alias private": (b"import math as m\nx = m._private\n", "attribute", 2, 7),
    "submodule private": (b"import collections.abc\nx = collections.abc._check_methods\n", "attribute", 2, 21),
    "imported class private": (b"from random import Random\nx = Random._randbelow\n", "attribute", 2, 12),
    "module class private": (b"import random\nx = random.Random._randbelow\n", "attribute", 2, 19),
    # Format templates.
    "format dunder": (b"s = '{0.__class__}'.format(x)\n", "format", 1, 5),
    "format attribute": (b"s = '{.x}'.format(o)\n", "format", 1, 5),
    "format item": (b"s = '{0[k]}'.format(d)\n", "format", 1, 5),
    "format nested spec": (b"s = '{0:{1.a}}'.format(x, y)\n", "format", 1, 5),
    "format_map": (b"s = '{a.b}'.format_map(m)\n", "format", 1, 5),
    "format variable template": (b"t = 'x'\ns = t.format(1)\n", "format", 2, 7),
    "str.format": (b"s = str.format('{0.a}', x)\n", "format", 1, 16),
    "format method as value": (b"f = '{0.a}'.format\n", "format", 1, 5),
    # Strings that build names.
    "dunder string": (b"name = '__cl' + 'ass__'\n", "dunder_string", 1, 8),
    "underscore repeat": (b"name = '_' * 2 + 'class'\n", "dunder_string", 1, 8),
    "underscore join": (b"name = 'a_' + '_b'\n", "dunder_string", 1, 8),
    "dunder bytes": (b"name = b'__class__'.decode()\n", "dunder_string", 1, 8),
    # The value counts, not the spelling.
    "hex escapes": (b"name = '\\x5f\\x5fclass\\x5f\\x5f'\n", "dunder_string", 1, 8),
    "named escapes": (b"name = '\\N{LOW LINE}\\N{LOW LINE}init'\n", "dunder_string", 1, 8),
    "bytes escapes": (b"name = b'\\x5f\\x5f'\n", "dunder_string", 1, 8),
    "f-string part": (b"x = 1\nname = f'{x}__'\n", "dunder_string", 2, 8),
    # "_" made from its code point, wherever it ends up.
    "chr(95)": (b"u = chr(95)\n", "dunder_string", 1, 5),
    "chr(0x5f)": (b"u = chr(0x5f)\n", "dunder_string", 1, 5),
    "chr(0o137)": (b"u = chr(0o137)\n", "dunder_string", 1, 5),
    "chr of a sum": (b"u = chr(94 + 1) + 'x'\n", "dunder_string", 1, 5),
    "bytes of a list": (b"u = bytes([95, 95]).decode()\n", "dunder_string", 1, 5),
    "bytearray of a tuple": (b"u = bytearray((95,))\n", "dunder_string", 1, 5),
    "percent c": (b"u = '%c' % 95\n", "dunder_string", 1, 5),
    "f-string c": (b"u = f'{95:c}'\n", "dunder_string", 1, 5),
    "format c": (b"u = format(95, 'c')\n", "dunder_string", 1, 5),
    "str.format c": (b"u = '{:c}'.format(0x5f)\n", "dunder_string", 1, 5),
    # Strings built from literals only, folded to their value.
    "join of literals": (b"name = ''.join(['_', '_', 'class'])\n", "dunder_string", 1, 8),
    "separator join": (b"name = '_'.join(('', '', 'class'))\n", "dunder_string", 1, 8),
    "f-string of literals": (b"name = f'{\"_\"}_class'\n", "dunder_string", 1, 8),
    "sum in parts": (b"name = 'x' + ('_' + ('_' + 'y'))\n", "dunder_string", 1, 15),
    "percent of literals": (b"name = '%s%sclass' % ('_', '_')\n", "dunder_string", 1, 8),
    "str.format of literals": (b"name = '{}{}class'.format('_', '_')\n", "dunder_string", 1, 8),
    "replace": (b"name = 'xxclassxx'.replace('x', '_')\n", "dunder_string", 1, 8),
    "center": (b"name = 'class'.center(9, '_')\n", "dunder_string", 1, 8),
    "step slice": (b"name = '_x_'[::2]\n", "dunder_string", 1, 8),
    "reversed join": (b"name = ''.join(reversed(['ssalc', '_', '_']))\n", "dunder_string", 1, 8),
    "long repeat": (b"name = '_' * 300 + 'x'\n", "dunder_string", 1, 8),
    # copy.deepcopy's memo holds the inner state of every object copied.
    "deepcopy memo": (b"import copy\nx = copy.deepcopy(y, {})\n", "call", 2, 5),
    "deepcopy memo keyword": (b"import copy as c\nx = c.deepcopy(y, memo=m)\n", "call", 2, 5),
    "deepcopy imported": (b"from copy import deepcopy\nx = deepcopy(y, m)\n", "call", 2, 5),
    "deepcopy starred": (b"from copy import deepcopy as dc\nx = dc(*args)\n", "call", 2, 5),
    # Unicode identifiers (CPython applies NFKC).
    "fullwidth eval": ("x = ｅｖａｌ('1')\n".encode(), "unicode", 1, 5),
    "fullwidth eval is eval": ("x = ｅｖａｌ('1')\n".encode(), "builtin", 1, 5),
    "fullwidth os": ("import ｏｓ\n".encode(), "unicode", 1, 8),
    "fullwidth os is os": ("import ｏｓ\n".encode(), "import", 1, 1),
    "normalises to __import__": ("m = _\ufe4fimport__('os')\n".encode(), "unicode", 1, 5),
    "__import__ after NFKC": ("m = _\ufe4fimport__('os')\n".encode(), "builtin", 1, 5),
    "fullwidth attribute": ("x = g.ｇｉ_ｆｒａｍｅ\n".encode(), "introspection", 1, 7),
    # Bytes, encodings, size.
    "latin-1 cookie": (b"# -*- coding: latin-1 -*-\nx = 1\n", "encoding", 1, 1),
    "utf-7 cookie": (b"# coding: utf-7\nx = 1\n# +AAo-import os\n", "encoding", 1, 1),
    "cookie on line 2": (b"#!/usr/bin/env python\n# vim: fileencoding=cp1252\n", "encoding", 2, 1),
    "cookie after BOM": (b"\xef\xbb\xbf# coding: latin-1\n", "encoding", 1, 1),
    "invalid utf-8": (b"x = 1\ny = '\xff'\n", "encoding", 2, 6),
    "truncated utf-8": (b"x = '\xc3'\n", "encoding", 1, 6),
    "NUL byte": (b"x = 1\ny = 2\x00\n", "nul", 2, 6),
    "syntax error": (b"x = 1\nif x\n    y = 2\n", "syntax", 2, 5),
    "unclosed": (b"x = (1,\n", "syntax", 1, 5),
    "compile-time error": (b"x = 1\nreturn x\n", "syntax", 2, 1),
    "too deep": (b"x = " + b"-" * 200_000 + b"1\n", "syntax", 1, 1),
    # Async.
    "async def": (b"async def f():\n    pass\n", "async", 1, 1),
    "await": (b"async def f():\n    await g()\n", "async", 2, 5),
    # Line ends CPython knows.
    "CRLF": (b"x = 1\r\nimport os\r\n", "import", 2, 1),
    "lone CR": (b"x = 1\rimport os\r", "import", 2, 1),
}


@pytest.mark.parametrize(("source", "rule", "line", "col"), REJECTED.values(), ids=list(REJECTED))
def test_rejected_at_position(source: bytes, rule: str, line: int, col: int) -> None:
    found = places(source)
    assert (rule, line, col) in found, format_findings(validate_source(source))


ACCEPTED = {
    "f-string conversion": b"x = 1\ns = f'{x!r} {x:>4}'\n",
    "plain format": b"s = '{} {:>3} {name}'.format(1, 2, name='n')\n",
    "percent format": b"s = '%(a)s %d' % {'a': 1}\n",
    "getattr literal": b"y = getattr(obj, 'board', None)\nsetattr(obj, 'seen', True)\n",
    "from random import Random": b"from random import Random\nrng = Random(1)\n",
    "from time import sleep": b"from time import sleep\n",
    "submodule": b"import collections.abc\nfrom collections import abc\nx = collections.abc.Sequence, abc.Mapping\n",
    "numpy submodules": b"import numpy as np\nimport numpy.linalg\nfrom numpy import random\nx = np.random.rand\n",
    "deepcopy": b"import copy\nfrom copy import deepcopy\nx = copy.deepcopy([1]), deepcopy({})\n",
    "chr computed": b"i = 2\nx = chr(ord('a') + i) + chr(65) + chr(i)\n",
    "underscores in names": b"a, b = 'x', 'y'\nx = '_'.join([a, b]) + f'{a}_{b}' + '%s_%s' % (a, b) + 'a_b' + '_c'\n",
    "big literal arithmetic": b"x = 'a' * 10**9\ny = 'b'.center(2**40)\nz = 'a_' * 300\n",
    "future": b"from __future__ import annotations\n",
    "super init": b"class A(B):\n    def __init__(self):\n        super().__init__()\n",
    "main guard": b'if __name__ == "__main__":\n    pass\n',
    "docstring with dunder": b'def f():\n    """Calls __init__ of nothing."""\n',
    "non-ascii normal identifier": "größe = 1\nπ = 3.14\n".encode(),
    "non-ascii string and comment": "s = 'ｅｖａｌ'  # ｅｖａｌ\n".encode(),
    "utf-8 cookie": b"# -*- coding: utf-8 -*-\nx = 1\n",
    "utf8 cookie": b"# coding=utf8\nx = 1\n",
    "BOM": b"\xef\xbb\xbfx = 1\n",
    "type one arg": b"t = type(1)\n",
    "global and lambda": b"n = 0\ndef f():\n    global n\n    n += 1\n    return lambda y: y + n\n",
    "compiler warnings": b'import re\nx = re.compile("\\d+")\ny = 1 is 1\n',
    "try with": b"try:\n    x = 1 / 0\nexcept ZeroDivisionError as e:\n    x = str(e)\n",
    "own private attributes": (
        b"class Memo:\n    _shared = {}\n\n    def __init__(self):\n        self._memo = {}\n        self._hits = 0\n\n"
        b"    def _lookup(self, key):\n        self._hits += 1\n        return self._memo.get(key, Memo._shared)\n\n"
        b"m = Memo()\nm._memo[1] = getattr(m, '_hits')\nx = m._lookup(1)\n"
    ),
}


@pytest.mark.parametrize("source", ACCEPTED.values(), ids=list(ACCEPTED))
def test_accepted(source: bytes) -> None:
    assert validate_source(source, allow_numpy=b"numpy" in source) == []


@pytest.mark.parametrize("source", [b"import numpy as np\n", b"import numpy.linalg\n", b"from numpy import random\n"])
def test_numpy_only_where_the_arena_allows_it(source: bytes) -> None:
    """An arena without the opt-in refuses numpy at submission, not at the bot's first match."""
    assert validate_source(source, allow_numpy=True) == []
    (finding,) = validate_source(source)
    assert (finding.rule, finding.line, finding.col) == ("import", 1, 1)
    assert finding.message == "module 'numpy' is not enabled on this arena (the operator's allow_numpy)"
    (other,) = validate_source(b"import antigravity\n")
    assert "numpy" not in other.message  # the allowed list it quotes is this arena's


CONNECTX_NEGAMAX = '''
"""ConnectX: depth-limited negamax with alpha-beta and a centre-first move order."""
import math
import random


class Board:
    def __init__(self, cells, rows, columns, inarow):
        self.cells = list(cells)
        self.rows = rows
        self.columns = columns
        self.inarow = inarow

    def __repr__(self):
        return f"Board({self.rows}x{self.columns})"

    def legal(self):
        order = sorted(range(self.columns), key=lambda c: abs(c - self.columns // 2))
        return [c for c in order if self.cells[c] == 0]

    def play(self, column, mark):
        for row in range(self.rows - 1, -1, -1):
            index = row * self.columns + column
            if self.cells[index] == 0:
                self.cells[index] = mark
                return index
        raise ValueError(f"column {column} is full")

    def at(self, row, col):
        return row * self.columns + col

    def undo(self, index):
        self.cells[index] = 0

    def wins(self, index, mark):
        row, col = divmod(index, self.columns)
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            count = 1
            for sign in (1, -1):
                r, c = row + dr * sign, col + dc * sign
                while 0 <= r < self.rows and 0 <= c < self.columns and self.cells[self.at(r, c)] == mark:
                    count += 1
                    r, c = r + dr * sign, c + dc * sign
            if count >= self.inarow:
                return True
        return False


def negamax(board, mark, depth, alpha, beta):
    moves = board.legal()
    if not moves:
        return 0
    if depth == 0:
        return 0
    best = -math.inf
    for column in moves:
        index = board.play(column, mark)
        try:
            if board.wins(index, mark):
                score = 1000 + depth
            else:
                score = -negamax(board, 3 - mark, depth - 1, -beta, -alpha)
        finally:
            board.undo(index)
        best = max(best, score)
        alpha = max(alpha, score)
        if alpha >= beta:
            break
    return best


def agent(obs, config):
    board = Board(obs.board, config.rows, config.columns, config.inarow)
    scored = []
    for column in board.legal():
        index = board.play(column, obs.mark)
        won = board.wins(index, obs.mark)
        score = math.inf if won else -negamax(board, 3 - obs.mark, 3, -math.inf, math.inf)
        board.undo(index)
        scored.append((score, random.random(), column))
    return max(scored)[2]
'''

RPS_COUNTER = """
import random
from collections import Counter, deque

history = deque(maxlen=50)
seen = Counter()


def agent(observation, configuration):
    if observation.step > 0:
        history.append(observation.lastOpponentAction)
        seen[observation.lastOpponentAction] += 1
    if len(history) < 5:
        return random.randint(0, configuration.signs - 1)
    favourite, _count = seen.most_common(1)[0]
    return (favourite + 1) % configuration.signs
"""

TICTACTOE_ITERTOOLS = """
import itertools
from functools import lru_cache

WINS = [line for line in itertools.chain(
    (range(r, r + 3) for r in (0, 3, 6)),
    (range(c, 9, 3) for c in range(3)),
    [range(0, 9, 4), range(2, 7, 2)],
)]


def winner(board):
    for a, b, c in WINS:
        if board[a] and board[a] == board[b] == board[c]:
            return board[a]
    return 0


@lru_cache(maxsize=None)
def score(board, mark):
    if winner(board):
        return -1
    empty = [i for i, v in enumerate(board) if v == 0]
    if not empty:
        return 0
    return max(-score(board[:i] + (mark,) + board[i + 1:], 3 - mark) for i in empty)


def agent(observation, configuration):
    board = tuple(observation["board"])
    empty = [i for i, v in enumerate(board) if v == 0]
    pairs = itertools.product(empty, [observation["mark"]])
    return max(pairs, key=lambda p: -score(board[:p[0]] + (p[1],) + board[p[0] + 1:], 3 - p[1]))[0]
"""

NUMPY_BOT = """
import numpy as np

rng = np.random.default_rng(7)


def agent(obs, config):
    grid = np.asarray(obs.board).reshape(config.rows, config.columns)
    open_columns = np.flatnonzero(grid[0] == 0)
    weights = 1.0 / (1.0 + np.abs(open_columns - config.columns // 2))
    return int(rng.choice(open_columns, p=weights / weights.sum()))
"""

DATACLASS_TIMER_BOT = """
from dataclasses import dataclass, field
from time import time
from typing import Optional
import statistics


@dataclass(frozen=True)
class Move:
    column: int
    score: float = 0.0


@dataclass
class Stats:
    durations: list = field(default_factory=list)
    last: Optional[Move] = None

    def __post_init__(self):
        self.durations.clear()


STATS = Stats()


def agent(observation, configuration):
    started = time()
    moves = [Move(c, -abs(c - configuration.columns / 2)) for c in range(configuration.columns)
             if observation.board[c] == 0]
    best = max(moves, key=lambda m: m.score)
    STATS.durations.append(time() - started)
    if len(STATS.durations) > 2:
        print("median move time", statistics.median(STATS.durations))
    STATS.last = best
    return best.column


if __name__ == "__main__":
    print("{} bots ready".format(1))
"""

INLINE_BOTS = {
    "connectx negamax": CONNECTX_NEGAMAX,
    "rps counter": RPS_COUNTER,
    "tictactoe itertools": TICTACTOE_ITERTOOLS,
    "numpy": NUMPY_BOT,
    "dataclasses and time": DATACLASS_TIMER_BOT,
}


@pytest.mark.parametrize("source", INLINE_BOTS.values(), ids=list(INLINE_BOTS))
def test_realistic_bots_pass(source: str) -> None:
    assert format_findings(validate_source(source.encode(), allow_numpy=source is NUMPY_BOT)) == ""
    compile(source, "bot.py", "exec")  # the sample itself is valid Python


def test_example_bots_pass() -> None:
    assert BOTS_DIR.is_dir()
    bots = sorted(path for path in BOTS_DIR.glob("*.py") if path.name != "__init__.py")
    failures = {path.name: format_findings(validate_source(path.read_bytes()), path.name) for path in bots}
    assert {name: text for name, text in failures.items() if text} == {}


def test_one_module_list_for_both_layers() -> None:
    """The validator's allow-list is the restricted runtime's (numpy being the operator's opt-in)."""
    assert ALLOWED_MODULES == restricted.ALLOWED_MODULES | restricted.NUMPY_MODULES
    assert {"collections.abc", "numpy.random"} <= ALLOWED_MODULES and "json.decoder" not in ALLOWED_MODULES
    for module in sorted(ALLOWED_MODULES):
        assert validate_source(f"import {module}\n", allow_numpy=True) == [], module
        parent, _, child = module.rpartition(".")
        if parent:
            assert validate_source(f"from {parent} import {child}\n", allow_numpy=True) == [], module


def test_every_route_of_the_escaped_names_bot_is_flagged() -> None:
    """Each line of the attack bot's NAMES builds a dunder name without writing one."""
    source = ESCAPED_NAMES_BOT.read_text(encoding="utf-8")
    routes = [number for number, line in enumerate(source.splitlines(), start=1) if line.endswith("# route")]
    flagged = {f.line for f in validate_source(source) if f.rule == "dunder_string"}
    assert len(routes) >= 15 and [line for line in routes if line not in flagged] == []


def test_folding_reports_where_the_name_first_appears() -> None:
    findings = validate_source(b"u = chr(95)\nname = u + (chr(95) + 'x') + ''.join(['_', '_'])\n")
    assert [(f.line, f.col, f.message) for f in findings] == [
        (1, 5, "'_' made from its code point (95) is forbidden; write names out"),
        (2, 13, "'_' made from its code point (95) is forbidden; write names out"),
        (2, 30, "expression builds '__': strings with '__' are forbidden"),
    ]


def test_size_limit() -> None:
    big = b"x = 1\n" * (MAX_SOURCE_BYTES // 6 + 1)
    assert [f.rule for f in validate_source(big)] == ["size"]
    assert validate_source(b"x = 1\n" * 10, max_bytes=59) == [
        Finding(1, 1, "size", "source is 60 bytes; the limit is 59")
    ]
    assert validate_source(b"x = 1\n" * 10, max_bytes=60) == []


def test_reports_every_finding_sorted() -> None:
    source = b"import os\nx = eval('1')\ny = x.__class__\nimport socket\n"
    findings = validate_source(source)
    assert [(f.line, f.col, f.rule) for f in findings] == [
        (1, 1, "import"),
        (2, 5, "builtin"),
        (3, 7, "dunder"),
        (4, 1, "import"),
    ]


def test_messages_state_facts() -> None:
    messages = {f.message for f in validate_source(b"import os\nimport xyz\nopen('f')\nx.__dict__\n")}
    assert "import of 'os' is forbidden" in messages
    assert "call of 'open' is forbidden" in messages
    assert "attribute '__dict__' is forbidden (dunder)" in messages
    allowed = next(m for m in messages if m.startswith("module 'xyz'"))
    listed = ", ".join(sorted(ALLOWED_MODULES - restricted.NUMPY_MODULES - {"__future__"}))
    assert allowed == f"module 'xyz' is not in the allowed list: {listed}"


def test_syntax_error_message_and_place() -> None:
    [finding] = validate_source(b"def f(:\n    pass\n")
    assert (finding.line, finding.col, finding.rule) == (1, 7, "syntax")
    assert finding.message == "invalid syntax"


def test_str_source_is_validated_as_utf8() -> None:
    assert validate_source("x = 'ｅｖａｌ'\n") == []
    assert places("import os\n") == {("import", 1, 1)}
    assert places("x = '\ud800'\n") == {("encoding", 1, 6)}


def test_format_findings() -> None:
    findings = validate_source(b"x = 1\n\nimport os\n")
    assert format_findings(findings) == "bot.py:3:1: import: import of 'os' is forbidden"
    assert format_findings(findings, "mine.py").startswith("mine.py:3:1: ")
    assert format_findings([]) == ""


def test_check_source() -> None:
    check_source(RPS_COUNTER)
    with pytest.raises(ValidationFailed) as info:
        check_source(b"import os\nimport sys\n", "evil.py")
    assert [f.line for f in info.value.findings] == [1, 2]
    first = "first at 1:1: import: import of 'os' is forbidden"
    assert str(info.value) == f"evil.py rejected with 2 findings; {first}"
    assert info.value.code == "validation_failed"


def test_rule_ids_are_plain_strings() -> None:
    [finding] = validate_source(b"import os\n")
    assert type(finding.rule) is str
    assert {rule.value for rule in Rule} >= {
        "size", "encoding", "nul", "syntax", "import", "builtin", "dunder", "dunder_string",
        "introspection", "attribute", "format", "unicode", "async",
    }  # fmt: skip
