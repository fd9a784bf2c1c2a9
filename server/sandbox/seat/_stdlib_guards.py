"""Layer 2's guards on the standard library's entry points that take names or source as data.

Theory of operation
-------------------
Some of the modules a bot may import write Python source from what they are given and run it
outside the restricted compiler, in the bot's globals, where dunder attributes are allowed:
``dataclasses`` builds ``__init__``, ``__repr__``, ``__eq__`` and others from field names,
``collections.namedtuple`` its ``__new__``, ``typing.ForwardRef`` compiles the strings of type
expressions. Others store on the object they are given. The audit behind this module
(``SECURITY.md``, "Layer 2 audit") found every such route in the allowed modules; each is
closed here in one of three ways:

1. Checked inputs. :func:`guarded_dataclass` checks every name it will compile: the class's
   own annotations and every field it inherits (a field renamed after its own class was
   checked, or brought in by a base of another MRO), each an exact ``str`` identifier, no
   keyword, no dunder, no private name a stdlib base defines; and each inherited field must
   be a real ``Field``. That holds because no one can change a field: its class is final in the
   arena (:func:`seal_stdlib`: no subclass whose ``name`` is a property) and its attributes
   are not the bot's to store (``_guards.store_rule``). ``namedtuple`` checks its names itself
   (exact ``str`` identifiers, no ``_``, no keyword); the functional ``Enum`` API is given
   public member names only (:func:`guarded_create_enum`).
2. No code kept. ``typing.ForwardRef`` compiles its string but keeps no code object
   (:func:`forward_ref_without_code`); the evaluators (``get_type_hints``) are not exposed.
3. Stores on the bot's own objects only. ``functools.update_wrapper`` (and ``wraps``),
   ``functools.total_ordering``, ``typing.final``, ``no_type_check``, ``runtime_checkable`` and
   ``dataclass_transform`` write attributes of what they are given: they take the bot's own
   objects only, as a store by the bot would.

Beneath those, one check holds for the whole class (:class:`GeneratedCodeCheck`): once the
bot's code runs, an audit hook reads every piece of source compiled in the seat that is not a
module file, that is every piece the standard library generates, and refuses any that names a
dunder other than the few the generators use (``__create_fn__``, ``__class__``,
``__qualname__``, ``__setattr__`` on ``object`` or ``super()``...), a frame, code or internals
attribute, an import, or a ``global``. A name that slipped past the guards above could still
not reach ``().__class__.__base__.__subclasses__()`` or a function's globals that way.

Standard library only, nothing of the project: the bot runtime loads this file by path.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import keyword
import sys
import typing
from collections.abc import Callable
from typing import Any

from ._guards import RestrictedError, exact, is_bot_class, is_private, writable

__all__ = [
    "GeneratedCodeCheck", "STDLIB_OVERRIDES", "forward_ref_without_code", "guarded_create_enum",
    "guarded_dataclass", "guarded_total_ordering", "guarded_update_wrapper", "guarded_wraps", "seal_stdlib",
]  # fmt: skip


# -- 1. checked inputs -----------------------------------------------------------------------------


def _field_name_problem(name: object, klass: type) -> str | None:
    """Why ``name`` may not be a field of dataclass ``klass``, or None."""
    if type(name) is not str or not str.isidentifier(name) or keyword.iskeyword(name) or name[:2] == "__":
        return f"dataclass field name {name!r} is not allowed in the arena"
    # The generated code and asdict() read fields unguarded: a field without a value
    # (init=False) would read a stdlib base's private attribute of that name.
    if is_private(name):
        for owner in klass.__mro__:
            if name in vars(owner) and not is_bot_class(owner):
                return f"dataclass field name {name!r} is a private attribute of class {owner.__name__!r}"
    return None


def _dataclass_field_names(klass: type) -> list[object]:
    """Every field name ``dataclasses`` will compile for ``klass``: its own annotations, then the
    fields of every dataclass along its MRO (it reads the nearest base's, a subset of these).

    Raises:
        TypeError: an inherited field that is not a real ``dataclasses.Field``.
    """
    names: list[object] = list(vars(klass).get("__annotations__", {}))
    for base in klass.__mro__[1:]:
        for item in vars(base).get("__dataclass_fields__", {}).values():
            if type(item) is not dataclasses.Field:
                raise TypeError(f"dataclass() of {klass.__name__!r}: a field of base {base.__name__!r} is a "
                                f"{type(item).__name__!r}, not a dataclasses.Field")
            names.append(item.name)
    return names


def guarded_dataclass(cls: Any = None, /, **options: Any) -> Any:
    """``dataclasses.dataclass`` that first checks every field name it will compile into source."""

    def wrap(klass: Any) -> Any:
        if not is_bot_class(klass):
            raise TypeError(f"dataclass() takes a class of the bot's own in the arena, not {klass!r}")
        for name in _dataclass_field_names(klass):
            problem = _field_name_problem(name, klass)
            if problem is not None:
                raise TypeError(problem)
        return dataclasses.dataclass(klass, **options)

    return wrap if cls is None else wrap(cls)


_create_enum: Callable[..., Any] = enum.EnumType._create_  # type: ignore[attr-defined]


def guarded_create_enum(cls: Any, class_name: Any, names: Any, **options: Any) -> Any:
    """The functional ``Enum`` API with public member names only: a dunder "member" is a class attribute."""

    def member(name: object) -> str:
        name = exact(name, "enum member name")
        if name.startswith("_"):
            raise ValueError(f"enum member name {name!r} is not allowed in the arena")
        return name

    if isinstance(names, str):
        names = names.replace(",", " ").split()
    if isinstance(names, (list, tuple)) and names and isinstance(names[0], str):
        names = [member(name) for name in names]
    else:
        mapping, names = names, []
        for item in mapping:
            name, value = (item, mapping[item]) if isinstance(item, str) else item
            names.append((member(name), value))
    return _create_enum(cls, class_name, names, **options)


# -- 2. no code kept -------------------------------------------------------------------------------

_forward_ref_init: Callable[..., None] = typing.ForwardRef.__init__


def forward_ref_without_code(self: typing.ForwardRef, arg: Any, *args: Any, **kwargs: Any) -> None:
    """``typing.ForwardRef.__init__`` that keeps no code object.

    Every string in a type expression (``List["x"]``, ``Dict[str, "y"]``, ``TypeVar(bound="z")``,
    a string field type of ``NamedTuple`` or ``TypedDict``) becomes a ForwardRef, which compiles
    it, any expression, and keeps the code for ``get_type_hints``. The arena refuses that
    evaluator, so the code serves nothing but an escape (with a function class, it runs
    unchecked). The string is still compiled here, so a bad one is still a SyntaxError.
    """
    _forward_ref_init(self, arg, *args, **kwargs)
    self.__forward_code__ = None  # type: ignore[assignment]


# -- 3. stores on the bot's own objects only -------------------------------------------------------


def guarded_update_wrapper(wrapper: Any, wrapped: Any) -> Any:
    """``functools.update_wrapper`` with its default names, onto the bot's own function or object:
    any names copy any dunder, and the wrapper's attributes are written."""
    if isinstance(wrapper, type) or isinstance(wrapped, type):
        raise TypeError("functools.update_wrapper() and wraps() take functions only in the arena")
    return functools.update_wrapper(writable(wrapper), wrapped)


def guarded_wraps(wrapped: Any) -> Any:
    """``functools.wraps`` as :func:`guarded_update_wrapper` allows it."""
    return functools.partial(guarded_update_wrapper, wrapped=wrapped)


def guarded_total_ordering(cls: Any) -> Any:
    """``functools.total_ordering`` on the bot's own classes: it sets the missing comparisons."""
    if not is_bot_class(cls):
        raise TypeError(f"functools.total_ordering() takes a class of the bot's own in the arena, not {cls!r}")
    return functools.total_ordering(cls)


def _on_own(decorator: Callable[[Any], Any], what: str) -> Callable[[Any], Any]:
    """``decorator`` (which stores on its argument) for the bot's own functions and classes only."""

    def guarded(target: Any) -> Any:
        try:
            writable(target)
        except (AttributeError, TypeError) as exc:
            raise TypeError(f"{what}() takes the bot's own functions and classes in the arena: {exc}") from None
        return decorator(target)

    return functools.update_wrapper(guarded, decorator)


def _guarded_dataclass_transform(**kwargs: Any) -> Callable[[Any], Any]:
    return _on_own(typing.dataclass_transform(**kwargs), "typing.dataclass_transform")


STDLIB_OVERRIDES: dict[str, dict[str, Any]] = {
    "dataclasses": {"dataclass": guarded_dataclass},
    "functools": {
        "update_wrapper": guarded_update_wrapper, "wraps": guarded_wraps, "total_ordering": guarded_total_ordering,
    },
    "typing": {
        "final": _on_own(typing.final, "typing.final"),
        "no_type_check": _on_own(typing.no_type_check, "typing.no_type_check"),
        "runtime_checkable": _on_own(typing.runtime_checkable, "typing.runtime_checkable"),
        "dataclass_transform": functools.update_wrapper(_guarded_dataclass_transform, typing.dataclass_transform),
    },
}  # fmt: skip


# -- beneath them: the source the standard library generates ----------------------------------------

# What the standard library's generated source names (dataclasses, namedtuple), and nothing else
# with two leading underscores: the names of its wrapper and of the methods it defines, and the
# attributes its methods read or call.
GENERATED_NAMES = frozenset({"__create_fn__", "__dataclass_self__", "__dataclass_builtins_object__"})
GENERATED_METHODS = frozenset({
    "__init__", "__repr__", "__eq__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__setattr__", "__delattr__",
})  # fmt: skip
GENERATED_ATTRIBUTES = frozenset({"__class__", "__qualname__", "__post_init__"})
# object.__setattr__(self, 'x', value) in a frozen dataclass's __init__, and the super() calls of
# its __setattr__ and __delattr__: a store primitive, allowed in those shapes only.
_STORE_PRIMITIVES = frozenset({"__setattr__", "__delattr__"})


class GeneratedCodeCheck(ast.NodeVisitor):
    """Refuses source the standard library generated from names it was given, if it names what the
    bot may not (see the module docstring); ``denied`` holds the frame, code and internals attributes."""

    def __init__(self, denied: frozenset[str]) -> None:
        self.denied = denied

    def check(self, source: str | bytes) -> None:
        """Raises:
        RestrictedError: naming the first offending name, or the source does not parse.
        """
        try:
            tree = ast.parse(source, "<generated>")
        except SyntaxError as exc:
            raise RestrictedError(f"generated code does not parse: {exc.msg}", ("<generated>", 1, 1, None)) from None
        self.visit(tree)

    def fail(self, node: ast.AST, what: str) -> RestrictedError:
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        return RestrictedError(f"code generated by the standard library names {what}: refused in the arena",
                               ("<generated>", line, col, None))

    def name(self, node: ast.AST, name: str, allowed: frozenset[str]) -> None:
        if (name.startswith("__") and name not in allowed) or name in self.denied:
            raise self.fail(node, repr(name))

    def visit_Name(self, node: ast.Name) -> None:
        self.name(node, node.id, GENERATED_NAMES | GENERATED_METHODS)  # ``return __init__``

    def visit_arg(self, node: ast.arg) -> None:
        self.name(node, node.arg, GENERATED_NAMES)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.name(node, node.name, GENERATED_NAMES | GENERATED_METHODS)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _STORE_PRIMITIVES:
            if not _is_generated_store(node, func):
                raise self.fail(node, f"attribute {func.attr!r} in a call of this shape")
            for child in (func.value, *node.args):
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _STORE_PRIMITIVES:  # a store primitive outside a call of the generated shapes
            raise self.fail(node, f"attribute {node.attr!r} here")
        self.name(node, node.attr, GENERATED_ATTRIBUTES)
        self.generic_visit(node)

    def refuse(self, node: ast.AST) -> None:
        raise self.fail(node, f"a {type(node).__name__.lower()} statement")

    visit_Import = visit_ImportFrom = visit_Global = visit_Nonlocal = visit_ClassDef = refuse
    visit_AsyncFunctionDef = visit_Await = visit_AsyncFor = visit_AsyncWith = refuse


def _names(nodes: list[ast.expr]) -> list[str | None]:
    return [node.id if isinstance(node, ast.Name) else None for node in nodes]


def _is_generated_store(call: ast.Call, func: ast.Attribute) -> bool:
    """``__dataclass_builtins_object__.__setattr__(self, 'field', value)``, or ``super(cls,
    self).__setattr__(name, value)`` / ``.__delattr__(name)``: the generated shapes, no other."""
    if call.keywords:
        return False
    target = func.value
    if isinstance(target, ast.Name):
        field = call.args[1] if len(call.args) == 3 else None
        return (target.id == "__dataclass_builtins_object__" and func.attr == "__setattr__"
                and isinstance(call.args[0], ast.Name) and isinstance(field, ast.Constant)
                and type(field.value) is str and field.value.isidentifier() and not field.value.startswith("__"))
    return (isinstance(target, ast.Call) and _names([target.func]) == ["super"] and not target.keywords
            and _names(target.args) == ["cls", "self"]
            and _names(call.args) == (["name", "value"] if func.attr == "__setattr__" else ["name"]))


class _Audit:
    """The seat's audit hook: once armed, every compile of source text that is not a module file
    goes through the check. Armed for good: nothing can take an audit hook away."""

    def __init__(self, check: GeneratedCodeCheck) -> None:
        self.check = check
        self.busy = False  # ast.parse compiles too: not checked twice

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "compile" or self.busy:
            return
        source, filename = args
        if not isinstance(source, (str, bytes)):
            return  # a syntax tree: the restricted compiler's own, of the bot's checked code
        if isinstance(filename, str) and filename.startswith("/") and filename.endswith(".py"):
            return  # a module imported from its source file, not generated
        self.busy = True
        try:
            self.check.check(source)
        finally:
            self.busy = False


_armed: list[_Audit] = []  # an audit hook is process-wide: one per process


def arm_generated_code_check(denied: frozenset[str]) -> None:
    """From now on, check every piece of source this process compiles that is not a module file.

    Call it just before the bot's module runs (never in a process that goes on to compile the
    runtime's or the bot's own source from text: the check would refuse their dunders).
    """
    if not _armed:
        audit = _Audit(GeneratedCodeCheck(denied))
        sys.addaudithook(audit)
        _armed.append(audit)


# Classes the standard library trusts by their type, final in the arena: a subclass could make
# ``Field.name`` a property that answers one name to the check and another to the code generator.
FINAL_CLASSES = (dataclasses.Field, typing.ForwardRef)


def _final_class(cls: type, /, **kwargs: Any) -> None:
    raise TypeError(f"subclasses of {cls.__mro__[1].__qualname__} are not available in the arena")


def _final_new(final: type) -> Callable[..., Any]:
    def __new__(cls: type, /, *args: Any, **kwargs: Any) -> Any:  # noqa: N807 - the slot it fills
        if cls is not final:  # an Enum with this mixin makes its members before __init_subclass__ runs
            raise TypeError(f"subclasses of {final.__qualname__} are not available in the arena")
        return object.__new__(cls)

    return __new__


def seal_stdlib() -> None:
    """Patch the standard library of this process, the seat's, for the arena (idempotent): the
    functional ``Enum`` API and ``ForwardRef`` as above, :data:`FINAL_CLASSES` final (no subclass,
    nor an instance of one). Nothing in the seat's process evaluates type hints or subclasses them."""
    enum.EnumType._create_ = guarded_create_enum  # type: ignore[attr-defined]
    typing.ForwardRef.__init__ = forward_ref_without_code  # type: ignore[method-assign]
    for final in FINAL_CLASSES:
        final.__init_subclass__ = classmethod(_final_class)  # type: ignore[assignment]
        final.__new__ = _final_new(final)  # type: ignore[method-assign]
