"""Example bots shipped with the arena, one plain Kaggle-style source file each.

The ``<game>_<name>.py`` files here are bot sources, not server modules: they are read as
text, validated and run inside the sandbox like any submission (standard library only).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["example_bots"]


def example_bots() -> dict[str, list[tuple[str, str]]]:
    """Every example bot by game name, as ``(bot_name, source)`` pairs sorted by name.

    The game is the file name's prefix before the first underscore and the bot name is
    the file name without ``.py``: ``connectx_greedy.py`` is bot ``connectx_greedy``
    of game ``connectx``.
    """
    bots: dict[str, list[tuple[str, str]]] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".py") or entry.name == "__init__.py" or not entry.is_file():
            continue
        bot_name = entry.name.removesuffix(".py")
        game = bot_name.split("_", 1)[0]
        bots.setdefault(game, []).append((bot_name, entry.read_text(encoding="utf-8")))
    return bots
