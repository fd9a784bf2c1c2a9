"""Options several ``arena`` commands share: the server and token flags, ``--config`` pairs.

A server command takes ``--server`` and ``--token`` (:func:`remote_flags`); when they are left
out, ``client/cli.py`` fills them from ``ARENA_SERVER`` and ``ARENA_TOKEN``, then from the
config file ``arena login`` wrote. A command with subcommands of its own (``arena agents
disable AGENT``, ``arena token rotate``) takes the flags on both sides of the subcommand's
name: argparse copies every value a subcommand's parser holds over those parsed before it, so
the subcommand's copies default to nothing at all (``nested``) and a flag given before the
subcommand's name is kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .errors import CliError

__all__ = ["DEFAULT_SERVER", "parse_config", "remote_flags"]

DEFAULT_SERVER = "http://127.0.0.1:8000"


def remote_flags(*, nested: bool = False) -> argparse.ArgumentParser:
    """A parent parser with ``--server`` and ``--token``; ``nested`` for a subcommand's parser,
    whose flags must not overwrite those given before the subcommand's name."""
    default = argparse.SUPPRESS if nested else None
    parent = argparse.ArgumentParser(add_help=False)
    # Defaults are resolved after parsing: the flag, then the environment, then the config file.
    parent.add_argument("--server", default=default,
                        help=f"arena server URL (env ARENA_SERVER, arena login; default {DEFAULT_SERVER})")
    parent.add_argument("--token", default=default, help="API token (env ARENA_TOKEN, arena login)")
    return parent


def parse_config(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs from ``--config``; the values stay text, converted to each key's kind
    by the game (``resolve_config``), here or on the server.

    Raises:
        CliError: a pair without ``=`` or with an empty key.
    """
    config: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--config expects KEY=VALUE, got {item!r}", code="bad_config")
        config[key.strip()] = value.strip()
    return config
