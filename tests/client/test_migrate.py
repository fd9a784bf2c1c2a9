"""``arena migrate SRC DST`` (issue 13): an arena used through a real server on SQLite, moved to
the private PostgreSQL by the command and served from there by a real server: users log in
with their old tokens, every replay verifies, the leaderboard, the matches, the agents and the
logs read the same, new rows get new ids; back to a new SQLite file, the very rows. Bad input
gives one line and a non-zero exit; progress is quiet lines without a terminal, one live line
on one. The copy itself is tested in ``tests/storage/test_migrate.py``."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from client.cli import main
from client.migrate import ProgressLine
from server.matches.replay import verify_replay
from server.storage import CopyProgress, NewSeat, open_storage
from server.storage._schema import SCHEMA_VERSION
from tests.postgres import PostgresServer
from tests.server.agent_client import register_remote
from tests.server.conftest import (
    FAULTY,
    RPS_CYCLE,
    RPS_ROCK,
    RPS_SLOW,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)
from tests.server.ladder_client import all_matches, leaderboard, settle_ladder
from tests.storage.raw import dump

pytestmark = pytest.mark.timeout(240)

JSON = Any
ROOT = Path(__file__).resolve().parents[2]
ENDLESS = {"episodeSteps": 10_000, "runTimeout": 3600.0}


async def arena(*args: object) -> tuple[int, str, str]:
    """``arena ARGS`` as a process of its own (stderr is no terminal); exit status, stdout, stderr."""
    done = await anyio.run_process([sys.executable, "-m", "client", *map(str, args)], cwd=ROOT, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def use(client: httpx.AsyncClient) -> tuple[list[User], dict[str, int]]:
    """Use an arena as people do: sign up, submit (and resubmit), let the ladder play and rate,
    challenge, fault, stop a match; then bring the ladder to rest. The users and agent ids."""
    alice, bob, carol = [await create_user(client, name) for name in ("alice", "bob", "carol")]
    agents = {
        "ann": (await submit_agent(client, alice, "ann", "tictactoe", TICTACTOE_FIRST_FREE))["id"],
        "ben": (await submit_agent(client, bob, "ben", "tictactoe", TICTACTOE_FIRST_FREE))["id"],
        "rock": (await submit_agent(client, carol, "rock", "rps", RPS_ROCK))["id"],
        "faulty": (await submit_agent(client, carol, "faulty", "rps", FAULTY))["id"],
        "slow": (await submit_agent(client, bob, "slow", "rps", RPS_SLOW))["id"],
        "cycle": (await submit_agent(client, bob, "cycle", "rps", RPS_CYCLE))["id"],
        "far": await register_remote(client, carol, "far", "tictactoe"),  # remote: no code, never scheduled
    }
    # A second version of ann, and a third.
    for version in (2, 3):
        again = await submit_agent(client, alice, "ann", "tictactoe", TICTACTOE_FIRST_FREE + f"\n# v{version}\n")
        assert again["id"] == agents["ann"] and again["version"] == version
    with anyio.fail_after(90):  # the ladder plays and rates a few matches
        while True:
            if sum(row["rated_matches"] for row in await leaderboard(client, "tictactoe")) >= 6:
                break
            await anyio.sleep(0.1)
    challenge = await start_match(client, alice, "tictactoe", [agents["ann"], agents["ben"]], seed=3)
    faulted = await start_match(client, carol, "rps", [agents["rock"], agents["faulty"]], {"episodeSteps": 20},
                                seed=4)
    stopped = await start_match(client, bob, "rps", [agents["slow"], agents["cycle"]], ENDLESS, seed=5)
    with anyio.fail_after(20):
        while True:
            if (await client.get(f"/api/matches/{stopped['id']}")).json()["status"] == "live":
                break
            await anyio.sleep(0.02)
    await anyio.sleep(0.3)  # a few steps stored
    response = await client.post(f"/api/matches/{stopped['id']}/abort", headers=bob.headers)
    assert response.status_code == 200, response.text
    assert (await wait_finished(client, challenge["id"]))["status"] == "finished"
    assert [s["status"] for s in (await wait_finished(client, faulted["id"]))["seats"]] == ["DONE", "ERROR"]
    assert (await wait_finished(client, stopped["id"]))["status"] == "aborted"
    owners = {alice: [agents["ann"]], bob: [agents["ben"], agents["slow"], agents["cycle"]],
              carol: [agents["rock"], agents["faulty"]]}
    await settle_ladder(client, owners, "tictactoe")
    await settle_ladder(client, owners, "rps")
    return [alice, bob, carol], agents


async def read_all(client: httpx.AsyncClient, users: list[User], agents: dict[str, int]) -> dict[str, JSON]:
    """What the API shows of the arena, to each user with their own token."""
    owner_of = {"ann": 0, "ben": 1, "rock": 2, "faulty": 2, "slow": 1, "cycle": 1, "far": 2}
    seen: dict[str, JSON] = {"me": [], "agents": {}, "logs": {}, "replays": {}}
    for user in users:
        response = await client.get("/api/users/me", headers=user.headers)
        assert response.status_code == 200, response.text
        seen["me"].append(response.json())
    for name, agent_id in agents.items():
        response = await client.get(f"/api/agents/{agent_id}", headers=users[owner_of[name]].headers)
        seen["agents"][name] = response.json()
    seen["agent_list"] = (await client.get("/api/agents", params={"limit": 200})).json()
    seen["matches"] = await all_matches(client)
    for match in seen["matches"]:
        seen["replays"][match["id"]] = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        for seat in match["seats"]:
            name = next(n for n, i in agents.items() if i == seat["agent_id"])
            response = await client.get(f"/api/agents/{seat['agent_id']}/logs", params={"match": match["id"]},
                                        headers=users[owner_of[name]].headers)
            seen["logs"][f"{match['id']}/{seat['agent_id']}"] = response.json()
    seen["leaderboards"] = {game: await leaderboard(client, game) for game in ("tictactoe", "rps")}
    return seen


async def test_a_used_sqlite_arena_moves_to_postgres_and_back(tmp_path: Path, postgres_url: str) -> None:
    source, back = tmp_path / "arena.db", tmp_path / "back.db"
    settings = quiet_settings(tmp_path, db=str(source), ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(settings) as client:
        users, agents = await use(client)
        before = await read_all(client, users, agents)
    assert any(m["status"] == "aborted" for m in before["matches"])
    assert sum(m["rated"] for m in before["matches"]) >= 3

    status, out, err = await arena("migrate", source, postgres_url, "--json")
    assert status == 0, err
    summary = json.loads(out)
    rows = dump(str(source))
    assert summary["tables"] == {table: len(found) for table, found in rows.items()}
    assert summary["rows"] == sum(map(len, rows.values())) and summary["schema_version"] == SCHEMA_VERSION
    assert "arena-test-password" not in out + err
    # Without a terminal: one quiet line per table on stderr.
    assert sorted(line.split(":")[0] for line in err.splitlines()) == sorted(rows)
    assert dump(postgres_url) == rows

    # Back to a new SQLite file before anything changes on PostgreSQL: the very rows.
    status, out, err = await arena("migrate", postgres_url, back)
    assert status == 0, err
    assert out.startswith(f"copied {summary['rows']:,} rows of {len(rows)} tables from postgresql://arena@")
    assert dump(str(back)) == rows

    async with api_client(replace(settings, db=postgres_url, ladder=False)) as client:
        after = await read_all(client, users, agents)
        assert after == before
        for match_id, doc in after["replays"].items():
            report = verify_replay(doc)
            assert report.ok and report.steps_checked == len(doc["steps"]) - 1, (match_id, report.problems)
        for match in (after["matches"][0], next(m for m in after["matches"] if m["status"] == "aborted")):
            status, out, err = await arena("replay", match["id"], "--verify", "--server", client.base_url)
            assert status == 0 and out.startswith("ok: "), err
        # A wrong token is still refused; new rows get new ids.
        assert (await client.get("/api/users/me", headers={"Authorization": "Bearer nope"})).status_code == 401
        dave = await create_user(client, "dave")
        assert dave.id == max(u.id for u in users) + 1
        dan = await submit_agent(client, dave, "dan", "tictactoe", TICTACTOE_FIRST_FREE)
        assert dan["id"] == max(agents.values()) + 1
        match = await start_match(client, dave, "tictactoe", [dan["id"], dan["id"]], seed=9)
        assert match["id"] == max(m["id"] for m in before["matches"]) + 1
        assert (await wait_finished(client, match["id"]))["status"] == "finished"


def one_error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``arena ARGS`` here; it must fail with exit status 1 and one ``arena: error:`` line."""
    assert main(list(args)) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: error: "), captured.err
    return lines[0]


def test_bad_input_is_one_line(tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    arena_db = str(tmp_path / "arena.db")
    assert main(["migrate", postgres_url, arena_db]) == 0  # an empty arena, with the schema
    capsys.readouterr()
    assert "no such file" in one_error_line(capsys, "migrate", str(tmp_path / "nope.db"), postgres_url)
    assert "unsupported storage URL scheme 'mysql'" in one_error_line(capsys, "migrate", arena_db, "mysql://x/y")
    assert "bad SQLite URL" in one_error_line(capsys, "migrate", arena_db, "sqlite://relative.db")
    assert "same file" in one_error_line(capsys, "migrate", arena_db, arena_db)
    assert "same database" in one_error_line(capsys, "migrate", postgres_url, postgres_url)
    line = one_error_line(capsys, "migrate", arena_db, "postgresql://arena:secret@127.0.0.1:1/arena")
    assert "cannot connect to PostgreSQL at postgresql://arena@127.0.0.1:1/arena" in line and "secret" not in line
    assert "cannot connect" in one_error_line(capsys, "migrate", "postgresql://arena@[bad/x", arena_db)
    PostgresServer.execute(postgres_url, "INSERT INTO users (name, token_hash, created_at) VALUES ('x', 'h', 1)")
    assert "already holds data (in users): pass --replace" in one_error_line(capsys, "migrate", arena_db,
                                                                               postgres_url)
    PostgresServer.execute(postgres_url, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    assert f"has schema version {SCHEMA_VERSION + 1}, newer than this program's {SCHEMA_VERSION}" in \
        one_error_line(capsys, "migrate", postgres_url, str(tmp_path / "new.db"))
    # With --json, the error document too.
    assert main(["migrate", str(tmp_path / "nope.db"), postgres_url, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "storage_error"
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "nope.db").exists()


def test_progress_on_a_terminal_is_one_live_line() -> None:
    now = [0.0]
    stream = io.StringIO()
    shown = ProgressLine(stream, is_live=True, clock=lambda: now[0])
    shown(CopyProgress("users", 2, 2, 2, 1002, True))
    for copied in range(100, 1001, 100):
        now[0] += 0.03
        shown(CopyProgress("match_steps", copied, 1000, 2 + copied, 1002, False))
    shown(CopyProgress("match_steps", 1000, 1000, 1002, 1002, True))
    shown.clear()
    text = stream.getvalue()
    assert "\n" not in text
    frames = text.split("\r")[1:]
    # Redrawn at most every LIVE_PERIOD_S, and at every table's end; then wiped.
    assert frames[0].rstrip() == "copying users: 2 of 2 rows; total 2 of 1,002 (0%)"
    assert 3 <= len(frames) <= 8
    assert frames[-3].rstrip() == "copying match_steps: 1,000 of 1,000 rows; total 1,002 of 1,002 (100%)"
    assert frames[-2] == " " * len(frames[-3]) and frames[-1] == ""


def test_progress_without_a_terminal_is_quiet_lines() -> None:
    now = [0.0]
    stream = io.StringIO()
    shown = ProgressLine(stream, is_live=False, clock=lambda: now[0])
    shown(CopyProgress("users", 2, 2, 2, 100_002, True))
    for copied in range(1000, 100_001, 1000):
        now[0] += 0.5  # 50 s in all: a line every 10 s
        shown(CopyProgress("match_steps", copied, 100_000, 2 + copied, 100_002, False))
    shown(CopyProgress("match_steps", 100_000, 100_000, 100_002, 100_002, True))
    shown.clear()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "users: 2 rows copied (total 2 of 100,002)"
    assert lines[1] == "match_steps: 20,000 of 100,000 rows so far"
    assert len(lines) == 2 + 5 and lines[-1] == "match_steps: 100,000 rows copied (total 100,002 of 100,002)"


async def test_an_interrupted_copy_leaves_the_destination_as_it_was(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "arena.db"
    async with open_storage(str(source)) as storage:
        user = await storage.create_user("alice", "hash-alice")
        agent = await storage.save_agent(user.id, "ann", "tictactoe", None)
        match = await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(agent.id, 1), NewSeat(agent.id, 1)])
    # Enough steps, in small batches, for a copy of several seconds (their text is not read back
    # here): the interruption lands in the middle of the steps however fast the machine is.
    with closing(sqlite3.connect(source)) as db, db:
        db.executemany("INSERT INTO match_steps (match_id, step, record) VALUES (?, ?, ?)",
                       ((match.id, i, json.dumps({"step": i, "pad": "x" * 1000})) for i in range(200_000)))
    async with await anyio.open_process([sys.executable, "-m", "client", "migrate", str(source), postgres_url,
                                         "--batch-rows", "50"], cwd=ROOT) as process:
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(60):
            async for chunk in process.stderr:  # the quiet lines: agents come just before the steps
                seen += chunk
                if b"agents: " in seen:
                    break
            await anyio.sleep(0.2)
            assert process.returncode is None, seen
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
            async for chunk in process.stderr:
                seen += chunk
    assert b"arena: interrupted: nothing was copied" in seen, seen
    assert b"match_steps: " not in seen  # it was cut short
    assert all(not found for found in dump(postgres_url).values())


# Ctrl-C as the copy commits: the commit runs to its end, and the command reports what it did.
_SIGINT_AT_COMMIT = """
import os, signal, sys

from client.cli import main
from server.storage._copy_pg import PostgresSide
from server.storage._copy_sqlite import SqliteSide

side = {"postgres": PostgresSide, "sqlite": SqliteSide}[sys.argv[3]]
commit = side.commit

async def commit_interrupted(self, tables):
    os.kill(os.getpid(), signal.SIGINT)  # delivered while the commit is under way
    await commit(self, tables)

side.commit = commit_interrupted
sys.exit(main(["migrate", sys.argv[1], sys.argv[2]]))
"""


@pytest.mark.parametrize("destination", ["postgres", "sqlite"])
async def test_ctrl_c_while_the_copy_commits_leaves_it_copied_and_says_so(
    tmp_path: Path, postgres_url: str, destination: str,
) -> None:
    arena = tmp_path / "arena.db"
    if destination == "postgres":
        async with open_storage(str(arena)) as storage:
            await storage.create_user("alice", "hash-alice")
        source, target = str(arena), postgres_url
    else:
        async with open_storage(postgres_url) as storage:
            await storage.create_user("alice", "hash-alice")
        source, target = postgres_url, str(arena)
    done = await anyio.run_process([sys.executable, "-c", _SIGINT_AT_COMMIT, source, target, destination], cwd=ROOT,
                                   check=False)
    assert done.returncode == 0, done.stderr
    assert b"nothing was copied" not in done.stderr and b"copied" in done.stdout, (done.stdout, done.stderr)
    assert [row[1] for row in dump(target)["users"]] == ["alice"]
