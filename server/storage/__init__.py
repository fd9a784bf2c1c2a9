"""What the arena persists: the :class:`Storage` protocol, its records, and the SQLite backend."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from protocol.errors import ConfigError

from .base import (
    MAX_ROW_ID,
    AgentRecord,
    EncodedStep,
    MatchRecord,
    MatchStatus,
    NewSeat,
    RatedMatch,
    RatingChange,
    RatingRecord,
    SeatResult,
    Storage,
    UserRecord,
)
from .sqlite import SqliteStorage, open_sqlite

__all__ = [
    "MAX_ROW_ID",
    "AgentRecord",
    "EncodedStep",
    "MatchRecord",
    "MatchStatus",
    "NewSeat",
    "RatedMatch",
    "RatingChange",
    "RatingRecord",
    "SeatResult",
    "SqliteStorage",
    "Storage",
    "UserRecord",
    "open_sqlite",
    "open_storage",
]


def open_storage(url: str) -> AbstractAsyncContextManager[Storage]:
    """Open the storage named by ``url``: a file path, ``sqlite:///path`` or ``sqlite://`` (in memory).

    ``sqlite:///arena.db`` is relative to the working directory, ``sqlite:////var/arena.db``
    absolute, ``sqlite:///:memory:`` in memory. Use it as ``async with open_storage(url) as storage``.

    Raises:
        ConfigError: another scheme, or a URL without a path.
    """
    if "://" not in url:
        if not url:
            raise ConfigError("storage URL is empty; give a file path or sqlite:///path")
        return open_sqlite(url)
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        raise ConfigError(
            f"unsupported storage URL scheme {scheme!r} in {url!r}; supported: a file path, "
            "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// (in memory)"
        )
    if rest == "":
        return open_sqlite(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"bad SQLite URL {url!r}; expected sqlite:///path (three slashes)")
    return open_sqlite(rest[1:])
