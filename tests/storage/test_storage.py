"""The storage on both backends, SQLite files and PostgreSQL databases: records, paging, the
batching step writer. Tests of SQLite itself are marked ``sqlite_only``; those of PostgreSQL
alone are in ``test_postgres.py``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from protocol.errors import (
    AgentNotFound,
    ConfigError,
    MatchNotFound,
    ProtocolError,
    StorageError,
    UserNotFound,
)
from protocol.messages import SeatTiming, StepRecord
from server.storage import (
    MatchRecord,
    MatchStatus,
    NewSeat,
    SeatResult,
    Storage,
    open_sqlite,
    open_storage,
)
from server.storage.sqlite import SCHEMA_VERSION, SqliteStorage


def make_step(i: int, seats: int = 2) -> StepRecord:
    timing: list[SeatTiming | None] = [SeatTiming(wall_s=0.01 * i, cpu_s=None, bank_s=1.5)]
    timing += [None] * (seats - 1)
    return StepRecord(
        step=i,
        actions=[i, None] + [{"cell": i}] * (seats - 2),
        statuses=["ACTIVE"] * seats,
        rewards=[0.5 * i, -0.5 * i][:seats] + [0.0] * max(0, seats - 2),
        state={"board": [i % 3] * 9, "turn": i, "nested": {"k": [1, 2, 3]}},
        timing=timing,
    )


pytestmark = pytest.mark.both_backends


async def two_agent_match(storage: Storage, suffix: str = "") -> tuple[MatchRecord, int, int]:
    user = await storage.create_user(f"alice{suffix}", f"hash-alice{suffix}")
    a = await storage.save_agent(user.id, "a", "tictactoe", "def agent(obs): return 0")
    b = await storage.save_agent(user.id, "b", "tictactoe", None)
    match = await storage.create_match(
        "tictactoe", 1, {"size": 3}, 42, [NewSeat(a.id, a.version), NewSeat(b.id, b.version)],
        {"ranked": True},
    )
    return match, a.id, b.id


def done_seats(match: MatchRecord) -> list[SeatResult]:
    return [
        SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", float(1 - 2 * i), None)
        for i, s in enumerate(match.seats)
    ]


async def test_users_and_token_lookup(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        alice = await storage.create_user("alice", "h1")
        bob = await storage.create_user("bob", "h2")
        assert alice.id != bob.id and alice.name == "alice" and alice.created_at <= time.time()
        assert await storage.user_by_token_hash("h2") == bob
        assert await storage.get_user_by_name("alice") == alice
        assert await storage.user_by_token_hash("nope") is None
        assert await storage.get_user_by_name("carol") is None
        with pytest.raises(StorageError, match="'alice' is taken"):
            await storage.create_user("alice", "h3")
        with pytest.raises(StorageError):
            await storage.create_user("carol", "h1")  # token hashes are unique too
        assert await storage.get_user_by_name("carol") is None


async def test_agent_versions_and_code(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        v1 = await storage.save_agent(user.id, "bot", "tictactoe", "code 1")
        v2 = await storage.save_agent(user.id, "bot", "tictactoe", "code 2")
        assert (v1.id, v1.version, v1.code, v1.remote, v1.owner) == (v2.id, 1, "code 1", False, "alice")
        assert (v2.version, v2.code, v2.created_at) == (2, "code 2", v1.created_at)
        assert v2.updated_at >= v1.updated_at
        assert await storage.get_agent(v1.id) == v2
        assert await storage.get_agent_code(v1.id, 1) == "code 1"
        assert await storage.get_agent_code(v1.id, 2) == "code 2"

        remote = await storage.save_agent(user.id, "remote", "tictactoe", None)
        assert remote.remote and remote.code is None and remote.id != v1.id
        assert await storage.get_agent_code(remote.id, 1) is None

        with pytest.raises(ConfigError, match="agent 'bot' already exists for game 'tictactoe'"):
            await storage.save_agent(user.id, "bot", "connect4", "code")
        assert (await storage.get_agent(v1.id)).version == 2  # the refused save left no trace
        with pytest.raises(UserNotFound):
            await storage.save_agent(999, "bot", "tictactoe", "code")
        with pytest.raises(AgentNotFound):
            await storage.get_agent(999)
        with pytest.raises(AgentNotFound):
            await storage.get_agent_code(999, 1)
        with pytest.raises(AgentNotFound):
            await storage.get_agent_code(v1.id, 3)


async def test_list_agents_pages_without_gaps_or_duplicates(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        users = [await storage.create_user(f"u{i}", f"h{i}") for i in range(2)]
        created = [
            await storage.save_agent(users[i % 2].id, f"bot{i}", "tictactoe" if i % 3 else "connect4", "c")
            for i in range(120)
        ]
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            page, cursor = await storage.list_agents(cursor=cursor, limit=25)
            seen += [a.id for a in page]
            pages += 1
            if cursor is None:
                break
        assert seen == [a.id for a in created] and pages == 5

        by_game: list[int] = []
        cursor = None
        while True:
            page, cursor = await storage.list_agents(
                game="connect4", user_id=users[0].id, cursor=cursor, limit=7
            )
            by_game += [a.id for a in page]
            if cursor is None:
                break
        expected = [a.id for i, a in enumerate(created) if i % 3 == 0 and i % 2 == 0]
        assert by_game == expected

        page, cursor = await storage.list_agents(limit=120)
        assert len(page) == 120 and cursor is None  # an exact last page has no next cursor
        with pytest.raises(ProtocolError):
            await storage.list_agents(cursor="not-a-cursor")


async def test_list_matches_newest_first_with_filters(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a = await storage.save_agent(user.id, "a", "tictactoe", "x")
        b = await storage.save_agent(user.id, "b", "tictactoe", "x")
        c = await storage.save_agent(user.id, "c", "tictactoe", "x")
        ids = []
        for i in range(120):
            other = b if i % 2 else c
            seats = [NewSeat(a.id, 1), NewSeat(other.id, 1)]
            match = await storage.create_match("tictactoe", 1, {}, i, seats)
            if i % 4 == 0:
                await storage.set_match_live(match.id, time.time())
            ids.append(match.id)

        seen: list[int] = []
        cursor: str | None = None
        while True:
            page, cursor = await storage.list_matches(cursor=cursor, limit=16)
            seen += [m.id for m in page]
            if cursor is None:
                break
        assert seen == ids[::-1]

        live, cursor = await storage.list_matches(status=MatchStatus.LIVE, limit=500)
        assert [m.id for m in live] == ids[::4][::-1] and cursor is None
        assert all(m.status is MatchStatus.LIVE and m.started_at is not None for m in live)

        with_b: list[int] = []
        cursor = None
        while True:
            page, cursor = await storage.list_matches(agent_id=b.id, cursor=cursor, limit=11)
            assert all(b.id in [s.agent_id for s in m.seats] for m in page)
            with_b += [m.id for m in page]
            if cursor is None:
                break
        assert with_b == ids[1::2][::-1]

        pending_c, _ = await storage.list_matches(status=MatchStatus.PENDING, agent_id=c.id, limit=500)
        assert [m.id for m in pending_c] == [m for i, m in enumerate(ids) if i % 2 == 0 and i % 4][::-1]


async def test_match_lifecycle(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, a_id, b_id = await two_agent_match(storage)
        assert match.status is MatchStatus.PENDING and match.steps == 0 and match.started_at is None
        assert match.config == {"size": 3} and match.tags == {"ranked": True} and match.seed == 42
        assert [(s.agent_id, s.agent_name, s.owner, s.version, s.status) for s in match.seats] == [
            (a_id, "a", "alice", 1, None), (b_id, "b", "alice", 1, None),
        ]

        started = time.time()
        await storage.set_match_live(match.id, started)
        assert (await storage.get_match(match.id)).status is MatchStatus.LIVE

        steps = [make_step(i) for i in range(37)]
        for chunk in (steps[:1], steps[1:10], steps[10:11], steps[11:]):
            await storage.append_steps(match.id, chunk)
        assert await storage.get_steps(match.id) == steps  # steps still queued are included
        assert (await storage.get_match(match.id)).steps == 37

        finished = await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 123.5)
        assert finished.status is MatchStatus.FINISHED and finished.finished_at == 123.5
        assert finished.started_at == started and finished.steps == 37 and finished.reason is None
        assert [(s.status, s.reward) for s in finished.seats] == [("DONE", 1.0), ("DONE", -1.0)]
        assert await storage.get_match(match.id) == finished

        stored = await storage.get_steps(match.id)
        assert stored == steps
        assert isinstance(stored[5].timing[0], SeatTiming) and stored[5].timing[1] is None

        with pytest.raises(StorageError, match="already ended"):
            await storage.finish_match(match.id, MatchStatus.ABORTED, "again", done_seats(match), 1.0)
        with pytest.raises(StorageError, match="cannot go live"):
            await storage.set_match_live(match.id, 1.0)


async def test_finished_steps_are_visible_to_a_second_connection(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.set_match_live(match.id, time.time())
        steps = [make_step(i) for i in range(250)]
        for i in range(0, 250, 3):
            await storage.append_steps(match.id, steps[i:i + 3])
        await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), time.time())
        async with open_storage(db_url) as other:  # while the first is still open
            assert await other.get_steps(match.id) == steps
            assert (await other.get_match(match.id)).steps == 250


async def test_queued_steps_are_written_on_close(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(i) for i in range(10)])
    async with open_storage(db_url) as storage:
        assert len(await storage.get_steps(match.id)) == 10
        await storage.close()
        with pytest.raises(StorageError, match="closed"):
            await storage.append_steps(match.id, [make_step(11)])
        with pytest.raises(StorageError, match="closed"):
            await storage.get_match(match.id)


async def test_abort_unfinished(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, a_id, b_id = await two_agent_match(storage)
        seats = [NewSeat(a_id, 1), NewSeat(b_id, 1)]
        live = await storage.create_match("tictactoe", 1, {}, 1, seats)
        done = await storage.create_match("tictactoe", 1, {}, 2, seats)
        await storage.set_match_live(live.id, time.time())
        await storage.append_steps(live.id, [make_step(0), make_step(1)])
        await storage.finish_match(done.id, MatchStatus.FINISHED, None, done_seats(done), time.time())

        assert await storage.abort_unfinished("server restarted") == 2
        for match_id in (match.id, live.id):
            record = await storage.get_match(match_id)
            assert record.status is MatchStatus.ABORTED and record.reason == "server restarted"
            assert record.finished_at is not None
        assert (await storage.get_match(live.id)).steps == 2
        assert (await storage.get_match(done.id)).status is MatchStatus.FINISHED
        assert await storage.abort_unfinished("again") == 0


@pytest.mark.sqlite_only
async def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "arena.db"
    async with open_sqlite(path) as storage:
        match, _, _ = await two_agent_match(storage)
    for _ in range(2):
        async with open_sqlite(path) as storage:
            assert (await storage.get_match(match.id)).config == {"size": 3}
            assert (await storage.get_user_by_name("alice")) is not None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


@pytest.mark.sqlite_only
async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "arena.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StorageError, match="newer"):
        async with open_sqlite(path):
            pass


async def test_not_found(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, a_id, _ = await two_agent_match(storage)
        with pytest.raises(MatchNotFound):
            await storage.get_match(999)
        with pytest.raises(MatchNotFound):
            await storage.get_steps(999)
        with pytest.raises(MatchNotFound):
            await storage.set_match_live(999, 1.0)
        with pytest.raises(MatchNotFound):
            await storage.finish_match(999, MatchStatus.ABORTED, "x", [], 1.0)
        with pytest.raises(MatchNotFound):
            await storage.save_log(999, 0, "text")
        with pytest.raises(AgentNotFound):
            await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a_id, 1), NewSeat(999, 1)])
        with pytest.raises(AgentNotFound):
            await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a_id, 7)])
        page, _ = await storage.list_matches()
        assert [m.id for m in page] == [match.id]  # the refused creations left nothing behind


async def test_concurrent_matches_append_in_order(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        agent = await storage.save_agent(user.id, "bot", "tictactoe", "x")
        matches = [
            await storage.create_match("tictactoe", 1, {}, i, [NewSeat(agent.id, 1), NewSeat(agent.id, 1)])
            for i in range(50)
        ]
        steps = [make_step(i) for i in range(200)]
        finished: dict[int, MatchRecord] = {}

        async def play(match: MatchRecord) -> None:
            await storage.set_match_live(match.id, time.time())
            for i in range(0, 200, 4):
                await storage.append_steps(match.id, steps[i:i + 4])
                await anyio.lowlevel.checkpoint()
            finished[match.id] = await storage.finish_match(
                match.id, MatchStatus.FINISHED, None, done_seats(match), time.time()
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for match in matches:
                    tg.start_soon(play, match)
        assert all(record.steps == 200 for record in finished.values()) and len(finished) == 50
        for match in matches:
            assert await storage.get_steps(match.id) == steps


async def test_seat_logs(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        assert await storage.get_log(match.id, 0) is None
        await storage.save_log(match.id, 0, "hello\n")
        await storage.save_log(match.id, 1, "Traceback ...\n")
        await storage.save_log(match.id, 0, "hello again\n")
        assert await storage.get_log(match.id, 0) == "hello again\n"
        assert await storage.get_log(match.id, 1) == "Traceback ...\n"
        with pytest.raises(StorageError, match="no seat 5"):
            await storage.save_log(match.id, 5, "x")


async def test_write_error_surfaces_at_flush(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(0)])
        await storage.append_steps(9999, [make_step(0), make_step(1)])  # no such match: a foreign key fails
        with pytest.raises(StorageError, match="match 9999"):
            await storage.flush()
        await storage.flush()  # reported once
        assert len(await storage.get_steps(match.id)) == 1  # the good match's row in that batch survived


async def test_write_error_surfaces_at_finish_and_spares_other_matches(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        bad, a_id, b_id = await two_agent_match(storage)
        good = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a_id, 1), NewSeat(b_id, 1)])
        await storage.append_steps(bad.id, [make_step(0), make_step(1)])
        await storage.flush()
        await storage.append_steps(good.id, [make_step(0), make_step(1)])
        await storage.append_steps(bad.id, [make_step(1), make_step(2)])  # step 1 again: append-only refuses
        with pytest.raises(StorageError, match=f"2 step\\(s\\) \\(1..2\\) of match {bad.id}"):
            await storage.finish_match(bad.id, MatchStatus.FINISHED, None, done_seats(bad), time.time())
        assert (await storage.get_match(bad.id)).status is MatchStatus.PENDING  # the end was not recorded
        aborted = await storage.finish_match(bad.id, MatchStatus.ABORTED, "storage", bad.seats, time.time())
        assert aborted.status is MatchStatus.ABORTED and aborted.steps == 2
        record = await storage.finish_match(
            good.id, MatchStatus.FINISHED, None, done_seats(good), time.time()
        )
        assert record.steps == 2
        await storage.flush()  # finish_match already reported it


async def test_unreported_write_error_raises_at_close(db_url: str) -> None:
    with pytest.raises(StorageError, match="steps lost at close"):
        async with open_storage(db_url) as storage:
            await storage.append_steps(4242, [make_step(0)])


@pytest.mark.sqlite_only
async def test_open_storage_urls(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a.db"), f"sqlite:///{tmp_path / 'b.db'}", "sqlite://", "sqlite:///:memory:"):
        async with open_storage(url) as storage:
            match, _, _ = await two_agent_match(storage)
            await storage.append_steps(match.id, [make_step(0), make_step(1)])
            assert len(await storage.get_steps(match.id)) == 2
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    for bad in ("mysql://db/arena", "sqlite:///", ""):
        with pytest.raises(ConfigError):
            open_storage(bad)
    open_storage("postgresql://nobody@localhost/arena")  # a PostgreSQL URL: nothing connects before `async with`


@pytest.mark.sqlite_only
async def test_in_memory_database_shares_one_connection() -> None:
    async with open_sqlite(":memory:") as storage:
        assert isinstance(storage, SqliteStorage)
        match, _, _ = await two_agent_match(storage)
        await storage.append_steps(match.id, [make_step(i) for i in range(600)])
        finished = await storage.finish_match(match.id, MatchStatus.FINISHED, None, done_seats(match), 1.0)
        assert finished.steps == 600
        assert len(await storage.get_steps(match.id)) == 600


async def test_cancelled_owner_still_writes_queued_steps(db_url: str) -> None:
    with anyio.CancelScope() as scope:
        async with open_storage(db_url) as storage:
            match, _, _ = await two_agent_match(storage)
            await storage.append_steps(match.id, [make_step(i) for i in range(10)])
            scope.cancel()
            await anyio.sleep(5)
    assert scope.cancelled_caught
    async with open_storage(db_url) as storage:
        assert len(await storage.get_steps(match.id)) == 10


async def test_errors_in_the_body_come_out_unwrapped(db_url: str) -> None:
    with pytest.raises(MatchNotFound):
        async with open_storage(db_url) as storage:
            await storage.get_match(1)


async def test_standings(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a, b, c, idle = [
            await storage.save_agent(user.id, n, "tictactoe", "x") for n in ("a", "b", "c", "idle")
        ]
        await storage.save_agent(user.id, "other", "connect4", "x")

        async def play(first: int, second: int, rewards: tuple[float, float], statuses: tuple[str, str],
                       status: MatchStatus = MatchStatus.FINISHED) -> None:
            match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(first, 1), NewSeat(second, 1)])
            seats = [
                SeatResult(s.agent_id, s.agent_name, s.owner, s.version, statuses[i], rewards[i], None)
                for i, s in enumerate(match.seats)
            ]
            await storage.finish_match(match.id, status, None, seats, time.time())

        await play(a.id, b.id, (1, -1), ("DONE", "DONE"))
        await play(a.id, c.id, (0, 0), ("DONE", "DONE"))
        await play(c.id, b.id, (1, -1), ("DONE", "TIMEOUT"))
        await play(b.id, a.id, (1, -1), ("DONE", "DONE"), MatchStatus.ABORTED)  # not counted
        rows = await storage.standings("tictactoe")
        summary = [(r["name"], r["matches"], r["wins"], r["draws"], r["losses"], r["faults"], r["points"])
                   for r in rows]
        assert summary == [
            ("a", 2, 1, 1, 0, 0, 1.5),
            ("c", 2, 1, 1, 0, 0, 1.5),
            ("b", 2, 0, 0, 2, 1, 0.0),
            ("idle", 0, 0, 0, 0, 0, 0.0),
        ]
        assert rows[0]["agent_id"] == a.id and rows[0]["owner"] == "alice" and idle.id == rows[3]["agent_id"]
        assert await storage.standings("chess") == []
