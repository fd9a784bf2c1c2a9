"""The run-time half of layer 2: what the bot's rewritten code and its builtins call.

Theory of operation
-------------------
``restricted.py`` rewrites the bot's tree so that the risky attribute operations go through
these functions; they hold the rules that need the object itself:

* ``x._y`` (one leading underscore, never a dunder) reaches an attribute only the bot's own
  code could have put there. ``x`` must be a class the bot created or an instance of one, and
  the first class along the MRO that defines ``_y`` must be the bot's too; when no class
  defines it, it can only be in the instance's own ``__dict__``. So ``random._os``,
  ``Random()._randbelow``, ``f._x`` on a function and, for ``class A(random.Random)``,
  ``A()._randbelow`` (found in ``Random`` first) are refused. The read is
  ``object.__getattribute__``: no ``__getattr__`` of a stdlib base runs on the name.
  Names the stdlib's metaclasses plant in the bot's classes and that give more than the bot
  has (``_new_member_`` is ``object.__new__``) are refused by name.
* A store (``x._y = v``, ``del x._y``, and ``x._y += v``, whose read is not rewritten) follows
  the same rule, and the object's ``__setattr__``, ``__delattr__``, ``__getattribute__`` and
  ``__getattr__`` must all be C's (no stdlib Python hook sees the name). Any store to a class
  the bot did not create is refused: the stdlib's classes are shared with the trusted runtime.
* ``x.format`` and ``x.format_map`` check their template (``'{0.__class__}'``).
* ``dataclass`` compiles field names into source and reads fields by name outside these
  guards (``asdict``, ``__repr__``): it takes identifiers only, and no private name that a
  stdlib base of the class defines (a field without a value would read the base's).
* ``type(x)`` never gives a metaclass (it builds classes from any dict) nor one of
  :data:`HIDDEN_CLASSES` (the function class makes any code object a function), however
  ``type`` is called: directly, or handed to ``map``, ``functools.partial``, ``sorted``.
* ``typing.ForwardRef`` keeps no code object of the strings it compiles.

A class is the bot's when its own ``__module__`` is ``bot``: its class statements, and the
stdlib's class factories it calls (``namedtuple``, the functional ``Enum``, ``dataclass``
with ``slots=True``) name the caller's module. It can neither rename a class nor write a
dunder, so no other class carries that name.

Standard library only, nothing of the project: the bot runtime loads this file by path.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # str.format's own template parser
import enum
import functools
import keyword
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = [
    "BOT_MODULE", "FORMAT_METHODS", "HIDDEN_CLASSES", "STAND_INS", "SafeModule", "SafeType", "caught", "exact",
    "format_attribute", "forward_ref_without_code", "guarded_create_enum", "guarded_dataclass",
    "guarded_update_wrapper", "guarded_wraps", "is_bot_class", "is_private", "private_attribute", "writable",
]  # fmt: skip

BOT_MODULE = "bot"  # the bot's module name: its classes have this __module__, no other class can
FORMAT_METHODS = frozenset({"format", "format_map"})
# Private names the stdlib's metaclasses put in a class of the bot's: object.__new__ (an
# instance of any class, its __init__ skipped) and the ABC machinery's state.
DENIED_PRIVATE = frozenset({"_abc_impl", "_new_member_"})
# What a private attribute may never hold, whoever put it there.
_REFUSED_VALUES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
_HOOKS = ("__getattribute__", "__getattr__", "__setattr__", "__delattr__")


def exact(name: object, what: str = "attribute name") -> str:
    """``name`` as a plain ``str``: a subclass could lie to ``startswith`` or ``in``."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, not {type(name).__name__!r}")
    return str.__str__(name)  # a fresh exact str for a subclass


def is_private(name: str) -> bool:
    """One leading underscore, not two: the names the private-attribute rule governs."""
    return name[:1] == "_" and name[:2] != "__"


def is_bot_class(cls: object) -> bool:
    """Whether ``cls`` is a class the bot's code created."""
    return isinstance(cls, type) and vars(cls).get("__module__") == BOT_MODULE


class SafeModule:
    """A whitelisted module as a bot sees it: vetted public attributes only, read-only.

    No ``__name__``: for a missing ``x``, ``from m import x`` would fall back to sys.modules
    and hand out a real submodule (``from json import decoder``).
    """

    def __getattr__(self, name: str) -> Any:  # only for what the proxy lacks
        raise AttributeError(f"module {self.__dict__.get('_arena_name')!r} has no attribute {name!r} in the arena")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __repr__(self) -> str:
        return f"<module {self.__dict__.get('_arena_name')!r} (arena)>"


# -- attributes starting with "_" ------------------------------------------------------------------


def _what(obj: Any) -> str:
    if type(obj) is SafeModule:
        return repr(obj)
    if issubclass(type(obj), type):
        return f"class {obj.__name__!r}"
    return f"{type(obj).__name__!r} object"


def _refusal(obj: object, name: str, why: str) -> AttributeError:
    return AttributeError(f"attribute {name!r} of {_what(obj)} is private in the arena: {why}")


_NOT_THE_BOTS = "'_' attributes are open only on the bot's own classes and their instances"


def _private_problem(obj: Any, name: str) -> str | None:
    """Why the bot may not reach private attribute ``name`` of ``obj``, or None if it may."""
    if name in DENIED_PRIVATE:
        return "set by the standard library, not by the bot"
    cls: Any = type(obj)  # not isinstance(): that would ask the object's own __class__
    if issubclass(cls, super):
        start, owner = obj.__thisclass__, obj.__self_class__
        if cls is not super or owner is None or not is_bot_class(start):
            return _NOT_THE_BOTS
        mro = owner.__mro__[owner.__mro__.index(start) + 1:]
        missing: str | None = "no class of the bot's after it defines it"
    elif issubclass(cls, type):
        if not is_bot_class(obj):
            return _NOT_THE_BOTS
        if any(name in vars(meta) for meta in cls.__mro__):
            return f"defined by its metaclass {cls.__name__!r}"
        mro, missing = obj.__mro__, None
    else:
        if not is_bot_class(cls):
            return _NOT_THE_BOTS
        mro, missing = cls.__mro__, None  # in no class: the instance's own __dict__ or absent
    for klass in mro:
        if name in vars(klass):
            return None if is_bot_class(klass) else f"defined by class {klass.__name__!r}, not by the bot"
    return missing


def private_attribute(obj: Any, name: str) -> Any:
    """``obj._name`` as the bot's code reads it (see the module's docstring).

    Raises:
        AttributeError: refused, or missing.
    """
    problem = _private_problem(obj, name)
    if problem is not None:
        raise _refusal(obj, name, problem)
    if issubclass(type(obj), super):
        value = super.__getattribute__(obj, name)
    elif issubclass(type(obj), type):
        value = type.__getattribute__(obj, name)
    else:
        value = object.__getattribute__(obj, name)
    if isinstance(value, _REFUSED_VALUES):
        raise _refusal(obj, name, f"it holds a {type(value).__name__}")
    return value


def _hook_problem(obj: object) -> str | None:
    """Why storing a private attribute of ``obj`` would run a stdlib hook on the name, or None."""
    cls = type(obj)
    if (cls.__getattribute__ is object.__getattribute__ and cls.__setattr__ is object.__setattr__
            and cls.__delattr__ is object.__delattr__ and not hasattr(cls, "__getattr__")):
        return None  # the common case, answered without walking the MRO
    if issubclass(cls, super):
        return "super() objects resolve names by themselves"
    for hook in _HOOKS:
        for klass in cls.__mro__:
            if hook in vars(klass):
                if isinstance(vars(klass)[hook], types.FunctionType):
                    return f"class {klass.__name__!r} handles its attributes with {hook}"
                break
    return None


def writable(obj: Any, name: str | None = None) -> Any:
    """``obj`` if the bot may set or delete its attribute ``name``: the target of every store.

    Raises:
        AttributeError: a private attribute the bot may not write.
        TypeError: a class the bot did not create.
    """
    if name is not None and is_private(name):
        problem = _private_problem(obj, name) or _hook_problem(obj)
        if problem is not None:
            raise _refusal(obj, name, problem)
    if isinstance(obj, type) and not is_bot_class(obj):
        raise TypeError(f"the attributes of class {obj.__name__!r} are read-only in the arena")
    return obj


# -- str.format, caught exceptions, type -----------------------------------------------------------


def _check_template(template: str) -> None:
    """Refuse a format template whose fields look up attributes or items (``{0.x}``, ``{0[x]}``)."""
    for _literal, field, spec, _conversion in _string.formatter_parser(template):
        if field is not None and ("." in field or "[" in field):
            raise ValueError(f"format field {field!r} is not allowed in the arena: no '.' or '[' in a field")
        if spec:
            _check_template(spec)


def format_attribute(obj: object, name: str) -> Any:
    """``getattr(obj, name)`` for ``format``/``format_map``, with str's own methods guarded."""
    if name not in FORMAT_METHODS:
        raise AttributeError(f"attribute {name!r} is not allowed here")
    value = getattr(obj, name)
    if value is str.format or value is str.format_map:  # unbound: the template is the first argument

        def checked(template: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(template, str):
                _check_template(template)
            return value(template, *args, **kwargs)

        return checked
    if isinstance(value, types.BuiltinMethodType) and isinstance(value.__self__, str):
        if value.__name__ in FORMAT_METHODS:
            _check_template(value.__self__)  # a str never changes: checking once is enough
    return value


def caught(exc: BaseException) -> None:
    """Scrub a caught exception: a failed lookup inside the stdlib attaches its object to the
    AttributeError (``typing.Type.x`` fails on the real ``type``, handing it to ``e.obj``)."""
    if isinstance(exc, AttributeError):
        exc.obj = None
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            caught(inner)


# The classes type() never hands the bot, by what their instances are. Their constructors
# build code, functions and methods (function(code, globals) turned a stray code object into a
# way out once: typing's ForwardRef compiles strings) or the interpreter's internals; no fair
# bot needs them. The types module itself is not importable, and no module proxy holds them.
HIDDEN_CLASSES: dict[type, str] = {
    types.FunctionType: "a function", types.CodeType: "a code object", types.FrameType: "a frame",
    types.TracebackType: "a traceback", types.GeneratorType: "a generator", types.CoroutineType: "a coroutine",
    types.AsyncGeneratorType: "an async generator", types.ModuleType: "a module", types.MethodType: "a method",
    types.BuiltinFunctionType: "a builtin function", types.CellType: "a cell",
    types.MethodWrapperType: "a method wrapper", types.WrapperDescriptorType: "a slot wrapper",
    types.MethodDescriptorType: "a method descriptor", types.ClassMethodDescriptorType: "a method descriptor",
    types.GetSetDescriptorType: "a descriptor", types.MemberDescriptorType: "a descriptor",
}  # fmt: skip
# Classes type() hands the bot a stand-in for (real class -> stand-in), filled by the optional
# guards of an opt-in module: numpy's ndarray, whose constructor takes a buffer it does not keep.
STAND_INS: dict[type, Any] = {}


class _TypeGuard(type):
    """The metaclass of the bot's ``type``: one argument only, never a real metaclass back,
    none of :data:`HIDDEN_CLASSES`, and the stand-in of a class in :data:`STAND_INS`. Passed
    around as a value (``map(type, ...)``, ``functools.partial(type, f)``, ``sorted(key=type)``),
    it is still this guard that is called."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:
            raise TypeError("type() takes exactly one argument in the arena: classes come from class statements")
        found = type(args[0])
        if issubclass(found, type):
            return cls  # a metaclass would build a class from any dict
        for klass in found.__mro__:  # a module's subclass is a module too
            kind = HIDDEN_CLASSES.get(klass)
            if kind is not None:
                raise TypeError(f"type() of {kind} is not available in the arena")
        return STAND_INS.get(found, found)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, type)

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, type)

    def __repr__(cls) -> str:
        return "<class 'type'>"


class SafeType(metaclass=_TypeGuard):
    """What the bot's code calls ``type``."""


# -- stdlib entry points that take names as data ---------------------------------------------------


def guarded_dataclass(cls: Any = None, /, **options: Any) -> Any:
    """``dataclasses.dataclass`` that first checks the field names it will compile into source."""

    def wrap(klass: Any) -> Any:
        if not is_bot_class(klass):
            raise TypeError(f"dataclass() takes a class of the bot's own in the arena, not {klass!r}")
        for name in vars(klass).get("__annotations__", {}):
            if type(name) is not str or not str.isidentifier(name) or keyword.iskeyword(name) or name[:2] == "__":
                raise TypeError(f"dataclass field name {name!r} is not allowed in the arena")
            # Its generated code and asdict() read fields unguarded: a field without a value
            # (init=False) would read a stdlib base's private attribute of that name.
            owners = [k for k in klass.__mro__ if is_private(name) and name in vars(k) and not is_bot_class(k)]
            for owner in owners[:1]:
                raise TypeError(f"dataclass field name {name!r} is a private attribute of class {owner.__name__!r}")
        import dataclasses  # here: most bots never pay for importing it

        return dataclasses.dataclass(klass, **options)

    return wrap if cls is None else wrap(cls)


def guarded_update_wrapper(wrapper: Any, wrapped: Any) -> Any:
    """``functools.update_wrapper`` on functions with its default names: any names copy any dunder."""
    if isinstance(wrapper, type) or isinstance(wrapped, type):
        raise TypeError("functools.update_wrapper() and wraps() take functions only in the arena")
    return functools.update_wrapper(wrapper, wrapped)


def guarded_wraps(wrapped: Any) -> Any:
    """``functools.wraps`` as :func:`guarded_update_wrapper` allows it."""
    return functools.partial(guarded_update_wrapper, wrapped=wrapped)


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
