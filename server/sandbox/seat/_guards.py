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
* Stores (``x.y = v``, ``del x.y``, ``setattr``, ``delattr``): the bot writes attributes of its
  own objects only (:func:`store_rule`): its classes, their instances and its functions, and
  the few others the environment lists one by one (the observation and configuration, plain
  dicts; some of numpy's). Every other store is refused, whatever the name: the standard
  library's objects are shared with the trusted runtime and trusted by the standard library
  itself (``dataclasses`` compiles ``Field.name`` into source; ``typing``'s aliases forward a
  store to the class they stand for; a ``cached_property``'s ``attrname`` says which instance
  entry it reads). A store to an instance must meet no ``__setattr__`` or ``__delattr__``
  written in Python by the standard library (one that forwards the store elsewhere). A
  private name (``x._y = v``, and ``x._y += v``, whose read is not rewritten) follows the read
  rule above too, and no stdlib Python hook may see it at all.
* ``x.format`` and ``x.format_map`` check their template (``'{0.__class__}'``).
* ``type(x)`` never gives a metaclass (it builds classes from any dict) nor one of
  :data:`HIDDEN_CLASSES` (the function class makes any code object a function), however
  ``type`` is called: directly, or handed to ``map``, ``functools.partial``, ``sorted``.

The standard library's entry points that take names or source as data (``dataclass``,
the functional ``Enum``, ``typing``'s forward references, the decorators that store on their
argument) are guarded in ``_stdlib_guards.py``.

A class is the bot's when its own ``__module__`` is ``bot``: its class statements, and the
stdlib's class factories it calls (``namedtuple``, the functional ``Enum``, ``dataclass``
with ``slots=True``) name the caller's module. It can neither rename a class nor write a
dunder, so no other class carries that name. A function is the bot's when its ``__module__``
is ``bot``: the bot's ``def`` and ``lambda``, and what ``dataclass`` generates for its classes.

Standard library only, nothing of the project: the bot runtime loads this file by path.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # str.format's own template parser
import types
from collections.abc import Callable, Mapping
from typing import Any

from . import BOT_MODULE

__all__ = [
    "FORMAT_METHODS", "HIDDEN_CLASSES", "STAND_INS", "RestrictedError", "SafeModule", "SafeType", "caught", "exact",
    "format_attribute", "is_bot_class", "is_bot_function", "is_private", "private_attribute", "store_rule",
    "writable",
]  # fmt: skip

FORMAT_METHODS = frozenset({"format", "format_map"})
# Private names the stdlib's metaclasses put in a class of the bot's: object.__new__ (an
# instance of any class, its __init__ skipped) and the ABC machinery's state.
DENIED_PRIVATE = frozenset({"_abc_impl", "_new_member_"})
# What a private attribute may never hold, whoever put it there.
_REFUSED_VALUES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
_HOOKS = ("__getattribute__", "__getattr__", "__setattr__", "__delattr__")
_STORE_HOOKS = ("__setattr__", "__delattr__")


class RestrictedError(SyntaxError):
    """The bot's code uses what the restricted runtime refuses; names the line and column."""

    def __str__(self) -> str:
        return f"{self.msg} ({self.filename}, line {self.lineno}, column {self.offset})"


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


def is_bot_function(obj: object) -> bool:
    """Whether ``obj`` is a function of the bot's module (its own, or generated for its classes)."""
    return type(obj) is types.FunctionType and obj.__module__ == BOT_MODULE


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


def _hook_problem(obj: object, hooks: tuple[str, ...] = _HOOKS, *, bots_own: bool = False) -> str | None:
    """Why an attribute operation on ``obj`` would run a stdlib hook written in Python, or None.

    ``bots_own``: a hook defined by a class of the bot's passes (a frozen dataclass's
    ``__setattr__``, generated from checked field names).
    """
    cls = type(obj)
    if (cls.__getattribute__ is object.__getattribute__ and cls.__setattr__ is object.__setattr__
            and cls.__delattr__ is object.__delattr__ and not hasattr(cls, "__getattr__")):
        return None  # the common case, answered without walking the MRO
    if issubclass(cls, super):
        return "super() objects resolve names by themselves"
    for hook in hooks:
        for klass in cls.__mro__:
            if hook in vars(klass):
                if isinstance(vars(klass)[hook], types.FunctionType) and not (bots_own and is_bot_class(klass)):
                    return f"class {klass.__name__!r} handles its attributes with {hook}"
                break
    return None


def store_rule(open_attributes: Mapping[type, frozenset[str] | None]) -> Callable[..., Any]:
    """The bot's store guard: ``writable(obj, name=None)`` returns ``obj`` if the bot may set or
    delete its attribute ``name`` (any attribute, with no name), else raises.

    The bot writes to its own classes, to their instances and to its own functions (Kaggle bots
    keep state on ``agent`` itself). ``open_attributes`` lists the other classes whose instances
    it may write, each with the public names it may write (None: any); it is read at each store,
    so classes added to it later count.
    """
    opened = open_attributes

    def writable(obj: Any, name: str | None = None) -> Any:
        """``obj`` if the bot may set or delete its attribute ``name``: the target of every store.

        Raises:
            AttributeError: an attribute of an object that is not the bot's, or a private one it may not write.
            TypeError: a class the bot did not create.
        """
        cls = type(obj)
        if name is not None and is_private(name):
            problem = _private_problem(obj, name) or _hook_problem(obj)
            if problem is not None:
                raise _refusal(obj, name, problem)
            return obj  # _private_problem allows the bot's own classes and their instances only
        if issubclass(cls, type):
            if is_bot_class(obj):
                return obj
            raise TypeError(f"the attributes of class {obj.__name__!r} are read-only in the arena")
        if is_bot_class(cls):
            problem = _hook_problem(obj, _STORE_HOOKS, bots_own=True)
            if problem is None:
                return obj
        elif is_bot_function(obj):
            return obj
        elif cls in opened and (opened[cls] is None or name in opened[cls]):  # type: ignore[operator]
            return obj
        else:
            problem = "the bot stores attributes only on its own objects: its classes, their instances, its functions"
        shown = "attributes" if name is None else f"attribute {name!r}"
        raise AttributeError(f"{shown} of {_what(obj)} cannot be set in the arena: {problem}")

    return writable


# The rule with nothing opened beyond the bot's own objects: what the stdlib guards ask.
writable = store_rule({})


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
