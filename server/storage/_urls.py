"""Which database a storage URL names: a PostgreSQL server, or an SQLite file and its path.

One reading of the URL for every command that takes one: ``open_storage`` opens what it
names, ``arena migrate`` copies between two of them.
"""

from __future__ import annotations

import os

from protocol.errors import ConfigError

__all__ = ["is_postgres_url", "sqlite_path"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://...``) rather than an SQLite one."""
    scheme, sep, _ = os.fspath(db).partition("://")
    return bool(sep) and scheme.lower() in _POSTGRES_SCHEMES


def sqlite_path(url: str | os.PathLike[str]) -> str:
    """The SQLite database a URL that is not PostgreSQL's names: a file path as it is,
    ``sqlite:///relative.db``, ``sqlite:////absolute.db``, or ``:memory:`` for ``sqlite://``.

    Raises:
        ConfigError: an empty URL, another scheme, or a URL without a path.
    """
    url = os.fspath(url)
    if "://" not in url:
        if not url:
            raise ConfigError("storage URL is empty; give a file path, sqlite:///path or postgresql://...")
        return url
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        raise ConfigError(
            f"unsupported storage URL scheme {scheme!r}; supported: a file path, "
            "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// (in memory), "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    if rest == "":
        return ":memory:"
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"bad SQLite URL {url!r}; expected sqlite:///path (three slashes)")
    return rest[1:]
