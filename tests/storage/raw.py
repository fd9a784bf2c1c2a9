"""SQL on a test's database behind the storage's back, whichever the backend: to build what an
older version stored, or to look at the rows as stored."""

from __future__ import annotations

import itertools
import re
import sqlite3

from server.storage import is_postgres_url
from tests.postgres import PostgresServer

__all__ = ["dump", "query"]


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


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the arena at ``url``, each table's rows in one fixed order;
    PostgreSQL's booleans as SQLite's 0 and 1, so the two backends' dumps compare equal."""
    if is_postgres_url(url):
        sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
               "AND table_name <> 'schema_version' ORDER BY table_name")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
    rows: dict[str, list[tuple[object, ...]]] = {}
    for (table,) in query(url, sql):
        found = query(url, f"SELECT * FROM {table}")
        rows[str(table)] = sorted((tuple(int(v) if isinstance(v, bool) else v for v in row) for row in found),
                                  key=repr)
    return rows
