"""Fixtures every test directory shares: the seat launchers that tests open seats with, and the
databases tests store into.

Seats are opened through a launcher passed down explicitly, as the server's match manager gets
the app's (``server/sandbox/launch.py``). The session owns one in the default mode, ``auto``: its
fork server starts with the first test that asks for it and stops when the session ends, and
serves every test that opens default seats. Its processes are children of this one while it
runs (``tests/matches/test_runner.py`` accounts for them).

Databases: ``db_url`` is what a test passes to ``open_storage`` (or as ``Settings.db``), on the
``backend`` the test runs on. That is SQLite (a file in the test's ``tmp_path``) unless the test
is marked ``both_backends``: then it runs twice, once on SQLite and once on PostgreSQL, with a
fresh database of the session's private server (``tests/postgres.py``), which starts with the
first test that needs it and stops when the session ends. A test marked ``sqlite_only`` (one of
SQLite itself, in a module marked ``both_backends``) runs on SQLite alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.sandbox import SeatLauncher
from tests.postgres import PostgresServer, find_binaries

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test marked ``both_backends`` (and not ``sqlite_only``) on each backend."""
    marked = metafunc.definition.get_closest_marker("both_backends") is not None
    if "backend" in metafunc.fixturenames and marked and metafunc.definition.get_closest_marker("sqlite_only") is None:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend this test runs on: "sqlite", or "postgres" for one marked ``both_backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL server, started on first use and stopped at the end."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server binaries are not installed (scripts/test installs postgresql-15 as root)")
    server = PostgresServer.start(binaries)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the private server, with the current schema; dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The database of this test on its backend: an SQLite file path, or a PostgreSQL URL."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "arena.db")


@pytest.fixture
def bare_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database without any table, for a test that builds an older schema by hand: an SQLite
    path with no file yet, or an empty PostgreSQL database (dropped after the test)."""
    if backend == "sqlite":
        yield str(tmp_path / "arena.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template="template0")
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(scope="session")
def launcher() -> Iterator[SeatLauncher]:
    """The session's seat launcher, in the default mode ("auto"), and its fork server if it runs here."""
    seats = SeatLauncher.launch()
    try:
        yield seats
    finally:
        seats.close()


@pytest.fixture
def fork_launcher(launcher: SeatLauncher) -> SeatLauncher:
    """Seats that must be forked ("fork" mode): the session's fork server, or a refusal without it."""
    return SeatLauncher("fork", launcher.server, reason=launcher.reason)
