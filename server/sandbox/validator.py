"""Layer 1 of the sandbox: static analysis of a submitted bot's source.

Theory of operation
-------------------
The validator reads the submitted *bytes* the way CPython will (here), then walks the syntax
tree once (``_walker.py``) and reports every rule broken (the rules and their tables:
``_rules.py``), each as a :class:`~protocol.errors.Finding` with a 1-based line and column (in
characters, as editors count them).

1. Bytes first. Over ``max_bytes`` is rejected unparsed. Any PEP 263 coding cookie in the
   first two lines must name UTF-8: CPython honours a cookie such as ``utf-7`` and would
   then run code that a UTF-8 reader sees as a comment. The bytes must decode as UTF-8 and
   hold no NUL. Then ``ast.parse`` and ``compile`` on the same bytes; a ``SyntaxError``
   (or a tree too deep to build) is the one finding.
2. The tree. Imports pass the restricted runtime's allow-list of modules, submodules by
   their dotted names (``seat/restricted.py``'s ``ALLOWED_MODULES``: one list for both layers, so
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
import re
import warnings
from collections.abc import Iterable

from protocol.errors import Finding, ValidationFailed

from ._rules import ALLOWED_MODULES, FORBIDDEN_BUILTINS, FORBIDDEN_MODULES, MAX_SOURCE_BYTES, Rule, finding
from ._walker import NEWLINE, TreeChecker
from .seat import BOT_FILENAME

__all__ = [
    "ALLOWED_MODULES", "FORBIDDEN_BUILTINS", "FORBIDDEN_MODULES", "MAX_SOURCE_BYTES", "Rule",
    "check_source", "format_findings", "validate_source",
]  # fmt: skip


_COOKIE = re.compile(rb"#.*?coding[:=][ \t]*([-\w.]+)")


def validate_source(
    source: bytes | str, filename: str = BOT_FILENAME, *, max_bytes: int = MAX_SOURCE_BYTES, allow_numpy: bool = False
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
        return [finding(1, 1, Rule.SIZE, f"source is {len(data)} bytes; the limit is {max_bytes}")]
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
        return [finding(exc.lineno or 1, exc.offset or 1, Rule.SYNTAX, exc.msg)]
    except (RecursionError, MemoryError):
        return [finding(1, 1, Rule.SYNTAX, "source is nested too deeply to parse")]
    checker = TreeChecker(NEWLINE.split(text), allow_numpy=allow_numpy)
    checker.check_tree(tree)
    checker.check_identifier_tokens(body)
    # set(): an f-string's parts share its position (Python 3.11), and may break a rule alike.
    return sorted(set(checker.findings), key=lambda f: (f.line, f.col, f.rule, f.message))


def check_source(
    source: bytes | str, filename: str = BOT_FILENAME, *, max_bytes: int = MAX_SOURCE_BYTES, allow_numpy: bool = False
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


def format_findings(findings: Iterable[Finding], filename: str = BOT_FILENAME) -> str:
    """One ``file:line:col: rule: message`` line per finding, as compilers print them."""
    return "\n".join(f"{filename}:{f.line}:{f.col}: {f.rule}: {f.message}" for f in findings)


def _finding_at_byte(data: bytes, offset: int, rule: Rule, message: str) -> Finding:
    line_start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    line = len(NEWLINE.findall(data[:line_start].decode("utf-8", "replace"))) + 1
    col = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return finding(line, col, rule, message)


def _cookie_finding(data: bytes) -> Finding | None:
    # A superset of CPython's rule (same pattern and name characters, but CPython wants the
    # comment alone on line 1, or on line 2 after a comment): any such comment in lines 1-2.
    for number, line in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines()[:2], start=1):
        match = _COOKIE.search(line)
        if match is not None and not _is_utf8_name(match.group(1).decode("ascii", "replace")):
            name = match.group(1).decode("ascii", "replace")
            col = len(line[: match.start()].decode("utf-8", "replace")) + 1
            return finding(number, col, Rule.ENCODING, f"source encoding {name!r} is not allowed; use UTF-8")
    return None


def _is_utf8_name(name: str) -> bool:
    normal = name.lower().replace("_", "-")
    return normal in ("utf-8", "utf8") or normal.startswith("utf-8-")
