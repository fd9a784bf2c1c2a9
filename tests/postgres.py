"""A private PostgreSQL server for the tests, and a fresh database per test.

Theory of operation
-------------------
The tests never use a system service: :meth:`PostgresServer.start` runs Debian's ``initdb``
into a temporary folder of its own, writes the server's settings there (a free port on
127.0.0.1, the unix socket in the same folder, no fsync: a test needs no crash safety) and
starts it with ``pg_ctl start -w``; :meth:`PostgresServer.stop` stops it with ``pg_ctl stop -m
fast`` and removes the folder. PostgreSQL refuses to run as root, so when the tests do, the
folder is handed to the ``postgres`` user and the binaries run as that user (``runuser``).

Clients log in over TCP as ``arena`` with a password (SCRAM), as a deployment would; the
fixtures' own housekeeping goes through the unix socket, trusted. Each test gets a database of
its own, copied from a template (``CREATE DATABASE ... TEMPLATE``, a file copy, much faster
than running the migrations again) whose schema ``open_postgres`` made once; it is dropped when
the test ends. A test that needs an empty database asks for ``template0``.

The housekeeping is synchronous (fixtures may serve sync tests): each piece runs its asyncpg
calls on an event loop of its own, in a worker thread, whatever loop the caller's thread has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from server.storage import check_storage

__all__ = ["PASSWORD", "USER", "PostgresServer", "find_binaries"]

USER = "arena"
PASSWORD = "arena-test-password"
TEMPLATE = "arena_template"  # the current schema, made by open_postgres
START_TIMEOUT_S = 60

T = TypeVar("T")


def find_binaries() -> Path | None:
    """The folder of PostgreSQL's server binaries: Debian's 15, else the newest Debian has, else none."""
    preferred = Path("/usr/lib/postgresql/15/bin")
    if (preferred / "initdb").exists():
        return preferred
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """``fn()`` on an event loop of its own, in a worker thread (the caller's thread may have a loop)."""
    async def main() -> T:
        return await fn()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="postgres-fixture") as pool:
        return pool.submit(asyncio.run, main()).result()


class PostgresServer:
    """One private PostgreSQL server; see the module docstring."""

    def __init__(self, binaries: Path, root: Path, port: int, run_as: pwd.struct_passwd | None) -> None:
        self.binaries = binaries
        self.root = root  # everything of this server: data, socket, log
        self.port = port
        self._run_as = run_as  # the user the binaries run as, when the tests run as root
        self._names = itertools.count(1)
        self._has_template = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @classmethod
    def start(cls, binaries: Path) -> PostgresServer:
        """initdb into a new temporary folder and start a server there.

        Raises:
            RuntimeError: the server did not start (its log is in the message).
        """
        try:
            run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        except KeyError:
            raise RuntimeError("PostgreSQL refuses to run as root, and there is no postgres user to run it as "
                               "(Debian's postgresql-15 package makes one)") from None
        root = Path(tempfile.mkdtemp(prefix="arena-pg-"))
        server = cls(binaries, root, _free_port(), run_as)
        try:
            if run_as is not None:
                os.chown(root, run_as.pw_uid, run_as.pw_gid)
            server._write_file(root / "pwfile", PASSWORD + "\n")
            server._run("initdb", "-D", str(server.data), "-U", USER, f"--pwfile={root / 'pwfile'}", "-E", "UTF8",
                        "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
            with open(server.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(
                    "\n# tests/postgres.py\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{root}'\n"
                    "max_connections = 300\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            for attempt in range(3):  # the free port may be taken meanwhile: try another
                try:
                    server._run("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D", str(server.data),
                                "-l", str(server.log), "-o", f"-p {server.port}")
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    server.port = _free_port()
        except BaseException:
            server._remove()
            raise
        return server

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
                except RuntimeError:
                    self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        finally:
            self._remove()

    def url(self, database: str, *, password: str = PASSWORD, port: int | None = None) -> str:
        """A client's URL of ``database``: TCP on 127.0.0.1, user ``arena`` with ``password``."""
        return f"postgresql://{USER}:{password}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, *, template: str = TEMPLATE) -> str:
        """A new database, a copy of ``template`` (by default the current schema, no rows); its name."""
        name = f"test_{next(self._names)}"

        async def create() -> None:
            conn = await self._admin()
            try:
                if template == TEMPLATE and not self._has_template:
                    await conn.execute(f"CREATE DATABASE {TEMPLATE}")
                    await check_storage(self.url(TEMPLATE))  # its pool is closed when this returns
                    self._has_template = True
                await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
            finally:
                await conn.close()

        _run_async(create)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still on it (a test that failed half-way)."""
        async def drop() -> None:
            conn = await self._admin()
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

        _run_async(drop)

    @staticmethod
    def fetch(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
        """Run ``sql`` on the database at ``url``; its rows (tests that build or break a schema by
        hand, or look at what was stored)."""
        async def run() -> list[tuple[object, ...]]:
            conn = await asyncpg.connect(url)
            try:
                return [tuple(row) for row in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return _run_async(run)

    @staticmethod
    def execute(url: str, script: str) -> None:
        """Run ``script`` (statements separated by semicolons) on the database at ``url``."""
        async def run() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(script)
            finally:
                await conn.close()

        _run_async(run)

    async def _admin(self, database: str = "postgres") -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(host=str(self.root), port=self.port, user=USER, database=database)

    def _run(self, binary: str, *args: str) -> None:
        command = [str(self.binaries / binary), *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{binary} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def _write_file(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
