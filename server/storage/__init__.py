"""What the arena persists: the :class:`Storage` protocol, its records, and its two backends:
SQLite (one process, the default) and PostgreSQL (several processes on one database)."""

from __future__ import annotations

import importlib
import os
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from ._urls import is_postgres_url, sqlite_path
from .base import (
    MAX_ROW_ID,
    AgentRecord,
    EncodedStep,
    LadderMatch,
    Lease,
    MatchQueue,
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
from .quotas import ChallengeQuota
from .sqlite import SqliteStorage, open_sqlite

if TYPE_CHECKING:
    from ._pg_leader import LEADER_APPLICATION_NAME, LeaderSession, leader_application_name, open_leader_session
    from ._pg_listen import LISTEN_APPLICATION_NAME, Listener, Session, listen, open_listener
    from ._pg_notify import Notice
    from ._pg_queue import QUEUE_CHANNEL
    from ._pg_seats import ANSWERS_CHANNEL, DESK_APPLICATION_PREFIX, SEATS_CHANNEL, SeatRow, parse_seat_key
    from .migrate import CopyProgress, CopyReport, copy_arena
    from .postgres import PostgresStorage, open_postgres

# The PostgreSQL side (asyncpg: about 4 MiB of memory and 17 ms of start-up) is imported when one
# of its names is first used, so that one process on SQLite never loads it; ``__getattr__`` below.
_POSTGRES_NAMES = {
    "LEADER_APPLICATION_NAME": "._pg_leader",
    "LeaderSession": "._pg_leader",
    "leader_application_name": "._pg_leader",
    "open_leader_session": "._pg_leader",
    "LISTEN_APPLICATION_NAME": "._pg_listen",
    "Listener": "._pg_listen",
    "Session": "._pg_listen",
    "listen": "._pg_listen",
    "open_listener": "._pg_listen",
    "Notice": "._pg_notify",
    "QUEUE_CHANNEL": "._pg_queue",
    "ANSWERS_CHANNEL": "._pg_seats",
    "DESK_APPLICATION_PREFIX": "._pg_seats",
    "SEATS_CHANNEL": "._pg_seats",
    "SeatRow": "._pg_seats",
    "parse_seat_key": "._pg_seats",
    "CopyProgress": ".migrate",
    "CopyReport": ".migrate",
    "copy_arena": ".migrate",
    "PostgresStorage": ".postgres",
    "open_postgres": ".postgres",
}

__all__ = [
    "ANSWERS_CHANNEL",
    "DESK_APPLICATION_PREFIX",
    "MAX_ROW_ID",
    "QUEUE_CHANNEL",
    "SEATS_CHANNEL",
    "AgentRecord",
    "ChallengeQuota",
    "CopyProgress",
    "CopyReport",
    "EncodedStep",
    "LEADER_APPLICATION_NAME",
    "LadderMatch",
    "LeaderSession",
    "LISTEN_APPLICATION_NAME",
    "Lease",
    "Listener",
    "MatchQueue",
    "MatchRecord",
    "MatchStatus",
    "NewSeat",
    "Notice",
    "PostgresStorage",
    "RatedMatch",
    "RatingChange",
    "RatingRecord",
    "SeatResult",
    "SeatRow",
    "Session",
    "SqliteStorage",
    "Storage",
    "UserRecord",
    "check_storage",
    "copy_arena",
    "is_postgres_url",
    "leader_application_name",
    "listen",
    "open_leader_session",
    "open_listener",
    "open_postgres",
    "open_sqlite",
    "open_storage",
    "parse_seat_key",
]

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
    if is_postgres_url(url):
        from .postgres import open_postgres

        return open_postgres(os.fspath(url))
    return open_sqlite(sqlite_path(url))


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


def __getattr__(name: str) -> Any:
    """A name of the PostgreSQL side, imported on first use (see ``_POSTGRES_NAMES``)."""
    module = _POSTGRES_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later uses find it without this call
    return value
