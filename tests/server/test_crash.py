"""Crash consistency: the server SIGKILLed at random moments under load, restarted on its database.

The real server (``python -m client serve``, the ladder on, the examples seeded: rated matches
run unpaced and ratings change all the time) runs as a subprocess while this test keeps in
flight submissions of new agent versions (each one the server acknowledged with 201 recorded:
agent, version, code), challenges (``POST /api/matches``), a remote agent playing over
``/ws/agent`` and spectators on ``/ws/matches/{id}``. At a random moment (a seeded RNG; the seed
is printed, ``ARENA_CRASH_SEED`` replays a run's choices) the test records the server's process
tree and SIGKILLs the server by its pid; sometimes during its start-up, mostly while it serves.
Then it starts the server again on the same database, ``KILLS`` times, and stops it with SIGTERM.

Checked after every kill, with the server down: no process of the killed server is left (each
recorded by pid and start time, given a few seconds); SQLite's ``PRAGMA integrity_check``; every
rated match that is finished has exactly one rating update (a ``rating_history`` row per seat)
and no other match has any, and each agent's rating counts its history rows; every acknowledged
version is stored with its exact code. After every start-up: what was live at the kill is
stored aborted with a reason. At the end: no match is pending or live; every finished match has
its steps 0..n-1 and its replay verifies; every aborted one has a reason (and its stored steps
verify too); a spectator's ``seq`` never skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process, TaskGroup
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from server.matches.replay import replay_chunks, verify_replay
from server.storage import MatchStatus, is_postgres_url, open_storage
from tests.cluster.nodes import free_port
from tests.server.agent_client import action, open_agent, recv
from tests.server.conftest import User, ws_url
from tests.storage.raw import query

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `scripts` is not an installed package
    sys.path.insert(0, str(ROOT))

from scripts.proctree import Proc, alive, descendants  # noqa: E402

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow, pytest.mark.both_backends]

JSON = Any

KILLS = 20
STARTUP_KILL_SHARE = 0.2  # of the kills, about this many land during the server's start-up
SERVE_S = (0.3, 3.0)  # a kill while serving comes this long after the server answered its health
STARTUP_S = (0.05, 0.8)  # a kill during start-up comes this long after the process started
EXIT_S = 5.0  # a killed server's processes are all gone within this
SUBMITTED = ("sub-0", "sub-1", "sub-2")

SETTINGS = "submissions_per_user_hour = 100000\nmatches_per_user_hour = 100000\n"

# Each submission is a new version of one of SUBMITTED, told apart by its number.
BOT = """# version {n}
def agent(observation, configuration):
    board, columns = observation.board, configuration.columns
    free = [c for c in range(columns) if board[c] == 0]
    return free[{n} % len(free)]
"""


@dataclass
class Record:
    """What the load did and what the server acknowledged, across every life of the server."""

    seed: int
    user: User | None = None
    agents: dict[str, int] = field(default_factory=dict)  # name -> id: SUBMITTED, the remote one, the examples'
    acked: dict[tuple[int, int], str] = field(default_factory=dict)  # (agent id, version) -> code, 201 seen
    sent: set[str] = field(default_factory=set)  # every code submitted, acknowledged or not
    answers: Counter[str] = field(default_factory=Counter)  # HTTP statuses and transport errors, by request
    challenges: list[int] = field(default_factory=list)
    remote_connected: bool = False
    remote_turns: int = 0
    remote_ends: int = 0
    spectator_frames: int = 0
    spectator_ends: int = 0
    seq_gaps: list[str] = field(default_factory=list)
    kills: int = 0
    startup_kills: int = 0
    killed_processes: int = 0
    leftovers: list[Proc] = field(default_factory=list)
    numbers: itertools.count[int] = field(default_factory=itertools.count)


# -- the server's process ----------------------------------------------------------------------------


async def spawn(db: str, port: int, log: Path) -> Process:
    """``arena serve`` with its defaults, but for the hourly limits of one user: the load's user
    submits and challenges all through the run (the counts outlive a restart)."""
    settings = log.with_name("arena.toml")
    settings.write_text(SETTINGS)
    with log.open("ab") as log_file:
        return await anyio.open_process(
            [sys.executable, "-m", "client", "serve", "--port", str(port), "--db", db, "--settings", str(settings),
             "--log-level", "warning"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=ROOT,
        )


async def wait_healthy(process: Process, client: httpx.AsyncClient, log: Path) -> None:
    with anyio.fail_after(60):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"server exited early:\n{await anyio.Path(log).read_text()}")
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.05)


def kill(process: Process) -> list[Proc]:
    """SIGKILL the server by its pid; the processes it had a moment before."""
    tree = descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    return tree


async def killed(process: Process, tree: list[Proc], record: Record) -> None:
    """The killed server is gone, and every process it had within ``EXIT_S``."""
    with anyio.fail_after(10):
        await process.wait()
    assert process.returncode == -signal.SIGKILL, process.returncode
    record.kills += 1
    record.killed_processes += len(tree)
    await expect_gone(tree, record)


async def expect_gone(tree: list[Proc], record: Record) -> None:
    with anyio.move_on_after(EXIT_S):
        while True:
            if not alive(tree):
                break
            await anyio.sleep(0.05)
    left = alive(tree)
    record.leftovers += left
    assert not left, f"processes of the stopped server still run: {left}"


# -- the load ----------------------------------------------------------------------------------------


async def set_up(client: httpx.AsyncClient, record: Record) -> None:
    """The user, the agents it submits to, its remote agent, and the examples' ids."""
    response = await client.post("/api/users", json={"name": "crash"})
    assert response.status_code == 201, response.text
    body = response.json()
    record.user = User(body["user_id"], "crash", body["token"])
    for name in SUBMITTED:
        assert await submit(client, record, name) == 201
    response = await client.post("/api/agents", json={"name": "remote", "game": "tictactoe", "remote": True},
                                 headers=record.user.headers)
    assert response.status_code == 201, response.text
    record.agents["remote"] = response.json()["id"]
    for game in ("connectx", "tictactoe"):
        response = await client.get("/api/agents", params={"game": game, "limit": 100})
        for agent in response.json()["items"]:
            if agent["owner"] == "arena":
                record.agents[agent["name"]] = agent["id"]
    assert {"connectx_random", "tictactoe_random"} <= set(record.agents)


async def submit(client: httpx.AsyncClient, record: Record, name: str) -> int:
    """A new version of ``name``; the answer's status, recorded if 201."""
    assert record.user is not None
    code = BOT.format(n=next(record.numbers))
    record.sent.add(code)
    response = await client.post("/api/agents", json={"name": name, "game": "connectx", "code": code},
                                 headers=record.user.headers)
    record.answers[f"submit {response.status_code}"] += 1
    if response.status_code == 201:
        doc = response.json()
        assert doc["code"] == code and doc["name"] == name, doc
        record.acked[(doc["id"], doc["version"])] = code
        record.agents[name] = doc["id"]
    return response.status_code


async def submitting(client: httpx.AsyncClient, record: Record, rng: random.Random) -> None:
    while True:
        try:
            await submit(client, record, rng.choice(SUBMITTED))
        except httpx.TransportError:
            record.answers["submit no answer"] += 1
        await anyio.sleep(0.1)


async def challenging(client: httpx.AsyncClient, record: Record, rng: random.Random) -> None:
    """Unrated matches: a submitted agent against an example, or the remote agent while it is connected."""
    assert record.user is not None
    while True:
        if record.remote_connected and rng.random() < 0.5:
            body = {"game": "tictactoe", "agents": [record.agents["remote"], record.agents["tictactoe_random"]]}
        else:
            agent = record.agents[rng.choice(SUBMITTED)]
            body = {"game": "connectx", "agents": [agent, record.agents["connectx_random"]]}
        try:
            response = await client.post("/api/matches", json=body, headers=record.user.headers)
        except httpx.TransportError:
            record.answers["challenge no answer"] += 1
        else:
            record.answers[f"challenge {response.status_code}"] += 1
            if response.status_code == 201:
                record.challenges.append(response.json()["id"])
        await anyio.sleep(0.15)


async def remote_agent(client: httpx.AsyncClient, record: Record) -> None:
    """The remote agent: plays every turn at once (the first free cell), reconnecting when cut off."""
    assert record.user is not None
    while True:
        try:
            async with open_agent(client, record.user) as ws:
                await recv(ws, "welcome")  # the token went in the header
                record.remote_connected = True
                while True:
                    frame = await recv(ws, "turn", "match_end", timeout_s=3600)
                    if frame["type"] == "turn":
                        await ws.send(action(frame, frame["observation"]["board"].index(0)))
                        record.remote_turns += 1
                    else:
                        record.remote_ends += 1
        except (OSError, WebSocketException):
            pass
        finally:
            record.remote_connected = False
        await anyio.sleep(0.2)


async def spectating(client: httpx.AsyncClient, record: Record, rng: random.Random) -> None:
    """Watch a live match from its snapshot to its end; every frame's ``seq`` follows the last."""
    while True:
        try:
            live = (await client.get("/api/matches", params={"status": "live", "limit": 50})).json()["items"]
            if not live:
                await anyio.sleep(0.1)
                continue
            match_id = rng.choice(live)["id"]
            async with connect(ws_url(client, f"/ws/matches/{match_id}"), proxy=None, open_timeout=10,
                               max_size=None) as ws:
                seq: int | None = None
                async for raw in ws:
                    frame = json.loads(raw)
                    record.spectator_frames += 1
                    if frame["type"] == "snapshot":
                        seq = frame["seq"]
                    elif frame["type"] in ("event", "end"):
                        if seq is None or frame["seq"] != seq + 1:
                            record.seq_gaps.append(f"match {match_id}: {frame['seq']} after {seq}")
                        seq = frame["seq"]
                        if frame["type"] == "end":
                            record.spectator_ends += 1
                            break
        except (OSError, WebSocketException, httpx.TransportError):
            await anyio.sleep(0.1)


def start_load(tg: TaskGroup, client: httpx.AsyncClient, record: Record, rng: random.Random) -> None:
    tg.start_soon(submitting, client, record, random.Random(rng.random()))
    tg.start_soon(challenging, client, record, random.Random(rng.random()))
    tg.start_soon(remote_agent, client, record)
    for _ in range(3):
        tg.start_soon(spectating, client, record, random.Random(rng.random()))


@asynccontextmanager
async def life(db: str, log: Path) -> AsyncIterator[tuple[Process, httpx.AsyncClient]]:
    """One start of the server on ``db``: its process and a client on its port (nothing waited for)."""
    port = free_port()
    process = await spawn(db, port, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
            yield process, client
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


# -- the checks ---------------------------------------------------------------------------------------


def rows(db: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """``query``'s rows, their values as the database gives them."""
    return query(db, sql, *args)


def unfinished(db: str) -> dict[int, str]:
    return {int(i): str(s) for i, s in rows(db, "SELECT id, status FROM matches WHERE status IN ('pending', 'live')")}


def check_stored(db: str, record: Record) -> None:
    """What must hold at any moment the server is down: the file, the ratings, the versions."""
    if not is_postgres_url(db):
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    found = rows(db, "SELECT m.id, m.status, m.rated, m.rating_done,"
                     " (SELECT count(DISTINCT agent_id) FROM match_seats s WHERE s.match_id = m.id),"
                     " (SELECT count(*) FROM rating_history h WHERE h.match_id = m.id) FROM matches m")
    for match_id, status, rated, rating_done, agents, updates in found:
        if status == "finished" and rated:
            assert rating_done and updates == agents == 2, (match_id, rating_done, agents, updates)
        else:
            assert updates == 0, (match_id, status, rated, updates)
    history = {int(a): (int(n), int(low), int(high), int(distinct)) for a, n, low, high, distinct in rows(
        db, "SELECT agent_id, count(*), min(matches), max(matches), count(DISTINCT matches)"
            " FROM rating_history GROUP BY agent_id")}
    for agent_id, matches in rows(db, "SELECT agent_id, matches FROM ratings"):
        n, low, high, distinct = history.pop(int(agent_id), (0, 1, 0, 0))
        assert matches == n == high == distinct and low == 1, (agent_id, matches, history)
    assert not history, f"rating updates of agents without a rating: {history}"
    ids = sorted({agent_id for agent_id, _ in record.acked})
    stored: dict[tuple[int, int], str] = {}
    for agent_id in ids:
        versions = rows(db, "SELECT version, code FROM agent_versions WHERE agent_id = ?", agent_id)
        [(current,)] = rows(db, "SELECT version FROM agents WHERE id = ?", agent_id)
        assert sorted(int(v) for v, _ in versions) == list(range(1, int(current) + 1)), (agent_id, current)
        stored.update({(agent_id, int(v)): str(code) for v, code in versions})
    for key, code in record.acked.items():
        assert stored.get(key) == code, f"agent {key[0]} version {key[1]}: acknowledged, stored {stored.get(key)!r}"
    assert set(stored.values()) <= record.sent, "a stored version that was never submitted"


def check_recovered(db: str, at_kill: dict[int, str]) -> None:
    """After a start-up: what was live at the kill is aborted with a reason (on SQLite what was
    pending too; on PostgreSQL a pending match is the queue's and may run now)."""
    if not at_kill:
        return
    found = rows(db, f"SELECT id, status, reason FROM matches WHERE id IN ({','.join(map(str, at_kill))})")
    for match_id, status, reason in found:
        if at_kill[int(match_id)] == "live" or not is_postgres_url(db):
            assert status == "aborted" and reason, (match_id, at_kill[int(match_id)], status, reason)


async def check_matches(db: str) -> Counter[str]:
    """Every match ended: finished with all its steps and a replay that verifies, or aborted with
    a reason. The replay document is the server's own (``replay_chunks``, as ``/replay`` sends it)."""
    counts: Counter[str] = Counter()
    async with open_storage(db) as storage:
        ids = [int(i) for (i,) in rows(db, "SELECT id FROM matches ORDER BY id")]
        for match_id in ids:
            match = await storage.get_match(match_id)
            doc = json.loads(b"".join([chunk async for chunk in replay_chunks(storage, match)]))
            steps = [s["step"] for s in doc["steps"]]
            assert steps == list(range(match.steps)), (match_id, match.status, match.steps, steps[:5], steps[-5:])
            counts[match.status.value] += 1
            if match.status is MatchStatus.FINISHED:
                assert steps and all(seat.status for seat in match.seats), match
            else:
                assert match.status is MatchStatus.ABORTED and match.reason, match
            if steps:
                report = verify_replay(doc)
                assert report.ok, (match_id, match.status, report.problems)
    return counts


# -- the test -----------------------------------------------------------------------------------------


async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, db_url: str, backend: str) -> None:
    seed = int(os.environ.get("ARENA_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test on {backend}: seed {seed} (ARENA_CRASH_SEED={seed} replays the kill moments)")
    rng = random.Random(seed)
    record = Record(seed)
    log = tmp_path / "server.log"
    at_kill: dict[int, str] = {}
    started = time.monotonic()

    for n in range(KILLS + 1):
        is_last = n == KILLS
        during_startup = 0 < n < KILLS and rng.random() < STARTUP_KILL_SHARE
        async with life(db_url, log) as (process, client):
            if during_startup:
                await anyio.sleep(rng.uniform(*STARTUP_S))
                record.startup_kills += 1
                await killed(process, kill(process), record)
            else:
                await wait_healthy(process, client, log)
                check_recovered(db_url, at_kill)
                if record.user is None:
                    await set_up(client, record)
                async with anyio.create_task_group() as tg:
                    start_load(tg, client, record, rng)
                    await anyio.sleep(rng.uniform(*SERVE_S))
                    tree = [] if is_last else kill(process)
                    tg.cancel_scope.cancel()
                if not is_last:
                    await killed(process, tree, record)
                else:  # stopped as an operator does, and still nothing may be left behind
                    tree = descendants(process.pid)
                    process.send_signal(signal.SIGTERM)
                    with anyio.fail_after(60):
                        await process.wait()
                    assert process.returncode in (0, -signal.SIGTERM), process.returncode
                    await expect_gone(tree, record)
        if not is_last:
            check_stored(db_url, record)
            at_kill = unfinished(db_url)

    check_stored(db_url, record)
    assert unfinished(db_url) == {}
    counts = await check_matches(db_url)
    [(rated,)] = rows(db_url, "SELECT count(*) FROM matches WHERE status = 'finished' AND rated = true")
    summary = {
        "backend": backend, "seed": seed, "kills": record.kills, "during start-up": record.startup_kills,
        "processes killed with the server": record.killed_processes, "leftovers": len(record.leftovers),
        "matches finished": counts["finished"], "aborted": counts["aborted"], "rated": rated,
        "versions acknowledged": len(record.acked), "challenges": len(record.challenges),
        "remote turns": record.remote_turns, "spectator frames": record.spectator_frames,
        "answers": dict(record.answers), "seconds": round(time.monotonic() - started, 1),
    }
    print(f"crash test summary: {json.dumps(summary)}")
    assert record.kills == KILLS
    assert not record.seq_gaps, record.seq_gaps[:10]
    # The load was really in flight: every kind of it reached the server.
    assert counts["finished"] and rated and record.acked and record.challenges
    assert record.remote_turns and record.spectator_ends
