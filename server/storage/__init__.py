"""What the arena persists: the :class:`Storage` protocol, its records, and its two backends:
SQLite (one process, the default) and PostgreSQL (several processes on one database)."""

from __future__ import annotations

import os
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
from .postgres import PostgresStorage, open_postgres
from .sqlite import SqliteStorage, open_sqlite

__all__ = [
    "MAX_ROW_ID",
    "AgentRecord",
    "EncodedStep",
    "MatchRecord",
    "MatchStatus",
    "NewSeat",
    "PostgresStorage",
    "RatedMatch",
    "RatingChange",
    "RatingRecord",
    "SeatResult",
    "SqliteStorage",
    "Storage",
    "UserRecord",
    "check_storage",
    "is_postgres_url",
    "open_postgres",
    "open_sqlite",
    "open_storage",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://...``) rather than an SQLite one."""
    scheme, sep, _ = os.fspath(db).partition("://")
    return bool(sep) and scheme.lower() in _POSTGRES_SCHEMES


def open_storage(url: str | os.PathLike[str]) -> AbstractAsyncContextManager[Storage]:
    """Open the storage named by ``url``: a file path, ``sqlite:///path`` or ``sqlite://`` (in
    memory) for SQLite; ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (or ``postgres://``) for
    PostgreSQL.

    ``sqlite:///arena.db`` is relative to the working directory, ``sqlite:////var/arena.db``
    absolute, ``sqlite:///:memory:`` in memory. Use it as ``async with open_storage(url) as storage``;
    nothing is opened before the ``async with``.

    Raises:
        ConfigError: another scheme, or a URL without a path.
    """
    url = os.fspath(url)
    if "://" not in url:
        if not url:
            raise ConfigError("storage URL is empty; give a file path, sqlite:///path or postgresql://...")
        return open_sqlite(url)
    if is_postgres_url(url):
        return open_postgres(url)
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        raise ConfigError(
            f"unsupported storage URL scheme {scheme!r}; supported: a file path, "
            "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// (in memory), "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    if rest == "":
        return open_sqlite(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"bad SQLite URL {url!r}; expected sqlite:///path (three slashes)")
    return open_sqlite(rest[1:])


async def check_storage(url: str | os.PathLike[str]) -> None:
    """Open the storage named by ``url`` once and close it: connect, create or migrate its
    schema, so that a command can refuse to start with one clear line.

    Raises:
        ConfigError: a URL ``open_storage`` does not take.
        StorageError: the database cannot be opened or reached, refuses the login, or has a
            schema newer than this code.
    """
    async with open_storage(url):
        pass
