"""Layer 1's rules: what a bot's source may not name, and why, apart from the walker that looks.

The validator (``validator.py``) reads the source and walks its tree; every question it asks of
a name (an import, a member of an allowed module, an attribute, a ``str.format`` template) is
answered here, from the tables below. The allow-list of modules is layer 2's own
(``seat/restricted.py``: one definition for both layers, so ``import json.decoder`` fails in
both), and so are the members layer 2 leaves out of a module's stand-in; a deny-list only gives
clearer messages.
"""

from __future__ import annotations

import functools
import importlib.util
import pkgutil
import string
from collections.abc import Mapping
from enum import StrEnum

from protocol.errors import Finding

from .seat.restricted import ALLOWED_MODULES as RUNTIME_MODULES
from .seat.restricted import DENIED_MEMBERS, NUMPY_MODULES, ONLY_MEMBERS

__all__ = [
    "ALLOWED_DUNDER_METHODS", "ALLOWED_DUNDER_NAMES", "ALLOWED_DUNDER_STRINGS", "ALLOWED_MODULES", "ALLOWED_TOPS",
    "ATTRIBUTE_BUILTINS", "ESCAPE_ATTRIBUTES", "FORBIDDEN_BUILTINS", "FORBIDDEN_MODULES", "FORMAT_METHODS",
    "INTROSPECTION_ATTRIBUTES", "MAX_SOURCE_BYTES", "MODULE_MEMBER_DENY", "NUMPY_MODULES", "NUMPY_TOPS", "Rule",
    "attribute_problem", "finding", "is_dunder", "member_problem", "submodules", "template_problem",
]  # fmt: skip

# 256 KiB is far beyond any sensible bot and keeps parsing cheap for the server.
MAX_SOURCE_BYTES = 256 * 1024

# The restricted runtime's list (one definition for both layers), submodules by their dotted
# names; numpy too, checked member by member, though imported only where the operator allows it.
ALLOWED_MODULES = RUNTIME_MODULES | NUMPY_MODULES
ALLOWED_TOPS = frozenset(module.partition(".")[0] for module in ALLOWED_MODULES)
NUMPY_TOPS = frozenset(module.partition(".")[0] for module in NUMPY_MODULES)
FORBIDDEN_MODULES = frozenset({
    "_thread", "ast", "asyncio", "atexit", "bdb", "builtins", "code", "codeop", "concurrent",
    "copyreg", "ctypes", "dbm", "dis", "faulthandler", "fcntl", "fileinput", "ftplib", "gc",
    "glob", "http", "imp", "importlib", "inspect", "io", "linecache", "logging", "marshal", "mmap",
    "multiprocessing", "nt", "ntpath", "operator", "os", "pathlib", "pdb", "pickle", "pkgutil",
    "platform", "posix", "posixpath", "pty", "pwd", "pydoc", "requests", "resource", "runpy",
    "select", "selectors", "shelve", "shutil", "signal", "site", "smtplib", "socket", "sqlite3",
    "ssl", "subprocess", "symtable", "sys", "sysconfig", "tarfile", "tempfile", "threading",
    "timeit", "tokenize", "trace", "traceback", "types", "unittest", "urllib", "weakref",
    "webbrowser", "zipfile", "zipimport",
})  # fmt: skip
# Members of allowed modules that are too generic to ban as attribute names everywhere;
# checked on names bound by an import of that module.
MODULE_MEMBER_DENY: Mapping[str, frozenset[str]] = {
    "numpy": frozenset({
        "DataSource", "core", "distutils", "f2py", "fromfile", "fromregex", "genfromtxt", "lib",
        "load", "loadtxt", "memmap", "save", "savetxt", "savez", "savez_compressed", "testing",
    }),
}  # fmt: skip
FORBIDDEN_BUILTINS = frozenset({
    "__import__", "breakpoint", "compile", "copyright", "credits", "dir", "eval", "exec", "exit",
    "globals", "help", "input", "license", "locals", "memoryview", "open", "quit", "vars",
})  # fmt: skip
# Allowed only as a direct call whose attribute name is a harmless string literal.
ATTRIBUTE_BUILTINS = frozenset({"delattr", "getattr", "hasattr", "setattr"})
# Checked with leading underscores stripped, so ``_getframe`` is ``getframe``.
INTROSPECTION_ATTRIBUTES = frozenset({
    "ag_await", "ag_code", "ag_frame", "cell_contents", "co_code", "co_consts", "co_names",
    "cr_await", "cr_code", "cr_frame", "f_back", "f_builtins", "f_code", "f_globals", "f_locals",
    "f_trace", "func_closure", "func_code", "func_globals", "getframe", "gi_code", "gi_frame",
    "gi_yieldfrom", "mro", "tb_frame", "tb_next",
})  # fmt: skip
# Distinctive names (leading underscores stripped) that lead from an allowed module or
# object to a forbidden one or to an evaluator: ``random._os``, ``typing.sys``,
# ``numpy.ndarray.ctypes``, ``typing.get_type_hints`` (evaluates string annotations).
ESCAPE_ATTRIBUTES = frozenset({
    "CodeType", "ForwardRef", "Formatter", "FrameType", "FunctionType", "TracebackType",
    "as_strided", "builtins", "ctypes", "ctypeslib", "eval_type", "gc", "get_type_hints", "imp",
    "importlib", "inspect", "marshal", "multiprocessing", "os", "pickle", "posix",
    "posixsubprocess", "singledispatch", "singledispatchmethod", "socket", "stride_tricks",
    "subprocess", "sys", "threading", "traceback",
})  # fmt: skip
FORMAT_METHODS = frozenset({"format", "format_map"})
# Dunder methods a class may define; ``super().__init__(...)`` is the one dunder access allowed.
ALLOWED_DUNDER_METHODS = frozenset({
    "__bool__", "__contains__", "__eq__", "__ge__", "__getitem__", "__gt__", "__hash__", "__init__",
    "__iter__", "__le__", "__len__", "__lt__", "__ne__", "__next__", "__post_init__", "__repr__",
    "__setitem__", "__str__",
})  # fmt: skip
ALLOWED_DUNDER_NAMES = frozenset({"__name__"})  # read only, for ``if __name__ == "__main__":``
ALLOWED_DUNDER_STRINGS = frozenset({"__main__"})

_FORMATTER = string.Formatter()


class Rule(StrEnum):
    """The rule ids a finding can name."""

    SIZE = "size"
    ENCODING = "encoding"
    NUL = "nul"
    SYNTAX = "syntax"
    IMPORT = "import"
    BUILTIN = "builtin"
    DUNDER = "dunder"
    DUNDER_STRING = "dunder_string"
    INTROSPECTION = "introspection"
    ATTRIBUTE = "attribute"
    FORMAT = "format"
    UNICODE = "unicode"
    ASYNC = "async"
    CALL = "call"



def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def attribute_problem(attr: str) -> tuple[Rule, str] | None:
    """Why reading attribute ``attr`` of any object is forbidden, or None."""
    key = attr.lstrip("_")
    if attr.startswith("__"):
        return Rule.DUNDER, "dunder" if is_dunder(attr) else "starts with '__'"
    if key in INTROSPECTION_ATTRIBUTES:
        return Rule.INTROSPECTION, "frame and code introspection"
    if key in ESCAPE_ATTRIBUTES:
        return Rule.ATTRIBUTE, "leads to a forbidden module or evaluator"
    return None


def member_problem(module: str, name: str, *, of_module: bool = True) -> str | None:
    """Why member ``name`` of allowed module ``module`` (dotted) is forbidden, or None.

    With ``of_module`` false, ``name`` is read from a member imported from the module (a class,
    a function): only the rules on the name itself apply.
    """
    if name.startswith("_") and module != "__future__":
        return "private name"
    if name in FORBIDDEN_MODULES or name.lstrip("_") in FORBIDDEN_MODULES:
        return "forbidden module"
    problem = attribute_problem(name)
    if problem is not None:
        return problem[1]
    if name in MODULE_MEMBER_DENY.get(module.partition(".")[0], frozenset()):
        return "not available to bots"
    if not of_module:
        return None
    only = ONLY_MEMBERS.get(module)
    if name in DENIED_MEMBERS.get(module, ()) or (only is not None and name not in only):
        return "not available to bots"
    dotted = f"{module}.{name}"
    if dotted not in ALLOWED_MODULES and name in submodules(module):
        return f"submodule {dotted!r} is not in the allowed list"
    return None


@functools.cache
def submodules(module: str) -> frozenset[str]:
    """The submodules of package ``module`` (dotted), found on disk without importing anything."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return frozenset()
    locations = spec.submodule_search_locations if spec is not None else None
    for part in rest:
        infos = {info.name: info for info in pkgutil.iter_modules(locations)} if locations else {}
        info = infos.get(part)
        found = info.module_finder.find_spec(f"{top}.{part}", None) if info and info.ispkg else None
        locations = found.submodule_search_locations if found is not None else None
    return frozenset(info.name for info in pkgutil.iter_modules(locations)) if locations else frozenset()


def template_problem(template: str, depth: int = 0) -> str | None:
    """Why a ``str.format`` template may reach attributes or items, or None."""
    if depth > 2:
        return "format spec nested too deeply"
    try:
        fields = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return f"malformed format template: {exc}"
    for _literal, field, spec, _conversion in fields:
        if field is not None and ("." in field or "[" in field):
            return f"format field {field!r} reaches into attributes or items"
        if spec and "{" in spec:
            nested = template_problem(spec, depth + 1)
            if nested is not None:
                return nested
    return None


def finding(line: int, col: int, rule: Rule, message: str) -> Finding:
    """A finding of ``rule`` at ``line``:``col`` (1-based; the column in characters)."""
    return Finding(line, col, rule.value, message)
