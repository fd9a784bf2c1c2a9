"""Layer 2 of the sandbox: the restricted runtime a bot's code runs in.

Theory of operation
-------------------
The bot runtime loads this file by path (standard library only, nothing of the project) and
runs the bot through an :class:`Environment`. It holds on its own, without the validator.

1. Compile time. The bot's syntax tree is checked, then compiled: no attribute name starting
   with ``_`` (nor frame, code and traceback attributes such as ``gi_frame``, ``tb_frame``,
   ``f_globals``), no name starting with ``__`` but a read of ``__name__``, no async code, no
   relative import, no private name in an import. A class may define a few dunder methods
   (``__init__``, ``__repr__``...) and call ``super().__init__(...)``. Every load of
   ``x.format`` or ``x.format_map`` becomes a guard, since a template reaches attributes by
   itself (``'{0.__class__}'``). A refusal is a :class:`RestrictedError` (a ``SyntaxError``).
2. Run time. The bot's globals get a fresh builtins dict with safe builtins only: guarded
   ``getattr``/``setattr``/``delattr``/``hasattr`` (the same name rules), ``type`` with one
   argument, and an ``__import__`` that allows whitelisted modules only and returns a
   read-only :class:`SafeModule` in place of the module: a vetted copy of its public
   attributes without modules, metaclasses, evaluators and the like, one per module name.
   Attribute stores go through a guard too: the bot may change its own classes, never a
   class it did not create (the stdlib's are shared with the trusted runtime, and a
   descriptor planted in one, ``functools.cached_property`` say, reads any instance dict).
   A caught exception is scrubbed of the object an AttributeError carries (``e.obj``).
3. What stays closed. With no ``_`` attribute anywhere, the ways back to the real builtins
   (``().__class__.__base__.__subclasses__()``, ``f.__globals__``, ``print.__self__``,
   ``random._os``) have no first step. The other guards close the stdlib routes that take
   names or source as data: a class built from any dict (``type(name, bases, dict)``,
   metaclasses, dunder member names in the functional ``Enum`` API) and ``dataclass``, which
   compiles field names into source and runs it (``TypedDict`` can give it any name).
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # str.format's own template parser
import ast
import builtins
import enum
import functools
import importlib
import keyword
import operator
import types
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["ALLOWED_MODULES", "Environment", "RestrictedError", "SafeModule"]

ALLOWED_MODULES = frozenset({
    "__future__", "array", "bisect", "collections", "collections.abc", "copy", "dataclasses", "decimal",
    "enum", "fractions", "functools", "heapq", "itertools", "json", "math", "numbers", "random", "re",
    "statistics", "string", "time", "typing",
})  # fmt: skip
NUMPY_MODULES = frozenset({"numpy", "numpy.random", "numpy.linalg", "numpy.fft"})
SUBMODULES = {"collections": ("abc",), "numpy": ("random", "linalg", "fft")}
# Modules reduced to an explicit list: time keeps its clocks and sleep (harmless under deadlines).
CLOCKS = ("monotonic", "perf_counter", "process_time", "time")
ONLY = {"time": frozenset({*CLOCKS, *(f"{clock}_ns" for clock in CLOCKS), "sleep"})}
# Public members left out of a module's proxy: evaluators of strings (get_type_hints, under
# singledispatch too), class factories that take any namespace (make_dataclass), writers of
# sys.modules (global_enum), str.format unguarded (Formatter, UserString.format), the real type
# (get_origin(Type)), the runtime's own protocol codec (JSONEncoder) and shared state.
DENIED_MEMBERS = {
    "collections": frozenset({"UserString"}),
    "copy": frozenset({"dispatch_table"}),
    "dataclasses": frozenset({"make_dataclass"}),
    "enum": frozenset({"global_enum", "global_enum_repr", "global_flag_repr", "global_str"}),
    "functools": frozenset({"RLock", "singledispatch", "singledispatchmethod"}),
    "json": frozenset({"JSONDecoder", "JSONEncoder"}),
    "string": frozenset({"Formatter"}),
    "typing": frozenset({"EXCLUDED_ATTRIBUTES", "ForwardRef", "get_origin", "get_type_hints"}),
    "numpy": frozenset({
        "DataSource", "ctypeslib", "deprecate", "f2py", "from_dlpack", "fromfile", "fromregex", "genfromtxt",
        "get_include", "info", "load", "loadtxt", "lookfor", "memmap", "safe_eval", "save", "savetxt", "savez",
        "savez_compressed", "show_config", "show_runtime", "source", "test", "testing", "who",
    }),
}  # fmt: skip
# Public attribute names that reach frames, code or interpreter internals, refused everywhere;
# fget & co. too: a stdlib getter called on any object reads that object's private attributes.
DENIED_ATTRIBUTES = frozenset({
    "ag_await", "ag_code", "ag_frame", "builtins", "cell_contents", "co_code", "co_consts", "co_names", "cr_await",
    "cr_code", "cr_frame", "cr_origin", "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace", "fdel",
    "fget", "fset", "func_closure", "func_code", "func_globals", "gi_code", "gi_frame", "gi_yieldfrom", "importlib",
    "mro", "os", "subprocess", "sys", "tb_frame", "tb_next",
})  # fmt: skip
NUMPY_DENIED_ATTRIBUTES = frozenset({"as_strided", "cffi", "ctypes", "ctypeslib", "dump", "stride_tricks", "tofile"})
FORMAT_METHODS = frozenset({"format", "format_map"})
ALLOWED_DUNDER_METHODS = frozenset({
    "__bool__", "__contains__", "__eq__", "__ge__", "__getitem__", "__gt__", "__hash__", "__init__", "__iter__",
    "__le__", "__len__", "__lt__", "__ne__", "__next__", "__post_init__", "__repr__", "__setitem__", "__str__",
})  # fmt: skip
SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "classmethod", "complex",
    "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int",
    "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "pow",
    "print", "property", "range", "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str",
    "sum", "super", "tuple", "zip", "Ellipsis", "NotImplemented", "None", "True", "False", "__build_class__",
)  # fmt: skip
BOT_MODULE = "bot"  # the bot's module name: its classes have this __module__, no other class can
# Builtins the bot cannot name (its names may not start with "__"), used by the rewritten tree.
FORMAT_GUARD = "__arena_format__"
WRITE_GUARD = "__arena_write__"
CATCH_GUARD = "__arena_caught__"


class RestrictedError(SyntaxError):
    """The bot's code uses what the restricted runtime refuses; names the line and column."""

    def __str__(self) -> str:
        return f"{self.msg} ({self.filename}, line {self.lineno}, column {self.offset})"


def _is_error(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


# Objects no proxy may hold (unsafe builtins, ``types`` classes, attribute getters), by id: they
# live as long as the process, so their ids stay theirs.
_FORBIDDEN_IDS = frozenset(id(v) for v in [
    *(v for k, v in vars(builtins).items() if k not in SAFE_BUILTINS and callable(v) and not _is_error(v)),
    *(v for v in vars(types).values() if isinstance(v, type)),
    operator.attrgetter, operator.methodcaller, str.format, str.format_map,
])  # fmt: skip


def _exact(name: object, what: str = "attribute name") -> str:
    """``name`` as a plain ``str``: a subclass could lie to ``startswith`` or ``in``."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, not {type(name).__name__!r}")
    return str.__str__(name)  # a fresh exact str for a subclass


def _check_template(template: str) -> None:
    """Refuse a format template whose fields look up attributes or items (``{0.x}``, ``{0[x]}``)."""
    for _literal, field, spec, _conversion in _string.formatter_parser(template):
        if field is not None and ("." in field or "[" in field):
            raise ValueError(f"format field {field!r} is not allowed in the arena: no '.' or '[' in a field")
        if spec:
            _check_template(spec)


def _format_attribute(obj: object, name: str) -> Any:
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


def _caught(exc: BaseException) -> None:
    """Scrub a caught exception: a failed lookup inside the stdlib attaches its object to the
    AttributeError (``typing.Type.x`` fails on the real ``type``, handing it to ``e.obj``)."""
    if isinstance(exc, AttributeError):
        exc.obj = None
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            _caught(inner)


def _writable(obj: Any) -> Any:
    """``obj`` if the bot may set its attributes: anything but a class the bot did not create."""
    if isinstance(obj, type) and vars(obj).get("__module__") != BOT_MODULE:
        raise TypeError(f"the attributes of class {obj.__name__!r} are read-only in the arena")
    return obj


class _TypeGuard(type):
    """The metaclass of the bot's ``type``: one argument only, and never a real metaclass back."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:
            raise TypeError("type() takes exactly one argument in the arena: classes come from class statements")
        found = type(args[0])
        return cls if issubclass(found, type) else found  # a metaclass would build a class from any dict

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, type)

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, type)

    def __repr__(cls) -> str:
        return "<class 'type'>"


class SafeType(metaclass=_TypeGuard):
    """What the bot's code calls ``type``."""


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


def _guarded_dataclass(cls: Any = None, /, **options: Any) -> Any:
    """``dataclasses.dataclass`` that first checks the field names it will compile into source."""

    def wrap(klass: Any) -> Any:
        if not isinstance(klass, type) or vars(klass).get("__module__") != BOT_MODULE:
            raise TypeError(f"dataclass() takes a class of the bot's own in the arena, not {klass!r}")
        for name in vars(klass).get("__annotations__", {}):
            if type(name) is not str or not str.isidentifier(name) or keyword.iskeyword(name) or name[:2] == "__":
                raise TypeError(f"dataclass field name {name!r} is not allowed in the arena")
        import dataclasses  # here: most bots never pay for importing it

        return dataclasses.dataclass(klass, **options)

    return wrap if cls is None else wrap(cls)


def _guarded_update_wrapper(wrapper: Any, wrapped: Any) -> Any:
    """``functools.update_wrapper`` on functions with its default names: any names copy any dunder."""
    if isinstance(wrapper, type) or isinstance(wrapped, type):
        raise TypeError("functools.update_wrapper() and wraps() take functions only in the arena")
    return functools.update_wrapper(wrapper, wrapped)


def _guarded_wraps(wrapped: Any) -> Any:
    """``functools.wraps`` as :func:`_guarded_update_wrapper` allows it."""
    return functools.partial(_guarded_update_wrapper, wrapped=wrapped)


OVERRIDES: dict[str, dict[str, Any]] = {
    "dataclasses": {"dataclass": _guarded_dataclass},
    "functools": {"update_wrapper": _guarded_update_wrapper, "wraps": _guarded_wraps},
}

_create_enum: Callable[..., Any] = enum.EnumType._create_  # type: ignore[attr-defined]


def _guarded_create_enum(cls: Any, class_name: Any, names: Any, **options: Any) -> Any:
    """The functional ``Enum`` API with public member names only: a dunder "member" is a class attribute."""

    def member(name: object) -> str:
        name = _exact(name, "enum member name")
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


class _Checker(ast.NodeTransformer):
    """Refuses what the runtime does not allow and routes ``.format`` through its guard."""

    def __init__(self, filename: str, lines: list[str], denied: frozenset[str]) -> None:
        self.filename = filename
        self.lines = lines
        self.denied = denied
        self.methods: set[int] = set()  # ids of the defs directly in a class body

    def fail(self, node: ast.AST, message: str) -> RestrictedError:
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return RestrictedError(message, (self.filename, line, col, text))

    def check_attribute(self, node: ast.AST, attr: str) -> None:
        if attr.startswith("_"):
            raise self.fail(node, f"attribute {attr!r} is not allowed: names starting with '_' are private here")
        if attr in self.denied:
            raise self.fail(node, f"attribute {attr!r} is not allowed: it reaches frames, code or internals")

    def check_binding(self, node: ast.AST, name: str | None) -> None:
        if name is not None and (name.startswith("__") or name == "super"):
            raise self.fail(node, f"name {name!r} cannot be bound in the arena")

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        value = node.value
        is_super = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"
        self.generic_visit(node)  # first: report the leftmost offence of a chain
        if not (is_super and node.attr in ALLOWED_DUNDER_METHODS and isinstance(node.ctx, ast.Load)):
            self.check_attribute(node, node.attr)
        if not isinstance(node.ctx, ast.Load):  # obj.attr = v becomes __arena_write__(obj).attr = v
            guard = ast.Name(WRITE_GUARD, ast.Load())
            node.value = ast.copy_location(ast.Call(guard, [node.value], []), node.value)
        if node.attr in FORMAT_METHODS and isinstance(node.ctx, ast.Load):
            guard = ast.Name(FORMAT_GUARD, ast.Load())
            return ast.copy_location(ast.Call(guard, [node.value, ast.Constant(node.attr)], []), node)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.startswith("__") and not (node.id == "__name__" and isinstance(node.ctx, ast.Load)):
            raise self.fail(node, f"name {node.id!r} is not allowed: names starting with '__' are reserved here")
        if not isinstance(node.ctx, ast.Load):
            self.check_binding(node, node.id)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.check_binding(node, node.name)
        if any(kw.arg == "metaclass" for kw in node.keywords):
            raise self.fail(node, "metaclass= is not allowed in the arena")
        self.methods.update(id(item) for item in node.body if isinstance(item, ast.FunctionDef))
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if not (id(node) in self.methods and node.name in ALLOWED_DUNDER_METHODS):
            self.check_binding(node, node.name)
        return self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        self.check_binding(node, node.arg)
        return self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        for alias in node.names:
            if any(part.startswith("_") for part in alias.name.split(".")):
                raise self.fail(node, f"import of {alias.name!r} is not allowed in the arena")
            self.check_binding(node, alias.asname or alias.name.partition(".")[0])
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        if node.level:
            raise self.fail(node, "relative imports are not allowed in the arena")
        for alias in node.names:
            if alias.name.startswith("_"):
                raise self.fail(node, f"importing the private name {alias.name!r} is not allowed in the arena")
            self.check_binding(node, alias.asname or alias.name)
        return node

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> ast.AST:
        for name in node.names:
            self.check_binding(node, name)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler | ast.MatchAs | ast.MatchStar | ast.MatchMapping) -> ast.AST:
        self.check_binding(node, node.rest if isinstance(node, ast.MatchMapping) else node.name)
        self.generic_visit(node)
        if isinstance(node, ast.ExceptHandler) and node.name:  # except E as e: __arena_caught__(e); ...
            scrub = ast.Call(ast.Name(CATCH_GUARD, ast.Load()), [ast.Name(node.name, ast.Load())], [])
            node.body.insert(0, ast.copy_location(ast.Expr(scrub), node))
        return node

    visit_Nonlocal = visit_Global
    visit_MatchAs = visit_MatchStar = visit_MatchMapping = visit_ExceptHandler

    def visit_MatchClass(self, node: ast.MatchClass) -> ast.AST:
        for attr in node.kwd_attrs:  # ``case C(attr=x)`` reads an attribute by that name
            self.check_attribute(node, attr)
            if attr in FORMAT_METHODS:
                raise self.fail(node, f"attribute {attr!r} cannot be captured by a pattern in the arena")
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:  # it would read x.format unguarded
        if isinstance(node.target, ast.Attribute) and node.target.attr in FORMAT_METHODS:
            raise self.fail(node, f"augmented assignment to {node.target.attr!r} is not allowed in the arena")
        return self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        return self.refuse_async(node.target) if node.is_async else self.generic_visit(node)

    def refuse_async(self, node: ast.AST) -> ast.AST:
        raise self.fail(node, "async code is not allowed in the arena")

    visit_AsyncFunctionDef = visit_Await = visit_AsyncFor = visit_AsyncWith = refuse_async


class Environment:
    """One bot's restricted world: its builtins, its module proxies, its compiler."""

    def __init__(self, *, allow_numpy: bool = False) -> None:
        self.allowed = ALLOWED_MODULES | (NUMPY_MODULES if allow_numpy else frozenset())
        self.denied = DENIED_ATTRIBUTES | (NUMPY_DENIED_ATTRIBUTES if allow_numpy else frozenset())
        self.modules: dict[str, SafeModule] = {}
        enum.EnumType._create_ = _guarded_create_enum  # type: ignore[attr-defined]  # in this process only
        self.builtins = self._builtins()

    def compile(self, source: str, filename: str) -> tuple[ast.Module, types.CodeType]:
        """The bot's checked syntax tree and its code object.

        Raises:
            SyntaxError: the source does not parse.
            RestrictedError: it uses what the arena refuses.
        """
        tree = ast.parse(source, filename)
        _Checker(filename, source.splitlines(), self.denied).visit(tree)
        ast.fix_missing_locations(tree)
        return tree, compile(tree, filename, "exec", dont_inherit=True)

    def module(self, name: str) -> SafeModule:
        """The proxy of whitelisted module ``name``, built at first use."""
        proxy = self.modules.get(name)
        if proxy is not None:
            return proxy
        real = importlib.import_module(name)
        attrs = {key: value for key, value in vars(real).items() if self._is_exposed(name, key, value)}
        attrs.update(OVERRIDES.get(name, {}))
        for sub in SUBMODULES.get(name, ()):
            if f"{name}.{sub}" in self.allowed:
                attrs[sub] = self.module(f"{name}.{sub}")
        proxy = object.__new__(SafeModule)
        vars(proxy).update(attrs, _arena_name=name)
        self.modules[name] = proxy
        return proxy

    def _is_exposed(self, module: str, key: str, value: object) -> bool:
        if key.startswith("_") or key in self.denied or key in DENIED_MEMBERS.get(module, ()):
            return False
        if module in ONLY and key not in ONLY[module]:
            return False
        if isinstance(value, types.ModuleType) or id(value) in _FORBIDDEN_IDS:
            return False
        return not (isinstance(value, type) and issubclass(value, type))  # a metaclass builds classes from dicts

    def import_(self, name: object, globals: object = None, locals: object = None,
                fromlist: Iterable[str] | None = (), level: int = 0) -> SafeModule:
        """The ``__import__`` of the bot's builtins: whitelisted modules only, as proxies.

        Raises:
            ImportError: the module is not allowed (or not installed).
        """
        name = _exact(name, "module name")
        if level != 0:
            raise ImportError("relative imports are not allowed in the arena")
        if name not in self.allowed:
            allowed = ", ".join(sorted(self.allowed))
            raise ImportError(f"import of {name!r} is not allowed in the arena; allowed: {allowed}", name=name)
        return self.module(name if fromlist else name.partition(".")[0])

    def _builtins(self) -> dict[str, Any]:
        denied = self.denied

        def allowed(name: str) -> bool:
            return not name.startswith("_") and name not in denied

        def safe_getattr(obj: object, name: object, *default: object) -> Any:
            name = _exact(name)
            if not allowed(name):
                if len(default) == 1:
                    return default[0]
                raise AttributeError(f"attribute {name!r} is not allowed in the arena")
            if name in FORMAT_METHODS and hasattr(obj, name):
                return _format_attribute(obj, name)
            return getattr(obj, name, *default)

        def safe_hasattr(obj: object, name: object) -> bool:
            name = _exact(name)
            return allowed(name) and hasattr(obj, name)

        def writable(obj: object, name: object) -> tuple[object, str]:
            name = _exact(name)
            if not allowed(name):
                raise AttributeError(f"attribute {name!r} is not allowed in the arena")
            return _writable(obj), name

        def safe_setattr(obj: object, name: object, value: object) -> None:
            setattr(*writable(obj, name), value)

        def safe_delattr(obj: object, name: object) -> None:
            delattr(*writable(obj, name))

        table: dict[str, Any] = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
        table.update((k, v) for k, v in vars(builtins).items() if _is_error(v))
        guarded: dict[str, Callable[..., Any]] = {
            "getattr": safe_getattr, "hasattr": safe_hasattr, "setattr": safe_setattr, "delattr": safe_delattr,
            "type": SafeType, "__import__": self.import_, FORMAT_GUARD: _format_attribute, WRITE_GUARD: _writable,
            CATCH_GUARD: _caught,
        }
        table.update(guarded)
        return table
