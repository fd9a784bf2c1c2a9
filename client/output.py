"""What a command prints: its own output on stdout, messages for the user on stderr, JSON
documents. Every line is escaped for the terminal (``client/terminal.py``)."""

from __future__ import annotations

import sys

from protocol.codec import encode_json
from protocol.messages import JSON

from .terminal import printable

__all__ = ["err", "out", "out_json"]


def out(text: str = "") -> None:
    """A line of the command's own output, on stdout. Values others chose are escaped where
    they are put into ``text`` (``client/terminal.py``); here, as a backstop, every control
    character but the line breaks is escaped too."""
    sys.stdout.write(printable(text, multiline=True) + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """A line for the user on stderr (errors, progress, findings), escaped as ``out`` does."""
    sys.stderr.write(printable(text, multiline=True) + "\n")
    sys.stderr.flush()


def out_json(value: JSON) -> None:
    """A JSON document on stdout, one line."""
    sys.stdout.buffer.write(encode_json(value) + b"\n")
    sys.stdout.buffer.flush()
