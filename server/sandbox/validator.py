"""Layer 1 of the sandbox: static analysis of a submitted bot's source.

Theory of operation
-------------------
The validator reads the submitted *bytes* the way CPython will, then walks the syntax tree
once and reports every rule broken, each as a :class:`~protocol.errors.Finding` with a
1-based line and column (in characters, as editors count them).

1. Bytes first. Over ``max_bytes`` is rejected unparsed. Any PEP 263 coding cookie in the
   first two lines must name UTF-8: CPython honours a cookie such as ``utf-7`` and would
   then run code that a UTF-8 reader sees as a comment. The bytes must decode as UTF-8 and
   hold no NUL. Then ``ast.parse`` and ``compile`` on the same bytes; a ``SyntaxError``
   (or a tree too deep to build) is the one finding.
2. The tree. Imports pass the restricted runtime's allow-list of modules, submodules by
   their dotted names (``restricted.ALLOWED_MODULES``: one list for both layers, so
   ``import json.decoder`` fails in both; a deny-list only gives clearer messages), and so
   do the members the runtime leaves out of a module (``typing.get_origin``, a submodule
   such as ``json.decoder``). Forbidden builtins are flagged wherever their name appears;
   the ``getattr`` family only as a direct call with a harmless string-literal name, so
   every attribute name a bot can reach is written out in the source. Attribute names are
   then checked directly: dunders, frame and code introspection, and names that lead from
   an allowed module back to a forbidden one (``random._os``, ``dataclasses.builtins``,
   ``typing.get_type_hints`` which evaluates strings). ``str.format`` templates can reach
   attributes too (``'{0.__class__}'``), so they must be literals without ``.`` or ``[``
   in a field. ``copy.deepcopy`` takes one argument: its memo holds the inner state of
   every object it copies.
3. Building names from strings has no sink left once the above hold, but any string
   whose *value* contains ``__`` is still rejected (legitimate bots never need one), however
   it is written: a constant with escapes (``'\\x5f\\x5f'``), or an expression of literals
   folded to its value (``_folding.py``: ``'_' + '_x'``, ``''.join([...])``, f-strings,
   ``%``, ``replace``...). So is ``_`` made from its code point (``chr(95)``,
   ``bytes([95])``, ``'%c' % 95``), and the obvious ``'_' * n`` and ``x + '_' + '_...'``
   that folding cannot value.
4. CPython NFKC-normalises identifiers, so ``ｅｖａｌ`` is ``eval``: the tree already holds
   the normalised names and the rules above apply to them; a token scan of the raw source
   also reports every identifier written in a non-normal form.

This layer is best effort against a determined attacker; the restricted runtime (layer 2)
and the process layers are what actually contain a bot. Its job is early, precise errors
and closing the well-known escapes.
"""

from __future__ import annotations

import ast
import codecs
import functools
import importlib.util
import io
import pkgutil
import re
import string
import tokenize
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum

from protocol.errors import Finding, ValidationFailed

from ._folding import Folding, fold, has_dunder
from .restricted import ALLOWED_MODULES as RUNTIME_MODULES
from .restricted import DENIED_MEMBERS, NUMPY_MODULES, ONLY_MEMBERS

__all__ = [
    "ALLOWED_MODULES", "FORBIDDEN_BUILTINS", "FORBIDDEN_MODULES", "MAX_SOURCE_BYTES", "Rule",
    "check_source", "format_findings", "validate_source",
]  # fmt: skip

# 256 KiB is far beyond any sensible bot and keeps parsing cheap for the server.
MAX_SOURCE_BYTES = 256 * 1024

# The restricted runtime's list (one definition for both layers), submodules by their dotted
# names; numpy too, checked member by member, though imported only where the operator allows it.
ALLOWED_MODULES = RUNTIME_MODULES | NUMPY_MODULES
_ALLOWED_TOPS = frozenset(module.partition(".")[0] for module in ALLOWED_MODULES)
_NUMPY_TOPS = frozenset(module.partition(".")[0] for module in NUMPY_MODULES)
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

_COOKIE = re.compile(rb"#.*?coding[:=][ \t]*([-\w.]+)")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # CPython's line ends; str.splitlines knows more
_DEF_PREFIX = re.compile(r"\s*(?:async\s+)?(?:def|class)\s+")
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


def validate_source(
    source: bytes | str, filename: str = "bot.py", *, max_bytes: int = MAX_SOURCE_BYTES, allow_numpy: bool = False
) -> list[Finding]:
    """Every rule the source breaks, sorted by position; an empty list means accepted.

    ``allow_numpy``: the arena lets bots import numpy (the operator's opt-in, ``Limits.allow_numpy``);
    without it an import of numpy is a finding, so a bot is refused when submitted, not at its first match.
    """
    try:
        data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    except UnicodeEncodeError as exc:  # a str holding lone surrogates
        head = str(source)[: exc.start].encode("utf-8", "replace")
        return [_finding_at_byte(head, len(head), Rule.ENCODING, "source is not valid Unicode")]
    if len(data) > max_bytes:
        return [_finding(1, 1, Rule.SIZE, f"source is {len(data)} bytes; the limit is {max_bytes}")]
    cookie = _cookie_finding(data)
    if cookie is not None:
        return [cookie]
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = body[exc.start : exc.start + 1]
        return [_finding_at_byte(body, exc.start, Rule.ENCODING, f"invalid UTF-8 byte {bad!r}")]
    if b"\0" in body:
        return [_finding_at_byte(body, body.index(b"\0"), Rule.NUL, "source contains a NUL byte")]
    try:
        # Compiler warnings (invalid escapes, ``is`` with a literal) are the author's business:
        # never print them on the server, and never let ``-W error`` turn them into findings.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(data, filename=filename)
            compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [_finding(exc.lineno or 1, exc.offset or 1, Rule.SYNTAX, exc.msg)]
    except (RecursionError, MemoryError):
        return [_finding(1, 1, Rule.SYNTAX, "source is nested too deeply to parse")]
    checker = _Checker(_NEWLINE.split(text), allow_numpy=allow_numpy)
    checker.check_tree(tree)
    checker.check_identifier_tokens(body)
    # set(): an f-string's parts share its position (Python 3.11), and may break a rule alike.
    return sorted(set(checker.findings), key=lambda f: (f.line, f.col, f.rule, f.message))


def check_source(
    source: bytes | str, filename: str = "bot.py", *, max_bytes: int = MAX_SOURCE_BYTES, allow_numpy: bool = False
) -> None:
    """Accept the source or raise (``allow_numpy`` as for :func:`validate_source`).

    Raises:
        ValidationFailed: the source breaks at least one rule; ``.findings`` lists them all.
    """
    findings = validate_source(source, filename, max_bytes=max_bytes, allow_numpy=allow_numpy)
    if findings:
        first = findings[0]
        plural = "s" if len(findings) > 1 else ""
        raise ValidationFailed(
            f"{filename} rejected with {len(findings)} finding{plural}; first at "
            f"{first.line}:{first.col}: {first.rule}: {first.message}",
            findings,
        )


def format_findings(findings: Iterable[Finding], filename: str = "bot.py") -> str:
    """One ``file:line:col: rule: message`` line per finding, as compilers print them."""
    return "\n".join(f"{filename}:{f.line}:{f.col}: {f.rule}: {f.message}" for f in findings)


def _finding(line: int, col: int, rule: Rule, message: str) -> Finding:
    return Finding(line, col, rule.value, message)


def _finding_at_byte(data: bytes, offset: int, rule: Rule, message: str) -> Finding:
    line_start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    line = len(_NEWLINE.findall(data[:line_start].decode("utf-8", "replace"))) + 1
    col = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return _finding(line, col, rule, message)


def _cookie_finding(data: bytes) -> Finding | None:
    # A superset of CPython's rule (same pattern and name characters, but CPython wants the
    # comment alone on line 1, or on line 2 after a comment): any such comment in lines 1-2.
    for number, line in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines()[:2], start=1):
        match = _COOKIE.search(line)
        if match is not None and not _is_utf8_name(match.group(1).decode("ascii", "replace")):
            name = match.group(1).decode("ascii", "replace")
            col = len(line[: match.start()].decode("utf-8", "replace")) + 1
            return _finding(number, col, Rule.ENCODING, f"source encoding {name!r} is not allowed; use UTF-8")
    return None


def _is_utf8_name(name: str) -> bool:
    normal = name.lower().replace("_", "-")
    return normal in ("utf-8", "utf8") or normal.startswith("utf-8-")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _attribute_problem(attr: str) -> tuple[Rule, str] | None:
    """Why reading attribute ``attr`` of any object is forbidden, or None."""
    key = attr.lstrip("_")
    if attr.startswith("__"):
        return Rule.DUNDER, "dunder" if _is_dunder(attr) else "starts with '__'"
    if key in INTROSPECTION_ATTRIBUTES:
        return Rule.INTROSPECTION, "frame and code introspection"
    if key in ESCAPE_ATTRIBUTES:
        return Rule.ATTRIBUTE, "leads to a forbidden module or evaluator"
    return None


def _member_problem(module: str, name: str, *, of_module: bool = True) -> str | None:
    """Why member ``name`` of allowed module ``module`` (dotted) is forbidden, or None.

    With ``of_module`` false, ``name`` is read from a member imported from the module (a class,
    a function): only the rules on the name itself apply.
    """
    if name.startswith("_") and module != "__future__":
        return "private name"
    if name in FORBIDDEN_MODULES or name.lstrip("_") in FORBIDDEN_MODULES:
        return "forbidden module"
    problem = _attribute_problem(name)
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
    if dotted not in ALLOWED_MODULES and name in _submodules(module):
        return f"submodule {dotted!r} is not in the allowed list"
    return None


@functools.cache
def _submodules(module: str) -> frozenset[str]:
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


def _template_problem(template: str, depth: int = 0) -> str | None:
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
            nested = _template_problem(spec, depth + 1)
            if nested is not None:
                return nested
    return None


def _edge_string(node: ast.expr, *, last: bool) -> str | None:
    """The string constant at the end (``last``) or start of a ``+`` chain, or None."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        node = node.right if last else node.left
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _operands(node: ast.AST) -> Iterator[ast.AST]:
    """The children of ``node``, with the object of a method call for the method: ``b`` in ``b.decode()``."""
    for child in ast.iter_child_nodes(node):
        yield child.value if isinstance(child, ast.Attribute) else child


class _Checker:
    """Walks one parsed module and collects findings."""

    def __init__(self, lines: list[str], *, allow_numpy: bool) -> None:
        self.lines = lines
        self.allow_numpy = allow_numpy
        self.findings: list[Finding] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        self.modules: dict[str, str] = {}  # local name -> the allowed module it names (dotted)
        self.members: dict[str, tuple[str, str]] = {}  # local name -> (module, member) it was imported as
        self.folding = Folding()

    def add(self, rule: Rule, line: int, col: int, message: str) -> None:
        self.findings.append(_finding(line, col, rule, message))

    def col(self, line: int, byte_offset: int) -> int:
        """1-based character column of a UTF-8 byte offset, as the ast reports them."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore")) + 1

    def add_at(self, rule: Rule, node: ast.AST, message: str) -> None:
        line: int = getattr(node, "lineno", 1)
        self.add(rule, line, self.col(line, getattr(node, "col_offset", 0)), message)

    def attr_position(self, node: ast.Attribute) -> tuple[int, int]:
        """Where the attribute name itself starts (the node starts at its object)."""
        line = node.end_lineno or node.lineno
        end = self.col(line, node.end_col_offset or 0) - 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        start = end
        while start > 0 and ("a" + text[start - 1]).isidentifier():
            start -= 1
        return line, start + 1

    def check_tree(self, tree: ast.Module) -> None:
        nodes: list[ast.AST] = [tree]
        for node in nodes:  # breadth first and iterative: a deep tree cannot overflow our stack
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
                nodes.append(child)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.modules[alias.asname] = alias.name
                    else:
                        self.modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    if dotted in ALLOWED_MODULES:
                        self.modules[alias.asname or alias.name] = dotted
                    else:
                        self.members[alias.asname or alias.name] = (node.module, alias.name)
        self.folding = fold(nodes)
        for node in nodes:
            self.visit(node)
        self.check_folded()

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.check_module_path(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            self.check_import_from(node)
        elif isinstance(node, ast.Name):
            self.check_name(node)
        elif isinstance(node, ast.Attribute):
            self.check_attribute(node)
        elif isinstance(node, ast.Constant):
            self.check_constant(node)
        elif isinstance(node, ast.Call):
            self.check_call(node)
        elif isinstance(node, ast.BinOp):
            self.check_name_building(node)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            self.check_definition(node)
        elif isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            self.add_at(Rule.ASYNC, node, "async code is forbidden; bots are synchronous")
        elif isinstance(node, ast.comprehension) and node.is_async:
            self.add_at(Rule.ASYNC, node.target, "async code is forbidden; bots are synchronous")
        elif isinstance(node, ast.arg):
            self.check_identifier(node.arg, node)
        elif isinstance(node, ast.keyword | ast.alias):
            self.check_identifier(node.arg if isinstance(node, ast.keyword) else node.asname, node)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            self.check_identifier(node.name, node)
        elif isinstance(node, ast.MatchMapping):
            self.check_identifier(node.rest, node)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                self.check_identifier(name, node)
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:  # a class pattern reads these attributes of the subject
                problem = _attribute_problem(attr)
                if problem is not None:
                    self.add_at(problem[0], node, f"attribute {attr!r} is forbidden ({problem[1]})")

    def check_module_path(self, path: str, node: ast.stmt) -> bool:
        """Report a forbidden module path; True when it is allowed."""
        top, *rest = path.split(".")
        if top in FORBIDDEN_MODULES:
            self.add_at(Rule.IMPORT, node, f"import of {path!r} is forbidden")
            return False
        if top in _NUMPY_TOPS and not self.allow_numpy:
            self.add_at(Rule.IMPORT, node, f"module {top!r} is not enabled on this arena (the operator's allow_numpy)")
            return False
        if top not in _ALLOWED_TOPS:
            offered = ALLOWED_MODULES if self.allow_numpy else ALLOWED_MODULES - NUMPY_MODULES
            allowed = ", ".join(sorted(offered - {"__future__"}))
            self.add_at(Rule.IMPORT, node, f"module {top!r} is not in the allowed list: {allowed}")
            return False
        for index, part in enumerate(rest):
            problem = _member_problem(".".join([top, *rest[:index]]), part)
            if problem is not None:
                self.add_at(Rule.IMPORT, node, f"import of {path!r} is forbidden ({problem})")
                return False
        if path not in ALLOWED_MODULES:
            self.add_at(Rule.IMPORT, node, f"import of {path!r} is forbidden (not in the allowed list)")
            return False
        return True

    def check_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add_at(Rule.IMPORT, node, "relative import is forbidden")
            return
        module = node.module or ""
        if not self.check_module_path(module, node):
            return
        for alias in node.names:
            if alias.name == "*":
                self.add_at(Rule.IMPORT, node, f"star import from {module!r} is forbidden")
                continue
            problem = _member_problem(module, alias.name)
            if problem is not None:
                message = f"import of {alias.name!r} from {module!r} is forbidden ({problem})"
                self.add_at(Rule.IMPORT, alias, message)

    def check_identifier(self, name: str | None, node: ast.AST) -> None:
        if name is not None and _is_dunder(name):
            self.add_at(Rule.DUNDER, node, f"name {name!r} is forbidden (dunder)")

    def is_called(self, node: ast.expr) -> bool:
        parent = self.parents.get(node)
        return isinstance(parent, ast.Call) and parent.func is node

    def check_name(self, node: ast.Name) -> None:
        name = node.id
        if name in ATTRIBUTE_BUILTINS:
            self.check_attribute_builtin(node)
        elif name in FORBIDDEN_BUILTINS:
            verb = "call of" if self.is_called(node) else "use of builtin"
            self.add_at(Rule.BUILTIN, node, f"{verb} {name!r} is forbidden")
        elif _is_dunder(name) and not (name in ALLOWED_DUNDER_NAMES and isinstance(node.ctx, ast.Load)):
            self.add_at(Rule.DUNDER, node, f"name {name!r} is forbidden (dunder)")

    def check_attribute_builtin(self, node: ast.Name) -> None:
        """``getattr`` and kin: only called directly, with a harmless literal name."""
        name = node.id
        call = self.parents.get(node)
        if not isinstance(call, ast.Call) or call.func is not node:
            self.add_at(Rule.BUILTIN, node, f"use of {name!r} other than a direct call is forbidden")
            return
        args = call.args
        attr = args[1] if len(args) >= 2 and not isinstance(args[0], ast.Starred) else None
        if call.keywords or not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
            self.add_at(Rule.BUILTIN, node, f"{name}() needs a string literal as the attribute name")
            return
        problem = _attribute_problem(attr.value)
        reason = problem[1] if problem else None
        if reason is None and attr.value in FORMAT_METHODS:
            reason = "format templates are checked only in direct calls"
        if reason is None and (found := self.member_problem(args[0], attr.value)) is not None:
            reason = found[1]
        if reason is not None:
            self.add_at(Rule.BUILTIN, node, f"{name}() of {attr.value!r} is forbidden ({reason})")

    def check_attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        line, col = self.attr_position(node)
        value = node.value
        if (
            attr == "__init__"
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
            and self.is_called(node)
        ):
            return
        problem = _attribute_problem(attr)
        if problem is not None:
            self.add(problem[0], line, col, f"attribute {attr!r} is forbidden ({problem[1]})")
        elif (found := self.member_problem(value, attr)) is not None:
            owner, reason = found
            self.add(Rule.ATTRIBUTE, line, col, f"attribute {attr!r} of {owner} is forbidden ({reason})")
        elif attr.startswith("_") and (dotted := self.module_chain(value)) is not None:
            # collections.abc._x: a private member of a submodule (or of a module's class); the
            # restricted runtime allows "_" attributes on the bot's own objects only.
            self.add(Rule.ATTRIBUTE, line, col, f"attribute {attr!r} of {dotted!r} is forbidden (private name)")
        if attr in FORMAT_METHODS:
            self.check_format(node, line, col)

    def module_of(self, node: ast.expr) -> str | None:
        """The allowed module (dotted) that ``node`` names: ``np``, ``collections.abc``; else None."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute) and len(parts) < 2:  # no allowed module is deeper
            parts.append(node.attr)
            node = node.value
        module = self.modules.get(node.id) if isinstance(node, ast.Name) else None
        for part in reversed(parts):
            module = f"{module}.{part}" if module and f"{module}.{part}" in ALLOWED_MODULES else None
        return module

    def member_problem(self, node: ast.expr, name: str) -> tuple[str, str] | None:
        """What ``node`` is and why its attribute ``name`` is forbidden, when ``node`` is an
        allowed module or a member imported from one; else None."""
        module = self.module_of(node)
        if module is not None:
            reason = _member_problem(module, name)
            return None if reason is None else (f"module {module!r}", reason)
        if isinstance(node, ast.Name) and node.id in self.members:
            module, member = self.members[node.id]
            reason = _member_problem(module, name, of_module=False)
            return None if reason is None else (repr(f"{module}.{member}"), reason)
        return None

    def check_call(self, node: ast.Call) -> None:
        func, args = node.func, node.args
        if isinstance(func, ast.Name) and func.id == "type":
            if len(args) == 3 or any(isinstance(arg, ast.Starred) for arg in args):
                self.add_at(Rule.BUILTIN, node, "type() with three arguments (class creation) is forbidden")
        is_deepcopy = (isinstance(func, ast.Attribute) and func.attr == "deepcopy"
                       and self.module_of(func.value) == "copy")
        if isinstance(func, ast.Name) and self.members.get(func.id) == ("copy", "deepcopy"):
            is_deepcopy = True
        if is_deepcopy and (len(args) != 1 or node.keywords or isinstance(args[0], ast.Starred)):
            message = "copy.deepcopy() takes one argument here: its memo holds the inner state of what it copies"
            self.add_at(Rule.CALL, node, message)

    def module_chain(self, node: ast.expr) -> str | None:
        """``a.b.c`` when ``a`` names an imported module (or a member imported from one), else None."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not (isinstance(node, ast.Name) and (node.id in self.modules or node.id in self.members)):
            return None
        return ".".join([node.id, *reversed(parts)])

    def check_format(self, node: ast.Attribute, line: int, col: int) -> None:
        """A format template reads attributes and items of its arguments: only literals, checked."""
        template: ast.expr | None = node.value
        if isinstance(node.value, ast.Name) and node.value.id == "str":  # str.format(template, ...)
            call = self.parents.get(node)
            is_direct = isinstance(call, ast.Call) and call.func is node and bool(call.args)
            template = call.args[0] if isinstance(call, ast.Call) and is_direct else None
        if isinstance(template, ast.Constant) and isinstance(template.value, str):
            problem = _template_problem(template.value)
            if problem is not None:
                self.add_at(Rule.FORMAT, template, f"{node.attr}() template is forbidden: {problem}")
        else:
            message = f"{node.attr}() with a template that is not a string literal is forbidden"
            self.add(Rule.FORMAT, line, col, message)

    def check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(self.parents.get(node), ast.Expr):
            return  # a bare string statement (docstring) is inert: nothing can read it back
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and "__" in value and value not in ALLOWED_DUNDER_STRINGS:
            shown = value if len(value) <= 40 else value[:37] + "..."
            self.add_at(Rule.DUNDER_STRING, node, f"string {shown!r} contains '__'")

    def check_name_building(self, node: ast.BinOp) -> None:
        """``'_' * n`` and ``x + '_' + '_y'``: what folding cannot see (its values are checked below)."""
        if node in self.folding.values:
            return
        if isinstance(node.op, ast.Mult):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, str) and side.value:
                    if set(side.value) == {"_"}:
                        self.add_at(Rule.DUNDER_STRING, node, "repeating '_' builds dunder names")
        elif isinstance(node.op, ast.Add):
            left = _edge_string(node.left, last=True)
            right = _edge_string(node.right, last=False)
            if left is not None and right is not None and left.endswith("_") and right.startswith("_"):
                self.add_at(Rule.DUNDER_STRING, node, "string concatenation builds '__'")

    def check_folded(self) -> None:
        """Strings built from literals (``'_' + '_x'``, ``''.join(...)``, ``chr(95)``), by value."""
        values = self.folding.values
        for node, value in values.items():
            if isinstance(node, ast.Constant) or isinstance(value, (int, tuple)) or not has_dunder(value):
                continue  # a constant is checked by itself
            if any(part in self.folding.code_points or has_dunder(values.get(part, "")) for part in _operands(node)):
                continue  # reported where it first appears
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if text not in ALLOWED_DUNDER_STRINGS and node not in self.folding.code_points:
                shown = text if len(text) <= 40 else text[:37] + "..."
                self.add_at(Rule.DUNDER_STRING, node, f"expression builds {shown!r}: strings with '__' are forbidden")
        for node in self.folding.code_points:
            self.add_at(Rule.DUNDER_STRING, node, "'_' made from its code point (95) is forbidden; write names out")

    def check_definition(self, node: ast.FunctionDef | ast.ClassDef) -> None:
        name = node.name
        if not _is_dunder(name):
            return
        in_class = isinstance(self.parents.get(node), ast.ClassDef)
        if isinstance(node, ast.FunctionDef) and in_class and name in ALLOWED_DUNDER_METHODS:
            return
        text = self.lines[node.lineno - 1] if node.lineno <= len(self.lines) else ""
        start = self.col(node.lineno, node.col_offset) - 1
        match = _DEF_PREFIX.match(text, start)
        col = match.end() + 1 if match else start + 1
        allowed = ", ".join(sorted(ALLOWED_DUNDER_METHODS))
        message = f"definition of {name!r} is forbidden (dunder); a class may define only: {allowed}"
        self.add(Rule.DUNDER, node.lineno, col, message)

    def check_identifier_tokens(self, body: bytes) -> None:
        """Report identifiers whose raw spelling is not their NFKC form (``ｅｖａｌ``)."""
        # tokenize reads lines split at b"\n" only, while CPython also ends lines at a lone "\r".
        source = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        run: list[tokenize.TokenInfo] = []
        try:
            for token in tokenize.tokenize(io.BytesIO(source).readline):
                # tokenize knows identifiers as \w+, so other identifier characters (U+FE4F
                # and kin) arrive as ERRORTOKENs glued to their neighbours: join the run.
                is_part = token.type in (tokenize.NAME, tokenize.ERRORTOKEN)
                if is_part and run and run[-1].end == token.start:
                    run.append(token)
                    continue
                self.report_identifier(run)
                run = [token] if is_part else []
        except (tokenize.TokenError, SyntaxError):
            pass  # the tree was built, so the normalised names were checked all the same
        self.report_identifier(run)

    def report_identifier(self, run: list[tokenize.TokenInfo]) -> None:
        raw = "".join(token.string for token in run)
        if raw.isascii():
            return
        normal = unicodedata.normalize("NFKC", raw)
        if normal != raw:
            line, col = run[0].start
            self.add(Rule.UNICODE, line, col + 1, f"identifier {raw!r} is read by Python as {normal!r}")
