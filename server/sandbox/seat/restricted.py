"""Layer 2 of the sandbox: the restricted runtime a bot's code runs in.

Theory of operation
-------------------
The bot runtime loads this file and the guards it imports by path (standard library only,
nothing of the project but this folder) and runs the bot through an :class:`Environment`. It
holds on its own, without the validator.

1. Compile time. The bot's syntax tree is checked, then compiled: no attribute or name
   starting with ``__`` but a read of ``__name__`` (nor frame, code and traceback attributes
   such as ``gi_frame``, ``tb_frame``, ``f_globals``), no async code, no relative import, no
   private name in an import. A class may define a few dunder methods (``__init__``,
   ``__repr__``...) and call ``super().__init__(...)``. Every load of ``x._y`` (one
   underscore) becomes a guard that allows it on the bot's own objects only, and every load
   of ``x.format`` or ``x.format_map`` one that checks the template, since a template reaches
   attributes by itself (``'{0.__class__}'``). A refusal is a :class:`RestrictedError` (a
   ``SyntaxError``).
2. Run time. The bot's globals get a fresh builtins dict with safe builtins only: guarded
   ``getattr``/``setattr``/``delattr``/``hasattr`` (the same name rules), ``type`` with one
   argument that hands out no metaclass and no class of functions, code, frames,
   generators, methods, builtins or modules, and an ``__import__`` that allows the modules
   of :data:`ALLOWED_MODULES` only (the validator's list too) and returns a read-only
   :class:`SafeModule` in place of the module: a vetted copy of its public attributes
   without modules (but its allowed submodules), metaclasses, evaluators and the like, one
   per module name.
   Attribute stores go through a guard too: the bot may change its own classes, never a
   class it did not create (the stdlib's are shared with the trusted runtime, and a
   descriptor planted in one, ``functools.cached_property`` say, reads any instance dict),
   and its own objects' ``_`` attributes only. The guards live in ``_guards.py``.
   A caught exception is scrubbed of the object an AttributeError carries (``e.obj``).
3. What stays closed. With no dunder attribute anywhere and ``_`` attributes only on the
   bot's own objects, the ways back to the real builtins
   (``().__class__.__base__.__subclasses__()``, ``f.__globals__``, ``print.__self__``,
   ``random._os``) have no first step. The other guards close the stdlib routes that take
   names or source as data: a class built from any dict (``type(name, bases, dict)``,
   metaclasses, dunder member names in the functional ``Enum`` API), ``dataclass``, which
   compiles field names into source and runs it (``TypedDict`` can give it any name),
   ``copy.deepcopy``'s memo (it receives the inner state of every object copied), and
   ``typing.ForwardRef``, which compiles any string of a type expression (``List["..."]``)
   into code: in the seat's process it keeps none, and without the function class no code
   object could become a function anyway. ``collections.namedtuple`` compiles its field
   names too, but checks them itself (exact ``str`` identifiers, no ``_``, no keyword).
4. numpy, when the operator allows it (``allow_numpy``): its modules join the allow-list as
   proxies without its file readers and writers, importers, frame readers and raw pointers
   (:data:`DENIED_MEMBERS`, :data:`NUMPY_DENIED_ATTRIBUTES`), with a stand-in ``ndarray``, a
   guarded ``resize`` and no store to ``ndarray.data``: the routes by which numpy hands out
   memory the bot could free (``_numpy_guards.py``). numpy is a large body of C that layer 2
   cannot vet the way it vets the standard library: a memory bug in it is a way out of this
   layer, to be stopped by the process layers under it.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import operator
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._guards import (
    FORMAT_METHODS,
    RestrictedError,
    SafeModule,
    SafeType,
    caught,
    exact,
    format_attribute,
    is_private,
    private_attribute,
    store_rule,
)
from ._numpy_guards import NumpyGuards
from ._stdlib_guards import STDLIB_OVERRIDES, arm_generated_code_check, seal_stdlib

__all__ = [
    "ALLOWED_MODULES", "DENIED_MEMBERS", "Environment", "NUMPY_CHECKED_ATTRIBUTES", "NUMPY_DENIED_ATTRIBUTES",
    "NUMPY_MODULES", "ONLY_MEMBERS", "RestrictedError", "SafeModule",
]  # fmt: skip

# The one allow-list of modules, submodules by their dotted names: the validator (layer 1)
# imports it from here, so both layers agree on what a bot may import.
ALLOWED_MODULES = frozenset({
    "__future__", "array", "bisect", "collections", "collections.abc", "copy", "dataclasses", "decimal",
    "enum", "fractions", "functools", "heapq", "itertools", "json", "math", "numbers", "random", "re",
    "statistics", "string", "time", "typing",
})  # fmt: skip
# The operator's opt-in (``Limits.allow_numpy``); its own guards are in ``_numpy_guards.py``.
NUMPY_MODULES = frozenset({"numpy", "numpy.random", "numpy.linalg", "numpy.fft"})


def _children(modules: Iterable[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for dotted in sorted(modules):
        parent, _, child = dotted.rpartition(".")
        if parent:
            found[parent] = (*found.get(parent, ()), child)
    return found


# A package's proxy holds its allowed submodules, and no other module.
SUBMODULES = _children(ALLOWED_MODULES | NUMPY_MODULES)
# Modules reduced to an explicit list: time keeps its clocks and sleep (harmless under deadlines).
CLOCKS = ("monotonic", "perf_counter", "process_time", "time")
ONLY_MEMBERS = {"time": frozenset({*CLOCKS, *(f"{clock}_ns" for clock in CLOCKS), "sleep"})}
# Public members left out of a module's proxy: evaluators of strings (get_type_hints, under
# singledispatch too), class factories that take any namespace (make_dataclass), writers of
# sys.modules (global_enum), str.format unguarded (Formatter, UserString.format), the real type
# (get_origin(Type)), the runtime's own protocol codec (JSONEncoder) and shared state. numpy's:
# readers and writers of files, importers of modules by name (add_newdoc, lookfor, info), readers
# of the caller's frame (bmat, r_, c_, who), constructors that let their buffer be freed under
# them (recarray, chararray; ndarray is a stand-in), pointers (from_dlpack) and test runners.
DENIED_MEMBERS = {
    "collections": frozenset({"UserString"}),
    "copy": frozenset({"dispatch_table"}),
    "dataclasses": frozenset({"make_dataclass"}),
    "enum": frozenset({"global_enum", "global_enum_repr", "global_flag_repr", "global_str"}),
    "functools": frozenset({"RLock", "singledispatch", "singledispatchmethod"}),
    "json": frozenset({"JSONDecoder", "JSONEncoder"}),
    "string": frozenset({"Formatter"}),
    "typing": frozenset({
        "EXCLUDED_ATTRIBUTES", "ForwardRef", "get_origin", "get_type_hints", "no_type_check_decorator",
    }),
    "numpy": frozenset({
        "DataSource", "add_docstring", "add_newdoc", "add_newdoc_ufunc", "bmat", "c_", "chararray", "ctypeslib",
        "deprecate", "deprecate_with_doc", "f2py", "from_dlpack", "fromfile", "fromregex", "genfromtxt",
        "get_include", "info", "load", "loadtxt", "lookfor", "memmap", "r_", "recarray", "recfromcsv",
        "recfromtxt", "safe_eval", "save", "savetxt", "savez", "savez_compressed", "show_config", "show_runtime",
        "source", "test", "testing", "who",
    }),
    "numpy.fft": frozenset({"test"}),
    "numpy.linalg": frozenset({"test"}),
    "numpy.random": frozenset({"test"}),
}  # fmt: skip
# Public attribute names that reach frames, code or interpreter internals, refused everywhere;
# fget & co. too: a stdlib getter called on any object reads that object's private attributes.
DENIED_ATTRIBUTES = frozenset({
    "ag_await", "ag_code", "ag_frame", "builtins", "cell_contents", "co_code", "co_consts", "co_names", "cr_await",
    "cr_code", "cr_frame", "cr_origin", "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace", "fdel",
    "fget", "fset", "func_closure", "func_code", "func_globals", "gi_code", "gi_frame", "gi_yieldfrom", "importlib",
    "mro", "os", "subprocess", "sys", "tb_frame", "tb_next",
})  # fmt: skip
# With numpy, refused everywhere too: raw pointers (ctypes, cffi, a bit generator's capsule, which
# outlives its generator), arbitrary strides, files.
NUMPY_DENIED_ATTRIBUTES = frozenset({
    "as_strided", "capsule", "cffi", "ctypes", "ctypeslib", "dump", "stride_tricks", "tofile",
})  # fmt: skip
# With numpy, every load of these goes through a guard that checks the object (``_numpy_guards.py``):
# ``ndarray.resize`` takes ``refcheck=False``, which frees memory that views still use.
NUMPY_CHECKED_ATTRIBUTES = frozenset({"resize"})
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
# Builtins the bot cannot name (its names may not start with "__"), used by the rewritten tree.
FORMAT_GUARD = "__arena_format__"
PRIVATE_GUARD = "__arena_private__"
WRITE_GUARD = "__arena_write__"
CATCH_GUARD = "__arena_caught__"
CHECKED_GUARD = "__arena_checked__"


def _is_error(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


# Objects no proxy may hold (unsafe builtins, ``types`` classes, attribute getters), by id: they
# live as long as the process, so their ids stay theirs.
_FORBIDDEN_IDS = frozenset(id(v) for v in [
    *(v for k, v in vars(builtins).items() if k not in SAFE_BUILTINS and callable(v) and not _is_error(v)),
    *(v for v in vars(types).values() if isinstance(v, type)),
    operator.attrgetter, operator.methodcaller, str.format, str.format_map,
])  # fmt: skip

def _deepcopy(x: Any, /) -> Any:
    """``copy.deepcopy`` without its ``memo``: the memo receives a copy of the inner state of
    every object copied (``__dict__`` and slots, dunder keys and all: a ``typing.ForwardRef``'s
    code object, compiled from any string), and a memo of the bot's could swap objects inside."""
    import copy  # here: most bots never pay for importing it

    return copy.deepcopy(x)


OVERRIDES: dict[str, dict[str, Any]] = {"copy": {"deepcopy": _deepcopy}, **STDLIB_OVERRIDES}
# Attributes of the standard library's objects a bot may set, listed one by one (module -> class ->
# names): beyond these it stores on its own objects only (``_guards.store_rule``).
OPEN_ATTRIBUTES: dict[str, dict[str, frozenset[str]]] = {
    "decimal": {"Context": frozenset({"Emax", "Emin", "capitals", "clamp", "prec", "rounding"})},
}


class _Checker(ast.NodeTransformer):
    """Refuses what the runtime does not allow and routes ``._x``, ``.format`` and stores through guards."""

    def __init__(self, filename: str, lines: list[str], denied: frozenset[str], checked: frozenset[str]) -> None:
        self.filename = filename
        self.lines = lines
        self.denied = denied
        self.checked = checked  # loads routed through CHECKED_GUARD
        self.methods: set[int] = set()  # ids of the defs directly in a class body

    def fail(self, node: ast.AST, message: str) -> RestrictedError:
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return RestrictedError(message, (self.filename, line, col, text))

    def check_attribute(self, node: ast.AST, attr: str) -> None:
        if attr.startswith("__"):
            raise self.fail(node, f"attribute {attr!r} is not allowed: names starting with '__' are reserved here")
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
        if not isinstance(node.ctx, ast.Load):  # obj.attr = v becomes __arena_write__(obj, 'attr').attr = v
            guard = ast.Name(WRITE_GUARD, ast.Load())
            node.value = ast.copy_location(ast.Call(guard, [node.value, ast.Constant(node.attr)], []), node.value)
        elif is_private(node.attr) or node.attr in FORMAT_METHODS or node.attr in self.checked:
            # obj._x becomes __arena_private__(obj, '_x'), obj.format __arena_format__(obj, 'format')...
            kind = PRIVATE_GUARD if is_private(node.attr) else FORMAT_GUARD if node.attr in FORMAT_METHODS else None
            guard = ast.Name(kind or CHECKED_GUARD, ast.Load())
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
            if attr in FORMAT_METHODS or attr in self.checked or is_private(attr):
                raise self.fail(node, f"attribute {attr!r} cannot be captured by a pattern in the arena")
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:  # it would read x.format unguarded
        if isinstance(node.target, ast.Attribute) and (node.target.attr in FORMAT_METHODS
                                                       or node.target.attr in self.checked):
            raise self.fail(node, f"augmented assignment to {node.target.attr!r} is not allowed in the arena")
        return self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        return self.refuse_async(node.target) if node.is_async else self.generic_visit(node)

    def refuse_async(self, node: ast.AST) -> ast.AST:
        raise self.fail(node, "async code is not allowed in the arena")

    visit_AsyncFunctionDef = visit_Await = visit_AsyncFor = visit_AsyncWith = refuse_async


class Environment:
    """One bot's restricted world: its builtins, its module proxies, its compiler."""

    def __init__(self, *, allow_numpy: bool = False,
                 open_attributes: Mapping[type, frozenset[str] | None] | None = None) -> None:
        """A fresh environment; ``allow_numpy`` adds numpy's modules and guards; ``open_attributes``:
        classes not the bot's whose instances it may store to, each with the names (None: any).

        Raises:
            ImportError: numpy is allowed but not importable.
        """
        self.allowed = ALLOWED_MODULES | (NUMPY_MODULES if allow_numpy else frozenset())
        self.denied = DENIED_ATTRIBUTES | (NUMPY_DENIED_ATTRIBUTES if allow_numpy else frozenset())
        self.checked = NUMPY_CHECKED_ATTRIBUTES if allow_numpy else frozenset()
        # The runtime imported numpy before the bot's code (bot_runtime.enable_numpy): found here.
        self.numpy = NumpyGuards(importlib.import_module("numpy")) if allow_numpy else None
        self.overrides = {**OVERRIDES, **(self.numpy.overrides() if self.numpy is not None else {})}
        self.modules: dict[str, SafeModule] = {}
        # Read live by the store guard: a module's open attributes join when the bot imports it.
        self.open_attributes = {**(open_attributes or {}), **(self.numpy.open_attributes() if self.numpy else {})}
        seal_stdlib()  # in this process only, the seat's
        self.builtins = self._builtins()

    def arm(self) -> None:
        """From now on, refuse generated source that names what the bot may not
        (``_stdlib_guards.GeneratedCodeCheck``): call it just before the bot's module runs."""
        arm_generated_code_check(self.denied)

    def compile(self, source: str, filename: str) -> tuple[ast.Module, types.CodeType]:
        """The bot's checked syntax tree and its code object.

        Raises:
            SyntaxError: the source does not parse.
            RestrictedError: it uses what the arena refuses.
        """
        tree = ast.parse(source, filename)
        _Checker(filename, source.splitlines(), self.denied, self.checked).visit(tree)
        ast.fix_missing_locations(tree)
        return tree, compile(tree, filename, "exec", dont_inherit=True)

    def module(self, name: str) -> SafeModule:
        """The proxy of whitelisted module ``name``, built at first use."""
        proxy = self.modules.get(name)
        if proxy is not None:
            return proxy
        real = importlib.import_module(name)
        attrs = {key: value for key, value in vars(real).items() if self._is_exposed(name, key, value)}
        attrs.update(self.overrides.get(name, {}))
        for class_name, names in OPEN_ATTRIBUTES.get(name, {}).items():
            self.open_attributes[getattr(real, class_name)] = names
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
        if module in ONLY_MEMBERS and key not in ONLY_MEMBERS[module]:
            return False
        if isinstance(value, types.ModuleType) or id(value) in _FORBIDDEN_IDS:
            return False
        return not (isinstance(value, type) and issubclass(value, type))  # a metaclass builds classes from dicts

    def import_(self, name: object, globals: object = None, locals: object = None,
                fromlist: Iterable[str] | None = (), level: int = 0) -> SafeModule | None:
        """The ``__import__`` of the bot's builtins: whitelisted modules only, as proxies.

        (None, and no import, for numpy's own lazy imports: see ``NumpyGuards.is_own_import``.)

        Raises:
            ImportError: the module is not allowed (or not installed).
        """
        name = exact(name, "module name")
        if level != 0:
            raise ImportError("relative imports are not allowed in the arena")
        if name not in self.allowed:
            if self.numpy is not None and self.numpy.is_own_import(name, fromlist):
                return None
            if name in NUMPY_MODULES:
                raise ImportError(f"import of {name!r} is not allowed in the arena: numpy is off on this server "
                                  "(the operator's opt-in, allow_numpy in the settings' [limits])", name=name)
            allowed = ", ".join(sorted(self.allowed))
            raise ImportError(f"import of {name!r} is not allowed in the arena; allowed: {allowed}", name=name)
        return self.module(name if fromlist else name.partition(".")[0])

    def _builtins(self) -> dict[str, Any]:
        denied, checked = self.denied, self.checked
        write_guard = store_rule(self.open_attributes)
        if self.numpy is not None:
            write_guard = self.numpy.store_guard(write_guard)
        checked_attribute = getattr if self.numpy is None else self.numpy.checked_attribute

        def allowed(name: str) -> bool:  # a private name is then up to private_attribute() or writable()
            return not name.startswith("__") and name not in denied

        def safe_getattr(obj: object, name: object, *default: object) -> Any:
            name = exact(name)
            try:
                if not allowed(name):
                    raise AttributeError(f"attribute {name!r} is not allowed in the arena")
                if is_private(name):
                    return private_attribute(obj, name)
            except AttributeError:
                if len(default) == 1:
                    return default[0]
                raise
            if name in FORMAT_METHODS and hasattr(obj, name):
                return format_attribute(obj, name)
            if name in checked:
                try:
                    return checked_attribute(obj, name)
                except AttributeError:
                    if len(default) == 1:
                        return default[0]
                    raise
            return getattr(obj, name, *default)

        def safe_hasattr(obj: object, name: object) -> bool:
            sentinel = object()
            return safe_getattr(obj, name, sentinel) is not sentinel

        def target(obj: object, name: object) -> tuple[object, str]:
            name = exact(name)
            if not allowed(name):
                raise AttributeError(f"attribute {name!r} is not allowed in the arena")
            return write_guard(obj, name), name

        def safe_setattr(obj: object, name: object, value: object) -> None:
            setattr(*target(obj, name), value)

        def safe_delattr(obj: object, name: object) -> None:
            delattr(*target(obj, name))

        table: dict[str, Any] = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
        table.update((k, v) for k, v in vars(builtins).items() if _is_error(v))
        guarded: dict[str, Callable[..., Any]] = {
            "getattr": safe_getattr, "hasattr": safe_hasattr, "setattr": safe_setattr, "delattr": safe_delattr,
            "type": SafeType, "__import__": self.import_, FORMAT_GUARD: format_attribute,
            PRIVATE_GUARD: private_attribute, WRITE_GUARD: write_guard, CATCH_GUARD: caught,
            CHECKED_GUARD: checked_attribute,
        }
        table.update(guarded)
        return table
