"""Constant folding for layer 1: the values of the expressions a bot builds from literals only.

Theory of operation
-------------------
The validator rejects every string constant that holds ``__``, so a bot that wants a dunder
name must build it: ``'_' + '_class'``, ``''.join(['_', '_'])``, ``f'{"_"}_'``,
``chr(95) * 2``, ``bytes([95, 95]).decode()``, ``'%c' % 95``. :func:`fold` computes the value
of every node built from literals with the few side-effect-free operations such names are
written with (``+ - * %``, f-strings, indexing and slicing, ``chr str bytes bytearray format
reversed tuple list`` and some ``str``/``bytes`` methods), and knows nothing of the rest.

It is bounded on purpose. The nodes are folded bottom-up in one pass (a deep tree cannot
overflow the stack); every value is short (:data:`MAX_CHARS`, so a string built in many
steps is unknown past that length: the validator's edge rule still sees its joins) and ints
are small; and every operation is checked before it runs, never after: a repeat count, a
width, a template or a join never makes the validator allocate more than a few times
:data:`MAX_CHARS`. A name the folding cannot see is still refused by layer 2 at run time.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_CHARS", "Folding", "Value", "fold", "has_dunder"]

Value = str | bytes | int | tuple[Any, ...]
MAX_CHARS = 256  # far longer than any name; a longer value is unknown
MAX_INT = 1 << 31
UNDERSCORE = 95  # ord("_")
# A spec or conversion that cannot pad or repeat: the output is as long as the input, or near.
SIMPLE_SPECS = frozenset({"", "s", "d", "c", "x", "X", "o", "b"})
PERCENT_TEMPLATE = re.compile(r"(?:[^%]|%[sdicrxXo%])*", re.S)
ENCODINGS = frozenset({"ascii", "utf-8", "utf8", "latin-1", "latin1"})
# str and bytes methods folded as they are, when every argument is known: none of them adds
# more than its arguments hold (join, replace and the padding ones are checked first, below).
PLAIN_METHODS = frozenset({
    "capitalize", "casefold", "lower", "lstrip", "removeprefix", "removesuffix", "rstrip", "split", "strip",
    "swapcase", "title", "upper",
})  # fmt: skip
PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_FORMATTER = string.Formatter()
_CONVERSIONS: dict[int, Callable[[object], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
_UNKNOWN = (ArithmeticError, IndexError, KeyError, LookupError, TypeError, ValueError, RecursionError)


class _Unknown(Exception):
    """The node's value is not known."""


def has_dunder(value: Value) -> bool:
    """Whether a folded value is, or holds, text with ``__`` in it."""
    if isinstance(value, bytes):
        return b"__" in value
    if isinstance(value, tuple):
        return any(has_dunder(item) for item in value)
    return isinstance(value, str) and "__" in value


def _is_small(value: Value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_INT < value < MAX_INT
    return len(value) <= MAX_CHARS


def _text(value: Value) -> str | bytes:
    if not isinstance(value, (str, bytes)):
        raise _Unknown
    return value


def _scalar(value: Value) -> str | int:
    """A value that str(), repr() and format() turn into short text: no tuple (its repr nests)."""
    if isinstance(value, (str, int)):
        return value
    raise _Unknown


def _format(value: Value, conversion: int, spec: Value) -> str:
    if spec not in SIMPLE_SPECS:
        raise _Unknown
    scalar = _scalar(value)
    converter = _CONVERSIONS.get(conversion)
    return format(scalar if converter is None else converter(scalar), str(spec))


@dataclass
class Folding:
    """What :func:`fold` found: each known node's value, and the nodes that make ``_`` from 95."""

    values: dict[ast.AST, Value] = field(default_factory=dict)
    code_points: set[ast.AST] = field(default_factory=set)

    def get(self, node: ast.AST | None) -> Value:
        if node is None or node not in self.values:
            raise _Unknown
        return self.values[node]

    def evaluate(self, node: ast.AST) -> Value:
        """The value of ``node`` from its children's, or :class:`_Unknown`."""
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise _Unknown
        return handler(self, node)

    def constant(self, node: ast.Constant) -> Value:
        if isinstance(node.value, (str, bytes, int)) and not isinstance(node.value, bool):
            return node.value
        raise _Unknown

    def unary(self, node: ast.UnaryOp) -> Value:
        operand = self.get(node.operand)
        if not isinstance(operand, int) or not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _Unknown
        return -operand if isinstance(node.op, ast.USub) else operand

    def sequence(self, node: ast.Tuple | ast.List) -> Value:
        return tuple(self.get(item) for item in node.elts)

    def binary(self, node: ast.BinOp) -> Value:
        left, right, op = self.get(node.left), self.get(node.right), node.op
        if isinstance(op, ast.Add | ast.Sub) and isinstance(left, int) and isinstance(right, int):
            return left + right if isinstance(op, ast.Add) else left - right
        if isinstance(op, ast.Add) and type(left) is type(right) and isinstance(left, (str, bytes)):
            return _sized(len(left) + len(_text(right)), lambda: left + right)  # type: ignore[operator]
        if isinstance(op, ast.Mult):
            if isinstance(left, int) and isinstance(right, int):
                return _sized(0, lambda: left * right)
            text, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(count, int) and isinstance(text, (str, bytes)):
                return _sized(len(text) * max(count, 0), lambda: text * count)
        if isinstance(op, ast.Mod) and isinstance(left, str) and PERCENT_TEMPLATE.fullmatch(left):
            args = right if isinstance(right, tuple) else (right,)
            items = tuple(_scalar(arg) for arg in args)
            if "%c" in left and UNDERSCORE in items:
                self.code_points.add(node)
            return _sized(len(left) + sum(len(str(item)) for item in items), lambda: left % items)
        raise _Unknown

    def joined(self, node: ast.JoinedStr) -> Value:
        parts = [self.get(value) for value in node.values]
        if not all(isinstance(part, str) for part in parts):
            raise _Unknown
        return "".join(parts)  # type: ignore[arg-type]

    def formatted(self, node: ast.FormattedValue) -> Value:
        value = self.get(node.value)
        spec = self.get(node.format_spec) if node.format_spec is not None else ""
        if spec == "c" and value == UNDERSCORE:
            self.code_points.add(node)
        return _format(value, node.conversion, spec)

    def subscript(self, node: ast.Subscript) -> Value:
        value = self.get(node.value)
        if not isinstance(value, (str, bytes, tuple)):
            raise _Unknown
        index = node.slice
        if isinstance(index, ast.Slice):
            bounds: list[Any] = [None if part is None else self.get(part) for part in (index.lower, index.upper,
                                                                                        index.step)]
            if not all(bound is None or isinstance(bound, int) for bound in bounds):
                raise _Unknown
            return value[slice(*bounds)]
        position = self.get(index)
        if not isinstance(position, int):
            raise _Unknown
        return value[position]

    def call(self, node: ast.Call) -> Value:
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _Unknown
        args = [self.get(arg) for arg in node.args]
        if isinstance(node.func, ast.Name):
            return self.function(node, node.func.id, args)
        if isinstance(node.func, ast.Attribute):
            return self.method(node, self.get(node.func.value), node.func.attr, args)
        raise _Unknown

    def function(self, node: ast.Call, name: str, args: list[Value]) -> Value:
        """The builtins names are made with (assumed not rebound: a false alarm costs little)."""
        if name == "chr" and len(args) == 1 and isinstance(args[0], int):
            if args[0] == UNDERSCORE:
                self.code_points.add(node)
            return chr(args[0])
        if name in ("bytes", "bytearray") and len(args) == 1 and isinstance(args[0], tuple):
            if UNDERSCORE in args[0]:
                self.code_points.add(node)
            return bytes(args[0])
        if name in ("bytes", "str") and len(args) == 2 and args[1] in ENCODINGS:
            encoding = str(args[1])
            if name == "str" and isinstance(args[0], bytes):
                return args[0].decode(encoding)
            if name == "bytes" and isinstance(args[0], str):
                return args[0].encode(encoding)
        if name == "str" and len(args) == 1:
            return str(_scalar(args[0]))
        if name == "format" and len(args) in (1, 2):
            if args[1:] == ["c"] and args[0] == UNDERSCORE:
                self.code_points.add(node)
            return _format(args[0], -1, args[1] if len(args) == 2 else "")
        if name in ("tuple", "list") and len(args) == 1 and isinstance(args[0], (str, tuple)):
            return tuple(args[0])
        if name == "reversed" and len(args) == 1 and isinstance(args[0], (str, bytes, tuple)):
            return tuple(reversed(args[0]))
        raise _Unknown

    def method(self, node: ast.Call, receiver: Value, name: str, args: list[Value]) -> Value:
        text: Any = _text(receiver)  # str or bytes: their methods check their own arguments
        if name == "join" and len(args) == 1:
            parts = tuple(args[0]) if isinstance(args[0], (str, tuple)) else ()
            if not parts or not all(type(part) is type(text) for part in parts):
                raise _Unknown
            size = sum(len(part) for part in parts) + len(text) * (len(parts) - 1)
            return _sized(size, lambda: text.join(parts))
        if name == "replace" and len(args) in (2, 3):
            old, new = _text(args[0]), _text(args[1])
            count = text.count(old)  # len + 1 for an empty old
            return _sized(len(text) + count * len(new), lambda: text.replace(*args))
        if name in ("decode", "encode") and len(args) <= 1 and all(arg in ENCODINGS for arg in args):
            encoding = str(args[0]) if args else "utf-8"
            if isinstance(text, bytes) and name == "decode":
                return text.decode(encoding)
            if isinstance(text, str) and name == "encode":
                return text.encode(encoding)
        if name in PADDING_METHODS and args and isinstance(args[0], int):
            return _sized(args[0], lambda: getattr(text, name)(*args))
        if name == "format" and isinstance(text, str):
            return self.format_template(node, text, args)
        if name in PLAIN_METHODS:
            result = getattr(text, name)(*args)
            return tuple(result) if isinstance(result, list) else result
        raise _Unknown

    def format_template(self, node: ast.Call, template: str, args: list[Value]) -> Value:
        """``template.format(*args)`` for positional fields with simple specs only."""
        automatic = 0
        for _literal, field_name, spec, conversion in _FORMATTER.parse(template):
            if field_name is None:
                continue
            if not (field_name == "" or field_name.isdigit()) or spec not in SIMPLE_SPECS:
                raise _Unknown
            if conversion not in (None, "s", "r", "a"):
                raise _Unknown
            index = int(field_name) if field_name else automatic
            automatic += 1
            if spec == "c" and _scalar(args[index]) == UNDERSCORE:
                self.code_points.add(node)
        return _sized(len(template) + sum(len(str(arg)) for arg in args), lambda: template.format(*args))


def _sized(size: int, compute: Callable[[], Value]) -> Value:
    """``compute()`` when the value it makes has at most ``size`` (a bound known beforehand)."""
    if size > MAX_CHARS:
        raise _Unknown
    return compute()


_HANDLERS: dict[type[ast.AST], Callable[[Folding, Any], Value]] = {
    ast.Constant: Folding.constant, ast.UnaryOp: Folding.unary, ast.Tuple: Folding.sequence,
    ast.List: Folding.sequence, ast.BinOp: Folding.binary, ast.JoinedStr: Folding.joined,
    ast.FormattedValue: Folding.formatted, ast.Subscript: Folding.subscript, ast.Call: Folding.call,
}  # fmt: skip


def fold(nodes: Sequence[ast.AST]) -> Folding:
    """Fold ``nodes``, listed parents before children (as a breadth-first walk lists them)."""
    folding = Folding()
    for node in reversed(nodes):  # children first
        try:
            value = folding.evaluate(node)
        except (_Unknown, *_UNKNOWN):
            continue
        if _is_small(value):
            folding.values[node] = value
    return folding
