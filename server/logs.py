"""The log output of ``arena serve``: text lines (the default), or one JSON object per line
(``--log-format json``) for a log collector.

A JSON line has ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and ``message``;
``match_id`` and ``agent_id`` when the record is about one; ``exception`` with the traceback of
a logged exception. uvicorn's logs take the same way: its access lines add ``client``,
``method``, ``path`` and ``status``.

A record is about a match when the call says so (``extra={"match_id": 12}``), or when its
message follows the project's convention (``match_id=12``, ``match 12``) or names a match's path
(``/api/matches/12/replay``, ``/ws/matches/12``); the same for agents (``agent_id=3``, ``agent
3``, ``/api/agents/3``). The first one the message names is taken.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure_logging", "uvicorn_log_config"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_MATCH_ID = re.compile(r"\bmatch(?:_id=| |es/)(\d+)\b")
_AGENT_ID = re.compile(r"\bagent(?:_id=| |s/)(\d+)\b")
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")  # uvicorn's access line, in order


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, pattern in (("match_id", _MATCH_ID), ("agent_id", _AGENT_ID)):
            value = getattr(record, key, None)
            if value is None and (found := pattern.search(message)) is not None:
                value = int(found.group(1))
            if value is not None:
                entry[key] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            access = dict(zip(_ACCESS_FIELDS, record.args, strict=True))
            del access["http_version"]
            entry.update(access)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a value of another type passed in ``extra`` is still one line, not a lost record
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log record of the process to stderr at ``level`` and up, as text lines or JSON.

    Raises:
        ValueError: an unknown format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    if log_format == "text":
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """What to pass uvicorn as ``log_config``: its own handlers and formats for text; for JSON
    none, so that its loggers hand their records to the root's JSON handler."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
