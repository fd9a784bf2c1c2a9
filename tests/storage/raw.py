"""SQL on a test's database behind the storage's back, whichever the backend: to build what an
older version stored, or to look at the rows as stored."""

from __future__ import annotations

import itertools
import re
import sqlite3

from server.storage import is_postgres_url
from tests.postgres import PostgresServer

__all__ = ["query"]


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """The rows of one statement ``sql`` (``?`` placeholders, numbered ``$n`` on PostgreSQL) on
    the database at ``url``, committed."""
    if is_postgres_url(url):
        numbers = itertools.count(1)
        return PostgresServer.fetch(url, re.sub(r"\?", lambda _: f"${next(numbers)}", sql), *args)
    db = sqlite3.connect(url)
    try:
        with db:
            return [tuple(row) for row in db.execute(sql, args).fetchall()]
    finally:
        db.close()
