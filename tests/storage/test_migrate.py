"""``copy_arena`` (``arena migrate``) between real SQLite files and databases of the private
PostgreSQL server: every row both ways, ids that go on past the copied ones, a column a later
migration adds, a failed copy that leaves the destination as it was, and the refusals.
The command line, on an arena used through a real server, is in ``tests/client/test_migrate.py``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.errors import ConfigError, StorageError
from protocol.messages import StepRecord
from server.storage import (
    CopyProgress,
    EncodedStep,
    MatchStatus,
    NewSeat,
    SeatResult,
    Storage,
    copy_arena,
    is_postgres_url,
    open_storage,
)
from server.storage._pg_schema import _MIGRATIONS as PG_MIGRATIONS
from server.storage._pg_schema import _VERSION_TABLE
from server.storage._schema import _MIGRATIONS, SCHEMA_VERSION, _statements
from tests.postgres import PostgresServer
from tests.storage.raw import dump, query

pytestmark = pytest.mark.timeout(120)

def schema_version(url: str) -> int:
    if is_postgres_url(url):
        return int(str(query(url, "SELECT version FROM schema_version")[0][0]))
    return int(str(query(url, "PRAGMA user_version")[0][0]))


def step(i: int) -> StepRecord:
    return StepRecord(step=i, actions=[i % 9, None], statuses=["ACTIVE", "INACTIVE"], rewards=[0.0, 0.0],
                      state={"board": [i % 3] * 9, "note": "é ✓ \u2028 \\u0000"}, time=1_700_000_000.25 + i)


async def fill(storage: Storage) -> dict[str, int]:
    """A used arena through the storage's own calls: users, agents with several versions (and a
    remote one), finished, aborted and rated matches with steps and logs, ratings and their history."""
    alice = await storage.create_user("alice", "hash-alice", "10.0.0.1")
    bob = await storage.create_user("bob", "hash-bob")
    ann = None
    for version in range(3):
        ann = await storage.save_agent(alice.id, "ann", "tictactoe", f"def agent(o, c):\n    return {version}\n")
    ben = await storage.save_agent(bob.id, "ben", "tictactoe", "def agent(o, c):\n    return 8\n")
    remote = await storage.save_agent(bob.id, "far", "tictactoe", None)
    await storage.update_agent(remote.id, disabled=True)
    assert ann is not None and ann.version == 3
    ids: dict[str, int] = {}
    for name, status, rated in (("won", MatchStatus.FINISHED, True), ("lost", MatchStatus.FINISHED, True),
                                ("stopped", MatchStatus.ABORTED, False), ("challenge", MatchStatus.FINISHED, False)):
        match = await storage.create_match("tictactoe", 1, {"agentTimeout": 2.0}, 1 << 40,
                                           [NewSeat(ann.id, ann.version), NewSeat(ben.id, 1)],
                                           {"scheduled": True} if rated else {"started_by": "alice"}, rated=rated)
        await storage.set_match_live(match.id, 1_700_000_000.5)
        await storage.append_steps(match.id, [step(i) for i in range(7)])
        await storage.append_steps(match.id, [EncodedStep.of(step(7))])
        seats = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", float(1 - 2 * i), None)
                 for i, s in enumerate(match.seats)]
        await storage.finish_match(match.id, status, "stopped by alice" if status is MatchStatus.ABORTED else None,
                                   seats, 1_700_000_100.75 + match.id, logs=[f"{name}: seat 0\n", ""])
        ids[name] = match.id
    await storage.create_match("tictactoe", 1, {}, 5, [NewSeat(ann.id, 1), NewSeat(ann.id, 2)])  # still pending
    assert await storage.rate_finished() == []  # the two rated ones were rated with their results
    return ids


async def test_every_row_goes_to_postgres_and_back_and_ids_go_on(tmp_path: Path, postgres_url: str) -> None:
    source, back = str(tmp_path / "arena.db"), str(tmp_path / "back.db")
    async with open_storage(source) as storage:
        ids = await fill(storage)
        board = await storage.leaderboard("tictactoe")
    shown: list[CopyProgress] = []
    report = await copy_arena(source, postgres_url, batch_rows=3, progress=shown.append)  # many batches

    rows = dump(source)
    assert dump(postgres_url) == rows
    assert dict(report.tables) == {table: len(found) for table, found in rows.items()}
    assert report.rows == sum(map(len, rows.values())) and report.left_out == () and not report.is_replaced
    assert report.source_migrated_from is None and report.nul_replaced == 0
    # Parents first: a row's references are copied before it.
    order = [table for table, _ in report.tables]
    assert order.index("users") < order.index("agents") < order.index("agent_versions")
    assert order.index("matches") < order.index("match_seats") < order.index("seat_logs")
    assert order.index("match_steps") > order.index("matches") and order.index("ratings") > order.index("agents")
    # The rating history of the two rated matches, a row per seat, both ways.
    assert len(rows["rating_history"]) == 4 and order.index("rating_history") > order.index("matches")
    # Progress after every batch and at each table's end, the total counting up to every row.
    assert [p.total_copied for p in shown] == sorted(p.total_copied for p in shown)
    assert shown[-1].total_copied == shown[-1].total_rows == report.rows
    assert {p.table for p in shown if p.is_table_done} == set(rows)
    assert any(p.table == "match_steps" and not p.is_table_done and p.copied == 3 for p in shown)
    # Every step's text byte for byte.
    steps = "SELECT match_id, step, record FROM match_steps ORDER BY match_id, step"
    assert query(postgres_url, steps) == query(source, steps)

    # And back into a new file: the very rows, and the very schema, of the first.
    report = await copy_arena(postgres_url, back)
    assert "arena-test-password" not in report.source and report.destination == back
    assert dump(back) == rows
    assert schema_version(back) == SCHEMA_VERSION
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    assert query(back, schema) == query(source, schema)

    async with open_storage(postgres_url) as storage:
        match = await storage.get_match(ids["won"])
        assert match.status is MatchStatus.FINISHED and match.steps == 8
        assert await storage.get_steps(ids["won"]) == [step(i) for i in range(8)]
        assert await storage.user_by_token_hash("hash-alice") == await storage.get_user_by_name("alice")
        assert await storage.get_agent_code(1, 2) == "def agent(o, c):\n    return 1\n"
        assert await storage.get_log(ids["stopped"], 0) == "stopped: seat 0\n"
        assert await storage.leaderboard("tictactoe") == board
        # New rows get new ids, past the copied ones (two users, three agents, five matches).
        carol = await storage.create_user("carol", "hash-carol")
        assert carol.id == 3
        cat = await storage.save_agent(carol.id, "cat", "tictactoe", None)
        assert cat.id == 4
        match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(cat.id, 1), NewSeat(1, 3)])
        assert match.id == 6


async def test_a_column_a_later_migration_adds_is_copied(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        ids = await fill(storage)
    # As a later migration would add it, on both backends; the copy names no column.
    query(source, "ALTER TABLE matches ADD COLUMN note TEXT")
    query(source, "UPDATE matches SET note = 'kept ' || id")
    PostgresServer.execute(postgres_url, "ALTER TABLE matches ADD COLUMN note TEXT")
    # SQLite text may hold NUL (a bot's log can); PostgreSQL's cannot: stored as U+FFFD, counted.
    query(source, "UPDATE seat_logs SET text = 'a' || char(0) || 'b' WHERE match_id = ?", ids["won"])
    report = await copy_arena(source, postgres_url)
    assert query(postgres_url, "SELECT id, note FROM matches ORDER BY id") == \
        query(source, "SELECT id, note FROM matches ORDER BY id")
    assert query(postgres_url, "SELECT text FROM seat_logs WHERE match_id = $1 AND seat = 0", ids["won"]) == \
        [("a\ufffdb",)]
    assert report.nul_replaced == 1


async def test_what_only_the_source_has_is_named_and_left_out(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await fill(storage)
    query(source, "CREATE TABLE scratch (x INTEGER)")
    query(source, "INSERT INTO scratch VALUES (1)")
    query(source, "ALTER TABLE users ADD COLUMN nickname TEXT")
    report = await copy_arena(source, postgres_url)
    assert [note.split(",")[0] for note in report.left_out] == ["table scratch (1 rows)", "column users.nickname"]
    assert len(query(postgres_url, "SELECT * FROM users")) == 2


async def test_a_failed_copy_leaves_postgres_as_it_was(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await fill(storage)
    # The destination refuses one step, late in the copy (steps come after users, agents, matches).
    PostgresServer.execute(postgres_url, "ALTER TABLE match_steps ADD CONSTRAINT no_step_5 CHECK (step <> 5)")
    with pytest.raises(StorageError, match=r"cannot write table match_steps .*no_step_5.*nothing was copied") as err:
        await copy_arena(source, postgres_url, batch_rows=2)
    assert "\n" not in str(err.value)
    assert all(not found for found in dump(postgres_url).values())
    # Ids were not used up either: the next user is still 1.
    async with open_storage(postgres_url) as storage:
        assert (await storage.create_user("first", "hash-first")).id == 1


async def test_a_failed_copy_leaves_sqlite_as_it_was(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await fill(storage)
    await copy_arena(source, postgres_url)
    # An existing empty arena file that refuses one step: it stays empty.
    existing = str(tmp_path / "existing.db")
    async with open_storage(existing):
        pass
    query(existing, "CREATE TRIGGER no_step_5 BEFORE INSERT ON match_steps WHEN NEW.step = 5 "
                    "BEGIN SELECT RAISE(ABORT, 'no step 5'); END")
    with pytest.raises(StorageError, match="cannot write table match_steps in .*existing.db: no step 5; "
                                           "nothing was copied"):
        await copy_arena(postgres_url, existing, batch_rows=2)
    assert all(not found for found in dump(existing).values())
    # A file the copy made is removed again: here PostgreSQL holds a status SQLite's check refuses.
    PostgresServer.execute(postgres_url, "ALTER TABLE matches DROP CONSTRAINT matches_status_check; "
                                         "UPDATE matches SET status = 'odd' WHERE id = 5")
    made = tmp_path / "made.db"
    with pytest.raises(StorageError, match="cannot write table matches .*CHECK constraint failed"):
        await copy_arena(postgres_url, str(made))
    assert not made.exists() and not (tmp_path / "made.db-wal").exists()


async def test_refuses_a_destination_with_data_unless_replace(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await fill(storage)
    async with open_storage(postgres_url) as storage:
        await storage.create_user("squatter", "hash-squatter")
    with pytest.raises(StorageError, match=r"already holds data \(in users\): pass --replace") as err:
        await copy_arena(source, postgres_url)
    assert "\n" not in str(err.value)
    assert [row[1] for row in query(postgres_url, "SELECT * FROM users")] == ["squatter"]

    report = await copy_arena(source, postgres_url, replace=True)
    assert report.is_replaced
    assert dump(postgres_url) == dump(source)
    # The same the other way: an SQLite arena with data.
    other = str(tmp_path / "other.db")
    async with open_storage(other) as storage:
        await storage.create_user("squatter", "hash-squatter")
    with pytest.raises(StorageError, match="already holds data"):
        await copy_arena(postgres_url, other)
    await copy_arena(postgres_url, other, replace=True)
    assert dump(other) == dump(source)


async def test_refuses_a_newer_schema_and_migrates_an_older_source(tmp_path: Path, postgres_url: str) -> None:
    newer = str(tmp_path / "newer.db")
    async with open_storage(newer) as storage:
        await storage.create_user("alice", "hash-alice")
    query(newer, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match=f"source {newer} has schema version {SCHEMA_VERSION + 1}, newer than "
                                           f"this program's {SCHEMA_VERSION}"):
        await copy_arena(newer, postgres_url)
    assert schema_version(postgres_url) == SCHEMA_VERSION and dump(postgres_url)["users"] == []

    PostgresServer.execute(postgres_url, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    fresh = str(tmp_path / "fresh.db")
    async with open_storage(fresh) as storage:
        await storage.create_user("bob", "hash-bob")
    with pytest.raises(StorageError, match=f"destination .* has schema version {SCHEMA_VERSION + 1}, newer"):
        await copy_arena(fresh, postgres_url)
    PostgresServer.execute(postgres_url, f"UPDATE schema_version SET version = {SCHEMA_VERSION}")

    # A source at version 4, as an older arena left it: migrated in place, then copied.
    older = str(tmp_path / "older.db")
    db = sqlite3.connect(older)
    for script in _MIGRATIONS[:4]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("INSERT INTO users (id, name, token_hash, created_at) VALUES (7, 'old', 'hash-old', 1.5)")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    report = await copy_arena(older, postgres_url)
    assert report.source_migrated_from == 4 and schema_version(older) == SCHEMA_VERSION
    assert query(postgres_url, "SELECT id, name FROM users") == [(7, "old")]


@pytest.fixture
def bare_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database, without the arena's schema."""
    name = postgres_server.create_database(template="template0")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


async def test_an_older_postgres_destination_is_migrated(tmp_path: Path, bare_postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await fill(storage)
    PostgresServer.execute(bare_postgres_url, "\n".join([_VERSION_TABLE, *PG_MIGRATIONS[:4],
                                                         "UPDATE schema_version SET version = 4;"]))
    await copy_arena(source, bare_postgres_url)
    assert schema_version(bare_postgres_url) == SCHEMA_VERSION and dump(bare_postgres_url) == dump(source)


async def test_refuses_what_is_no_arena_or_the_same_database(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "arena.db")
    async with open_storage(source) as storage:
        await storage.create_user("alice", "hash-alice")
    with pytest.raises(StorageError, match="cannot read the source .*missing.db: no such file"):
        await copy_arena(str(tmp_path / "missing.db"), postgres_url)
    with pytest.raises(StorageError, match="not a file"):
        await copy_arena(str(tmp_path), postgres_url)
    (tmp_path / "empty.db").touch()
    with pytest.raises(StorageError, match="holds no arena"):
        await copy_arena(str(tmp_path / "empty.db"), postgres_url)
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    with pytest.raises(StorageError, match="file is not a database"):
        await copy_arena(str(tmp_path / "text.db"), postgres_url)
    with pytest.raises(StorageError, match="same file"):
        await copy_arena(source, f"sqlite:///{source}")
    (tmp_path / "link.db").symlink_to(source)
    with pytest.raises(StorageError, match="same file"):
        await copy_arena(str(tmp_path / "link.db"), source)
    with pytest.raises(ConfigError, match="in-memory"):
        await copy_arena(source, "sqlite://")
    with pytest.raises(ConfigError, match="unsupported storage URL scheme 'mysql'"):
        await copy_arena(source, "mysql://arena@127.0.0.1/arena")
    with pytest.raises(StorageError, match="cannot write the destination .*: it is a directory"):
        await copy_arena(source, str(tmp_path))
    assert not (tmp_path / "missing.db").exists()

    await copy_arena(source, postgres_url)
    with pytest.raises(StorageError, match="same database"):
        await copy_arena(postgres_url, postgres_url, replace=True)
    refused = postgres_url.rsplit(":", 1)[0] + ":1/nowhere"  # no server listens on port 1
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL at postgresql://arena@127.0.0.1:1/nowhere"):
        await copy_arena(refused, str(tmp_path / "out.db"))
    assert not (tmp_path / "out.db").exists()
    wrong = postgres_url.replace("arena-test-password", "wrong")
    with pytest.raises(StorageError, match="password authentication failed") as err:
        await copy_arena(source, wrong)
    assert "wrong" not in str(err.value)
