"""The rules for the names people choose: user names and agent names.

A name is 1-40 ASCII letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit,
and the pattern must match the *whole* string (``re.fullmatch``): with ``re.match`` and a
pattern ending in ``$``, a trailing newline passed, so a user ``"arena\\n"`` with an agent
``"tictactoe_minimax\\n"`` looked exactly like the built-in agent on every page. Being ASCII
only, the pattern also refuses every control and invisible character (format characters such
as zero-width spaces and joiners, bidi overrides, line separators); those get an error of
their own, naming the character by its code point, so the client sees what was refused.

The examples' owner name (``EXAMPLES_USER``, the owner of ``server/bots``) is reserved: no one
may sign up as it or as a look-alike of it, whatever the examples are seeded or not. A
look-alike has the same *skeleton*: case folded, the separators ``_ . -`` dropped and the
digits that read as letters mapped to them (``0`` o, ``1`` l, ``3`` e, ``4`` a, ``5`` s,
``7`` t, ``8`` b, ``9`` g; ``i`` reads as ``l``), so ``Arena``, ``ARENA``, ``ar3na``,
``4rena`` and ``a.r.e.n.a`` are all taken, and ``arena_fan`` is not.
"""

from __future__ import annotations

import re
import unicodedata

from protocol.errors import NameTaken, ProtocolError

__all__ = ["EXAMPLES_USER", "NAME_RE", "check_agent_name", "check_user_name", "is_reserved_user_name", "skeleton"]

EXAMPLES_USER = "arena"  # owns the example bots; nobody signs in as it
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")  # always used with fullmatch
_RULE = "1-40 letters, digits, '_', '.' or '-', starting with a letter or digit"
_LOOKS_LIKE = str.maketrans({"0": "o", "1": "l", "i": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                             "9": "g", "_": None, ".": None, "-": None})
# Control (Cc), format (Cf: zero-width, bidi overrides, soft hyphen), separators other than the
# plain space (Zl, Zp), surrogates, private use and unassigned code points: none of them shows
# as itself, so a name holding one can pass for another.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def skeleton(name: str) -> str:
    """What a name looks like, for comparing look-alikes: see the module's docstring."""
    return name.casefold().translate(_LOOKS_LIKE)


_RESERVED = frozenset({skeleton(EXAMPLES_USER)})  # skeletons of the reserved user names


def is_reserved_user_name(name: str) -> bool:
    """Whether ``name`` is the examples' owner's name or looks like it."""
    return skeleton(name.strip()) in _RESERVED


def _check(name: str, field: str) -> None:
    hidden = next((c for c in name if unicodedata.category(c) in _INVISIBLE_CATEGORIES), None)
    if hidden is not None:
        raise ProtocolError(
            f"{field} must not contain control or invisible characters; found U+{ord(hidden):04X} "
            f"({unicodedata.name(hidden, 'a control character')})", field=field,
        )
    if NAME_RE.fullmatch(name) is None:
        shown = repr(name) if len(name) <= 60 else f"{name[:60]!r}... ({len(name)} characters)"
        raise ProtocolError(f"{field} must be {_RULE}, got {shown}", field=field)


def check_user_name(name: str) -> None:
    """Refuse a user name that breaks the rules or passes for the examples' owner.

    Raises:
        ProtocolError: not a valid name (control or invisible characters included).
        NameTaken: the examples' owner's name, or a look-alike of it.
    """
    _check(name, "name")
    if is_reserved_user_name(name):
        raise NameTaken(f"user name {name!r} is reserved: it looks like {EXAMPLES_USER!r}, the owner of the "
                        "built-in example bots")


def check_agent_name(name: str) -> None:
    """Refuse an agent name that breaks the rules (also on a rename).

    Raises:
        ProtocolError: not a valid name (control or invisible characters included).
    """
    _check(name, "name")
