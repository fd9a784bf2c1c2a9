"""Layer 1's walker: one pass over a bot's syntax tree (and its raw tokens), collecting findings.

``validator.py`` reads the source and hands the tree here; :class:`TreeChecker` visits every node
breadth first (iteratively: a deep tree cannot overflow the server's stack) and asks ``_rules.py``
about each name it meets: imports, builtins, attributes (with what the object is, when it is an
allowed module or a member imported from one), definitions, ``str.format`` templates, strings
and the strings that constant folding (``_folding.py``) finds built from literals. A token scan
of the raw source then reports identifiers that Python reads in another (NFKC) form.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata
from collections.abc import Iterator

from protocol.errors import Finding

from ._folding import Folding, fold, has_dunder
from ._rules import (
    ALLOWED_DUNDER_METHODS,
    ALLOWED_DUNDER_NAMES,
    ALLOWED_DUNDER_STRINGS,
    ALLOWED_MODULES,
    ALLOWED_TOPS,
    ATTRIBUTE_BUILTINS,
    FORBIDDEN_BUILTINS,
    FORBIDDEN_MODULES,
    FORMAT_METHODS,
    NUMPY_MODULES,
    NUMPY_TOPS,
    Rule,
    attribute_problem,
    finding,
    is_dunder,
    member_problem,
    template_problem,
)

__all__ = ["NEWLINE", "TreeChecker"]

NEWLINE = re.compile(r"\r\n|\r|\n")  # CPython's line ends; str.splitlines knows more
_DEF_PREFIX = re.compile(r"\s*(?:async\s+)?(?:def|class)\s+")


def _edge_string(node: ast.expr, *, last: bool) -> str | None:
    """The string constant at the end (``last``) or start of a ``+`` chain, or None."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        node = node.right if last else node.left
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _operands(node: ast.AST) -> Iterator[ast.AST]:
    """The children of ``node``, with the object of a method call for the method: ``b`` in ``b.decode()``."""
    for child in ast.iter_child_nodes(node):
        yield child.value if isinstance(child, ast.Attribute) else child


class TreeChecker:
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
        self.findings.append(finding(line, col, rule, message))

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
                problem = attribute_problem(attr)
                if problem is not None:
                    self.add_at(problem[0], node, f"attribute {attr!r} is forbidden ({problem[1]})")

    def check_module_path(self, path: str, node: ast.stmt) -> bool:
        """Report a forbidden module path; True when it is allowed."""
        top, *rest = path.split(".")
        if top in FORBIDDEN_MODULES:
            self.add_at(Rule.IMPORT, node, f"import of {path!r} is forbidden")
            return False
        if top in NUMPY_TOPS and not self.allow_numpy:
            self.add_at(Rule.IMPORT, node, f"module {top!r} is not enabled on this arena (the operator's allow_numpy)")
            return False
        if top not in ALLOWED_TOPS:
            offered = ALLOWED_MODULES if self.allow_numpy else ALLOWED_MODULES - NUMPY_MODULES
            allowed = ", ".join(sorted(offered - {"__future__"}))
            self.add_at(Rule.IMPORT, node, f"module {top!r} is not in the allowed list: {allowed}")
            return False
        for index, part in enumerate(rest):
            problem = member_problem(".".join([top, *rest[:index]]), part)
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
            problem = member_problem(module, alias.name)
            if problem is not None:
                message = f"import of {alias.name!r} from {module!r} is forbidden ({problem})"
                self.add_at(Rule.IMPORT, alias, message)

    def check_identifier(self, name: str | None, node: ast.AST) -> None:
        if name is not None and is_dunder(name):
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
        elif is_dunder(name) and not (name in ALLOWED_DUNDER_NAMES and isinstance(node.ctx, ast.Load)):
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
        problem = attribute_problem(attr.value)
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
        problem = attribute_problem(attr)
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
            reason = member_problem(module, name)
            return None if reason is None else (f"module {module!r}", reason)
        if isinstance(node, ast.Name) and node.id in self.members:
            module, member = self.members[node.id]
            reason = member_problem(module, name, of_module=False)
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
            problem = template_problem(template.value)
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
        if not is_dunder(name):
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
