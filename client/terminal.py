"""Showing text that others control on a terminal: control characters escaped.

Bots and users choose much of what the CLI prints: agent and user names, a seat's reason, an
illegal move, a bot's log, a remote agent's error message, whatever a replay file holds, and
the server's error messages that quote them. Printed raw, ``\\x1b]0;...\\x07`` retitles the
terminal, ``\\x1b[2J`` clears it, a newline starts a fake ``winner:`` line and a bidi override
reorders what follows. :func:`printable` is the one helper every output of the CLI goes
through: each such value is escaped where it is put into a line, and ``out``/``err`` in
``client/cli.py`` pass whole lines through it again (keeping only the line breaks the CLI
itself wrote), so a value that slipped past is still shown inert. JSON output (``--json``)
is JSON, written as is. A bot's log shown among other output is quoted line by line
(:func:`quoted_lines`), so no line of it passes for one of the CLI's own.

Escaped: C0 controls and DEL (``\\n``, ``\\r``, ``\\t`` by name, others as ``\\xNN``), the C1
controls (``\\x9b`` is a CSI on some terminals), and the invisible format and separator
characters (zero-width spaces and joiners, bidi embeddings, overrides and isolates, U+2028,
U+2029, the BOM), as ``\\uNNNN``. Everything else, non-ASCII letters included, is kept.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable", "quoted_lines"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    point = ord(char)
    return f"\\x{point:02x}" if point <= 0xFF else f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def _is_unsafe(char: str) -> bool:
    if char < " " or "\x7f" <= char <= "\x9f":  # the common case decided without a table lookup
        return True
    return char > "\x9f" and unicodedata.category(char) in _ESCAPED_CATEGORIES


def printable(value: object, *, multiline: bool = False) -> str:
    """``str(value)`` with every control and invisible character escaped; with ``multiline``
    the line breaks (``\\n``) are kept, for text that is lines (a log, a rendered board)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: no Cc, Cf, Zl, Zp or Cs character (nor "\n")
        return text
    return "".join(
        char if (multiline and char == "\n") or not _is_unsafe(char) else _escape(char) for char in text
    )


def quoted_lines(text: str, prefix: str = "  | ") -> str:
    """Text others wrote (a bot's log), each line escaped and behind ``prefix``, so that none
    of its lines can pass for one of the CLI's own (a fake ``winner:`` line)."""
    return "\n".join(prefix + printable(line) for line in text.rstrip("\n").split("\n"))
