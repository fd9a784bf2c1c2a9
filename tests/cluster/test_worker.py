"""The cluster's workers as real processes on the tests' private PostgreSQL: a front and two workers
(``arena serve --role``), started, killed and paused by PID.

The test process stands for a front that stores matches straight into the database (any front
may create a match; the front process serves what the tests read over HTTP: match documents
and replays). The processes and the matches they run are ``nodes.py``'s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from server.storage import MatchStatus, open_postgres
from tests.cluster.nodes import (
    RECOVERY_S,
    ROOT,
    check_replays,
    create_matches,
    eventually,
    free_port,
    node,
    wait_until_ended,
)
from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


async def test_two_workers_claim_distinct_matches_and_report_them(postgres_url: str, tmp_path: Path) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        one = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "one.log", max_matches=3))
        two = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "two.log", max_matches=3))
        health = await front.health()
        assert (health["role"], health["database"]) == ("front", "postgresql")
        assert "matches" not in health and "arena-test-password" not in str(health)
        assert (await one.client.get("/api/games")).status_code == 404  # a worker serves its health alone
        seen: dict[str, set[int]] = {}
        created = await create_matches(storage, 6)
        with anyio.fail_after(60):  # both workers run some of them at once
            while not all(seen.get(n) for n in ("one", "two")):
                for name, worker in (("one", one), ("two", two)):
                    doc = await worker.health()
                    assert (doc["role"], doc["database"]) == ("worker", "postgresql")
                    seen.setdefault(name, set()).update(doc["matches"])
                await anyio.sleep(0.1)
        records = await wait_until_ended(storage, [m.id for m in created], 90)
        assert seen["one"].isdisjoint(seen["two"])
        workers = {(await one.health())["worker"], (await two.health())["worker"]}
        assert len(workers) == 2
        for record in records:
            assert record.status is MatchStatus.FINISHED and record.attempt == 1, record
            document = (await front.client.get(f"/api/matches/{record.id}")).json()
            assert document["worker"] in workers
        await check_replays(front, records)


async def test_sigkill_of_a_worker_mid_match_its_matches_end_elsewhere(postgres_url: str, tmp_path: Path) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        victim = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "victim.log"))
        created = await create_matches(storage, 4)
        ids = [m.id for m in created]
        with anyio.fail_after(60):  # the only worker runs every match, each some steps in
            while True:
                records = [await storage.get_match(i) for i in ids]
                if all(r.status is MatchStatus.LIVE and r.steps >= 5 for r in records):
                    break
                await anyio.sleep(0.1)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        with anyio.fail_after(10):
            await victim.process.wait()
        survivor = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "survivor.log"))

        records = await wait_until_ended(storage, ids, RECOVERY_S)
        print(f"every match of the killed worker ended {time.monotonic() - killed_at:.1f} s after the kill")
        survivor_name = (await survivor.health())["worker"]
        for record in records:
            if record.status is MatchStatus.FINISHED:
                assert record.attempt == 2 and record.worker == survivor_name, record
            else:
                assert record.reason, record
        assert any(r.status is MatchStatus.FINISHED for r in records)
        await check_replays(front, records)

        # Each rated match changes its seats' ratings once: the rater counts it once per seat.
        async def is_rated() -> bool:
            sql = "SELECT count(*) FROM matches WHERE status = 'finished' AND NOT rating_done"
            return query(postgres_url, sql) == [(0,)]

        await eventually(is_rated, 20)
        finished = sum(r.status is MatchStatus.FINISHED for r in records)
        [(total,)] = query(postgres_url, "SELECT sum(matches) FROM ratings")
        assert total == 2 * finished


async def test_a_paused_worker_past_its_lease_cannot_write_into_the_match(postgres_url: str, tmp_path: Path) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        paused = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "paused.log"))
        [match] = await create_matches(storage, 1)

        async def is_under_way() -> bool:
            return (await storage.get_match(match.id)).steps >= 5

        await eventually(is_under_way, 60)
        paused_name = (await paused.health())["worker"]
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            other = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "other.log"))
            other_name = (await other.health())["worker"]

            async def is_taken_over() -> bool:  # the lease runs out and the other worker claims it
                return (await storage.get_match(match.id)).attempt >= 2

            await eventually(is_taken_over, RECOVERY_S)
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        [record] = await wait_until_ended(storage, [match.id], RECOVERY_S)
        assert record.status is MatchStatus.FINISHED, record
        assert (record.worker, record.attempt) == (other_name, 2)
        assert record.worker != paused_name
        await check_replays(front, [record])

        # The paused worker woke up, had its writes refused and let the match go.
        async def is_let_go() -> bool:
            return match.id not in (await paused.health())["matches"]

        await eventually(is_let_go, 20)
        assert (await storage.get_match(match.id)) == record
        # It stops cleanly: refused steps are no loss to report at its shutdown.
        paused.process.terminate()
        with anyio.fail_after(20):
            await paused.process.wait()
        log = await anyio.Path(tmp_path / "paused.log").read_text()
        assert "abandoned" in log, log[-2000:]
        assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize(("role", "from_env"), [("worker", False), ("front", True)])
def test_a_role_on_sqlite_fails_fast_on_one_line(tmp_path: Path, role: str, from_env: bool) -> None:
    db = tmp_path / "arena.db"
    flag = [] if from_env else ["--role", role]
    done = subprocess.run(
        [sys.executable, "-m", "client", "serve", "--port", str(free_port()), "--db", str(db), *flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ARENA_ROLE": role} if from_env else None,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: error: "), done.stderr
    assert f"--role {role} needs a PostgreSQL database" in lines[0]
    assert not db.exists()  # refused before anything was opened


@pytest.mark.both_backends
async def test_one_process_reports_role_all_and_its_database(db_url: str, tmp_path: Path) -> None:
    async with node(db_url, "all", tmp_path / "all.log") as one:
        health = await one.health()
        assert health["role"] == "all"
        assert health["database"] == ("postgresql" if db_url.startswith("postgresql") else "sqlite")
        assert health["matches"] == [] and isinstance(health["worker"], str)
        assert "arena-test-password" not in str(health)

