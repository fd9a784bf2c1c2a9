"""The database thread: jobs in its own thread, outcomes to the caller, cancellation and closing.

Real SQLite files; a job that must be caught half-way waits on a ``threading.Event``.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Awaitable
from pathlib import Path

import anyio
import pytest

from protocol.errors import StorageError
from server.storage import MatchStatus, open_sqlite
from server.storage._schema import connect, write_transaction
from server.storage._thread import DatabaseThread
from tests.storage.test_storage import done_seats, make_step, two_agent_match

pytestmark = pytest.mark.sqlite_only  # the threads that own SQLite's connections


async def open_thread(path: Path) -> DatabaseThread:
    thread = await DatabaseThread.start(functools.partial(connect, path), name="test-db")
    await thread.run(write_transaction, _create_table)
    return thread


def _create_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER CHECK (x >= 0))")


def _insert(db: sqlite3.Connection, x: int) -> None:
    db.execute("INSERT INTO t (x) VALUES (?)", (x,))


def _values(db: sqlite3.Connection) -> list[int]:
    return [row[0] for row in db.execute("SELECT x FROM t ORDER BY rowid")]


def stored(path: Path) -> list[int]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as db:
        values = [row[0] for row in db.execute("SELECT x FROM t ORDER BY rowid")]
    db.close()
    return values


def _blocking_insert(db: sqlite3.Connection, x: int, started: threading.Event, release: threading.Event) -> int:
    _insert(db, x)
    started.set()
    assert release.wait(10), "the test never released the job"
    return x


async def test_results_and_exceptions_reach_the_caller(tmp_path: Path) -> None:
    thread = await open_thread(tmp_path / "a.db")
    try:
        idents = {await thread.run(lambda db: threading.get_ident()) for _ in range(3)}
        assert len(idents) == 1 and threading.get_ident() not in idents  # one thread, not the loop's

        def fail(db: sqlite3.Connection, message: str) -> None:
            raise LookupError(message)

        with pytest.raises(LookupError, match="no such thing"):
            await thread.run(fail, "no such thing")
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await thread.run(lambda db: db.execute("SELECT * FROM missing"))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # a failed write is rolled back whole
            await thread.run(write_transaction, lambda db: (_insert(db, 1), _insert(db, -1)))
        await thread.run(write_transaction, _insert, 7)  # the thread serves on
        assert await thread.run(_values) == [7] and stored(tmp_path / "a.db") == [7]
        assert thread.jobs == 9  # one trip per run, the table's creation included
    finally:
        await thread.close()


async def test_the_connection_belongs_to_its_thread(tmp_path: Path) -> None:
    thread = await open_thread(tmp_path / "a.db")
    try:
        conn = await thread.run(lambda db: db)
        with pytest.raises(sqlite3.ProgrammingError, match="thread"):
            conn.execute("SELECT 1")
    finally:
        await thread.close()


async def test_a_caller_cancelled_while_its_job_runs_gets_its_outcome_and_no_transaction_stays_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    thread = await open_thread(path)
    started, release = threading.Event(), threading.Event()
    outcomes: list[int] = []
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()

                async def write() -> None:
                    with scope:
                        outcomes.append(await thread.run(write_transaction, _blocking_insert, 1, started, release))
                        await anyio.sleep(10)  # the caller's next checkpoint: the cancellation lands here
                    assert scope.cancelled_caught

                tg.start_soon(write)
                await anyio.to_thread.run_sync(started.wait)  # the job is inside its transaction
                scope.cancel()
                await anyio.sleep(0.05)
                assert outcomes == [] and stored(path) == []  # the caller still waits; nothing committed yet
                release.set()
            assert outcomes == [1] and stored(path) == [1]  # the job ran to its end and the caller got it
            assert await thread.run(lambda db: db.in_transaction) is False
            await thread.run(write_transaction, _insert, 2)  # the next call works
            assert stored(path) == [1, 2]
    finally:
        release.set()
        await thread.close()


async def test_a_caller_cancelled_before_it_queues_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    thread = await open_thread(path)
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await thread.run(write_transaction, _insert, 1)
        assert scope.cancelled_caught and stored(path) == [] and thread.jobs == 1  # the table's creation only
    finally:
        await thread.close()


async def test_close_runs_the_queued_jobs_then_closes(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    thread = await open_thread(path)
    started, release = threading.Event(), threading.Event()
    results: list[None] = []

    async def insert(x: int) -> None:
        results.append(await thread.run(write_transaction, _insert, x))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(thread.run, write_transaction, _blocking_insert, 0, started, release))
            await anyio.to_thread.run_sync(started.wait)
            for x in range(1, 6):
                tg.start_soon(insert, x)
            await anyio.wait_all_tasks_blocked()  # all five queued behind the blocked job
            tg.start_soon(thread.close)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.ClosedResourceError):  # closing: no new jobs
                await thread.run(write_transaction, _insert, 99)
            release.set()
    assert len(results) == 5 and stored(path) == [0, 1, 2, 3, 4, 5]
    assert "test-db" not in [t.name for t in threading.enumerate()]  # joined
    await thread.close()  # again: nothing to do


async def test_a_failed_open_raises_and_leaves_no_thread(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        await DatabaseThread.start(functools.partial(connect, tmp_path / "missing" / "a.db"), name="test-db-missing")
    assert "test-db-missing" not in [t.name for t in threading.enumerate()]


async def test_every_storage_call_is_one_trip(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "arena.db") as storage:
        match, a_id, _ = await two_agent_match(storage)

        async def trips(call: Awaitable[object]) -> int:
            before = storage.trips
            await call
            return storage.trips - before

        assert await trips(storage.get_agent(a_id)) == 1  # one statement
        assert await trips(storage.get_match(match.id)) == 1  # a snapshot of two
        assert await trips(storage.set_match_live(match.id, time.time())) == 1  # a write of several
        await storage.append_steps(match.id, [make_step(i) for i in range(30)])
        assert await trips(storage.flush()) == 1  # a batch of 30 steps
        logs = ["printed\n", ""]
        assert await trips(storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0,
                                                logs=logs)) == 1
        assert await trips(storage.rate_finished()) == 1


async def test_finish_match_stores_the_logs_with_the_end(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "arena.db") as storage:
        match, _, _ = await two_agent_match(storage)
        with pytest.raises(ValueError, match="1 logs for 2 seats"):
            await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0, logs=["x"])
        await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0,
                                   logs=["hello\n", ""])
        assert await storage.get_log(match.id, 0) == "hello\n"
        assert await storage.get_log(match.id, 1) is None  # an empty log is not stored
        with pytest.raises(StorageError, match="already ended"):  # refused whole: its logs are not stored
            await storage.finish_match(match.id, MatchStatus.ABORTED, None, done_seats(match), 2.0,
                                       logs=["again", "again"])
        assert await storage.get_log(match.id, 0) == "hello\n" and await storage.get_log(match.id, 1) is None
