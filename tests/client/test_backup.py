"""``arena backup DST`` (issue 14, part 7): an online copy of a running SQLite arena, made while
its matches write moves, is a sound database (``PRAGMA integrity_check``) that ``arena serve``
serves and whose finished matches' replays verify; bad inputs get one line and a failing status."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from client.backup import back_up
from server.storage import open_storage
from tests.client.serving import arena, call, serving

pytestmark = pytest.mark.timeout(180)

# A move every few milliseconds: the long matches write steps all through the backup.
STEADY = """
from time import sleep

def agent(observation, configuration):
    sleep(0.003)
    return observation.step % configuration.signs
"""


def wait_for(url: str, match_id: int, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 60) -> Any:
    """The match's document once ``condition`` holds for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = call(f"{url}/api/matches/{match_id}")
        if condition(doc):
            return doc
        assert time.monotonic() < deadline, f"match {match_id}: still {doc}"
        time.sleep(0.05)


def test_a_backup_of_a_live_arena_serves_and_its_replays_verify(tmp_path: Path) -> None:
    source, copy = tmp_path / "arena.db", tmp_path / "copy.db"
    with serving(source, tmp_path / "source.log", "--log-level", "warning") as url:
        token = call(f"{url}/api/users", {"name": "operator"})["token"]
        agents = [call(f"{url}/api/agents", {"name": name, "game": "rps", "code": STEADY}, token)["id"]
                  for name in ("a", "b")]
        short = [call(f"{url}/api/matches", {"game": "rps", "agents": agents, "config": {"episodeSteps": 60}},
                      token)["id"] for _ in range(3)]
        long = [call(f"{url}/api/matches", {"game": "rps", "agents": agents, "config": {"episodeSteps": 10_000}},
                     token)["id"] for _ in range(2)]
        for match_id in short:
            wait_for(url, match_id, lambda doc: doc["status"] == "finished")
        for match_id in long:
            wait_for(url, match_id, lambda doc: doc["status"] == "live" and doc["steps"] > 100)

        # One page a step, each step's report taking a while: the long matches store many moves
        # between the backup's first page and its last.
        reports: list[tuple[int, int]] = []

        def slowly(copied: int, total: int) -> None:
            reports.append((copied, total))
            time.sleep(0.02)

        before = {match_id: call(f"{url}/api/matches/{match_id}")["steps"] for match_id in long}
        report = back_up(str(source), str(copy), pages_per_step=1, progress=slowly)
        after = {match_id: call(f"{url}/api/matches/{match_id}")["steps"] for match_id in long}
        print(f"{report.pages} pages in {report.seconds:.2f} s; the long matches' steps went from {before} to {after}")
        assert len(reports) == report.pages > 1 and reports[-1] == (report.pages, report.pages)
        assert all(after[i] > before[i] + 50 for i in long)  # the server wrote all along
        # The command does the same, and says what it did.
        done = arena("backup", tmp_path / "again.db", "--db", source)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert done.stdout.startswith(f"backed up {source} to {tmp_path / 'again.db'}: "), done.stdout
        for match_id in long:
            call(f"{url}/api/matches/{match_id}/abort", {}, token)

    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(db.execute("SELECT id, status FROM matches").fetchall())
        assert {stored[i] for i in short} == {"finished"}
        assert {stored[i] for i in long} == {"live"}  # as they stood at the backup's snapshot
        # One snapshot: each match's count of steps agrees with its steps, taken between the two reads.
        for match_id in long:
            [(steps,)] = db.execute("SELECT count(*) FROM match_steps WHERE match_id = ?", (match_id,)).fetchall()
            [(counted,)] = db.execute("SELECT steps FROM matches WHERE id = ?", (match_id,)).fetchall()
            assert before[match_id] <= steps == counted <= after[match_id]
        # Each match's steps are whole: 0, 1, 2, ... with none missing.
        per_match = "SELECT match_id, count(*), max(step) FROM match_steps GROUP BY match_id"
        for match_id, count, last in db.execute(per_match):
            assert last == count - 1, (match_id, count, last)

    with serving(copy, tmp_path / "copy.log", "--log-level", "warning") as url:
        assert call(f"{url}/api/health")["status"] == "ok"
        for match_id in long:  # live at the copy's snapshot: stopped, as after any stop of a server
            doc = call(f"{url}/api/matches/{match_id}")
            assert doc["status"] == "aborted" and doc["reason"] == "server stopped while the match was live"
        for match_id in short:
            verified = arena("replay", match_id, "--verify", "--server", url)
            assert verified.returncode == 0, verified.stderr
            assert verified.stdout.strip() == "ok: 59 steps verified"  # the moves after the initial state


def make_arena(path: Path) -> None:
    async def create() -> None:
        async with open_storage(path) as storage:
            await storage.create_user("someone", "hash")

    anyio.run(create)


def refused(*args: object, status: int = 1) -> str:
    """Run ``arena backup ARGS``, which must fail with ``status`` and one line on stderr; that line."""
    result = arena("backup", *args)
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_inputs_get_one_line(tmp_path: Path) -> None:
    db, dst = tmp_path / "arena.db", tmp_path / "copy.db"
    make_arena(db)
    assert "pg_dump" in refused(dst, "--db", "postgresql://arena@127.0.0.1:5432/arena")
    missing = tmp_path / "missing.db"
    assert refused(dst, "--db", missing) == f"arena: error: no SQLite database at '{missing}'"
    assert not missing.exists()  # not made by looking
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but long enough to look like one's header might be here\n" * 20)
    assert "is not an SQLite database" in refused(dst, "--db", text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert "is not an arena's database" in refused(dst, "--db", other)
    assert "no directory" in refused(tmp_path / "nowhere" / "copy.db", "--db", db)
    assert "is a directory" in refused(tmp_path, "--db", db)
    assert "at least 1" in refused(dst, "--db", db, "--pages-per-step", 0, status=2)
    assert "is the database being backed up" in refused(db, "--db", db, "--force")
    assert not dst.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    assert arena("backup", dst, "--db", db).returncode == 0
    assert "exists; pass --force to replace it" in refused(dst, "--db", db)
    # --force replaces it, and a stale WAL beside the old file is not read as the new one's.
    (tmp_path / "copy.db-wal").write_bytes(b"stale")
    replaced = arena("backup", dst, "--db", db, "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert not (tmp_path / "copy.db-wal").exists()
    with sqlite3.connect(dst) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("SELECT name FROM users").fetchall() == [("someone",)]
