"""What only the PostgreSQL storage has to show: several processes on one database (rating exactly
once, each rating from the one before it, an end recorded once, migrating once), 64-bit ids, a
newer schema refused, and bad configuration (an unreachable server, a wrong password) failing
fast on one line, also from ``arena serve``. Each storage opened here stands for a process of
its own: it has its own pool of connections and its own step writer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from protocol.errors import StorageError
from server.storage import (
    MatchRecord,
    MatchStatus,
    NewSeat,
    RatedMatch,
    SeatResult,
    Storage,
    open_postgres,
    open_storage,
)
from server.storage._schema import SCHEMA_VERSION
from tests.postgres import PostgresServer
from tests.storage.raw import query
from tests.storage.test_storage import make_step

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


async def ladder(storage: Storage, n_agents: int) -> list[int]:
    user = await storage.create_user("alice", "h")
    return [(await storage.save_agent(user.id, f"bot{i}", "tictactoe", "x")).id for i in range(n_agents)]


def results(match: MatchRecord, rewards: list[float]) -> list[SeatResult]:
    return [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
            for s, r in zip(match.seats, rewards, strict=True)]


async def test_processes_finishing_matches_of_the_same_agents_at_once_rate_each_once(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as first, open_postgres(postgres_url) as second:
        agents = await ladder(first, 4)
        pairs = [(agents[i % 4], agents[(i + 1 + i // 4 % 3) % 4]) for i in range(48)]  # distinct agents
        matches = [await first.create_match("tictactoe", 1, {}, i, [NewSeat(a, 1), NewSeat(b, 1)], rated=True)
                   for i, (a, b) in enumerate(pairs)]
        # A few finished by an older program, unrated: the backfill rates them meanwhile.
        left = matches[::8]
        for match in left:
            await first.finish_match(match.id, MatchStatus.FINISHED, None, results(match, [1.0, -1.0]), time.time())
        query(postgres_url, "UPDATE matches SET rating_done = false WHERE id = ANY($1::bigint[])", [m.id for m in left])
        query(postgres_url, "DELETE FROM rating_history")
        query(postgres_url, "DELETE FROM ratings")
        rated: list[RatedMatch] = []

        async def finish(storage: Storage, match: MatchRecord) -> None:
            record = await storage.finish_match(match.id, MatchStatus.FINISHED, None, results(match, [1.0, -1.0]),
                                                time.time())
            assert len(record.rating_changes) == 2
            rated.append(RatedMatch(record.id, record.game, list(record.rating_changes)))

        async def backfill(storage: Storage) -> None:  # as the leader's rater does, small passes
            for _ in range(50):
                rated.extend(await storage.rate_finished(limit=2))
                await anyio.lowlevel.checkpoint()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:  # every end at once, from two processes, and two raters
                for i, match in enumerate(m for m in matches if m not in left):
                    tg.start_soon(finish, first if i % 2 else second, match)
                tg.start_soon(backfill, first)
                tg.start_soon(backfill, second)
            rated += await first.rate_finished(limit=100)

        assert sorted(m.match_id for m in rated) == sorted(m.id for m in matches)  # each once, none left
        assert await second.rate_finished() == []
        # No rating lost another's update: each agent's changes chain, each one's before the last
        # one's after, and its history holds exactly them, in that order.
        stored = await second.get_ratings(agents)
        for agent in agents:
            chain = sorted((c for m in rated for c in m.changes if c.agent_id == agent), key=lambda c: c.after.matches)
            assert [c.after.matches for c in chain] == list(range(1, len(chain) + 1))
            assert all(b.before == a.after for a, b in zip(chain, chain[1:], strict=False))
            assert stored[agent] == chain[-1].after
            rows = query(postgres_url, "SELECT match_id, rating_before, rating, matches FROM rating_history"
                                       " WHERE agent_id = $1 ORDER BY matches", agent)
            assert rows == [(c.after.last_match_id, c.before.rating, c.after.rating, c.after.matches) for c in chain]
        assert sum(stored[a].matches for a in agents) == 2 * len(matches)  # the rated seats
        [(unrated,)] = query(postgres_url, "SELECT count(*) FROM matches WHERE NOT rating_done")
        assert unrated == 0


async def test_one_match_ended_twice_at_once_is_ended_once(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as first, open_postgres(postgres_url) as second:
        agents = await ladder(first, 2)
        for seed in range(10):
            match = await first.create_match("tictactoe", 1, {}, seed, [NewSeat(a, 1) for a in agents], rated=True)
            await first.set_match_live(match.id, time.time())
            await first.append_steps(match.id, [make_step(0), make_step(1)])
            await first.flush()  # the abort comes from another process, which cannot wait for this one's queue
            outcomes: list[MatchRecord | StorageError] = []
            async with anyio.create_task_group() as tg:  # a worker's result and an abort, at once
                tg.start_soon(end, outcomes, first, match, MatchStatus.FINISHED, [1.0, -1.0])
                tg.start_soon(end, outcomes, second, match, MatchStatus.ABORTED, [0.0, 0.0])
            [record] = [o for o in outcomes if isinstance(o, MatchRecord)]
            [refused] = [o for o in outcomes if isinstance(o, StorageError)]
            assert "already ended" in str(refused)
            assert await second.get_match(match.id) == record and record.steps == 2
            # Rated with the end that was stored, if it is the result; never by the refused one.
            assert len(record.rating_changes) == (2 if record.status is MatchStatus.FINISHED else 0)
        assert await second.rate_finished() == []
        finished = [m for m in (await first.list_matches(status=MatchStatus.FINISHED))[0]]
        [(rows,)] = query(postgres_url, "SELECT count(*) FROM rating_history")
        assert rows == 2 * len(finished)
        assert (await first.get_ratings([agents[0]]))[agents[0]].matches == len(finished)


async def end(outcomes: list[MatchRecord | StorageError], storage: Storage, match: MatchRecord, status: MatchStatus,
              rewards: list[float]) -> None:
    """Store the end of ``match``; what came of it goes to ``outcomes``."""
    reason = "stopped" if status is MatchStatus.ABORTED else None
    try:
        outcomes.append(await storage.finish_match(match.id, status, reason, results(match, rewards), time.time()))
    except StorageError as exc:
        outcomes.append(exc)


async def test_processes_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database(template="template0")
    url = postgres_server.url(name)
    try:
        opened: list[int] = []

        async def start() -> None:
            async with open_postgres(url) as storage:
                opened.append((await storage.create_user(f"u{len(opened)}-{id(storage)}", str(id(storage)))).id)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(start)
        assert len(opened) == 4
        assert query(url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    finally:
        postgres_server.drop_database(name)


async def test_ids_are_64_bit(postgres_url: str) -> None:
    query(postgres_url, "ALTER TABLE matches ALTER COLUMN id RESTART WITH 5000000000")
    async with open_storage(postgres_url) as storage:
        agents = await ladder(storage, 2)
        match = await storage.create_match("tictactoe", 1, {"k": 1.5}, 2**63 - 1, [NewSeat(a, 1) for a in agents])
        assert match.id == 5_000_000_000 and match.seed == 2**63 - 1
        await storage.append_steps(match.id, [make_step(0)])
        assert (await storage.get_match(match.id)).steps == 1
        assert [m.id for m in (await storage.list_matches(agent_id=agents[0]))[0]] == [match.id]


async def test_a_newer_schema_is_refused_also_by_arena_serve(postgres_url: str) -> None:
    query(postgres_url, "UPDATE schema_version SET version = ?", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this server's"):
        async with open_storage(postgres_url):
            pass
    line = serve_fails(postgres_url)
    assert f"database schema version {SCHEMA_VERSION + 1} is newer" in line


async def test_a_server_killing_the_connections_costs_at_most_the_calls_on_them(postgres_url: str) -> None:
    async with open_storage(postgres_url) as storage:
        agents = await ladder(storage, 2)
        query(postgres_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await anyio.sleep(0.2)  # the pool sees its connections closed and opens new ones
        with anyio.fail_after(10):
            while True:
                try:
                    await storage.ping()
                    break
                except StorageError:
                    await anyio.sleep(0.1)
        match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a, 1) for a in agents])
        await storage.append_steps(match.id, [make_step(0)])
        assert (await storage.get_match(match.id)).steps == 1


async def test_an_unreachable_server_fails_fast_on_one_line(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("arena", password="s3cret", port=closed_port())
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        async with open_storage(url):
            pass
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://arena@127.0.0.1:")
    assert "refused" in message and "s3cret" not in message and "\n" not in message
    line = serve_fails(url)
    assert "cannot connect to PostgreSQL" in line and "s3cret" not in line


async def test_a_wrong_password_fails_on_one_line(postgres_server: PostgresServer, postgres_url: str) -> None:
    url = postgres_url.replace(":arena-test-password@", ":not-the-password@")
    with pytest.raises(StorageError, match='password authentication failed for user "arena"'):
        async with open_storage(url):
            pass
    for line in (serve_fails(url), serve_fails(url, from_env=True)):
        assert 'password authentication failed for user "arena"' in line and "not-the-password" not in line


def serve_fails(url: str, *, from_env: bool = False) -> str:
    """Run ``arena serve --db URL`` (or with ``ARENA_DB=URL``), which must exit non-zero at once;
    its one line of error."""
    db = [] if from_env else ["--db", url]
    done = subprocess.run(
        [sys.executable, "-m", "client", "serve", "--port", str(closed_port()), *db, "--no-ladder", "--no-examples",
         "--log-level", "warning"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "ARENA_DB": url} if from_env else None,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: error: "), done.stderr
    return lines[0]
