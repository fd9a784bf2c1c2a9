"""A crash and a restart: the server as a real process, SIGKILLed mid-ladder, restarted on its DB
(an SQLite file, or a PostgreSQL database)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow, pytest.mark.both_backends]

JSON = Any

# The server with its defaults: examples seeded, the ladder on and paced (ladder_pace_s=0.3),
# so scheduled matches stay live for a while.
RUNNER = """
import sys

import uvicorn

from server.app import create_app
from server.config import Settings

db, port = sys.argv[1], int(sys.argv[2])
uvicorn.run(create_app(Settings(db=db, port=port)), host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (the seat processes of a server)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses: fields follow the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@asynccontextmanager
async def server_process(db: str, log: Path) -> AsyncIterator[tuple[Process, httpx.AsyncClient]]:
    """Start the server as a separate process and wait for /api/health; kill it on the way out."""
    port = free_port()
    with log.open("ab") as log_file:
        process = await anyio.open_process(
            [sys.executable, "-c", RUNNER, db, str(port)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=log.parent,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
            with anyio.fail_after(30):
                while True:
                    if process.returncode is not None:
                        raise AssertionError(f"server exited early:\n{await anyio.Path(log).read_text()}")
                    try:
                        if (await client.get("/api/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.05)
            yield process, client
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()  # only this process, by its own handle: a graceful stop
                with anyio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:
                process.kill()
            await process.aclose()


async def matches(client: httpx.AsyncClient, status: str | None = None) -> list[JSON]:
    params: dict[str, str | int] = {"limit": 200}
    if status is not None:
        params["status"] = status
    response = await client.get("/api/matches", params=params)
    assert response.status_code == 200, response.text
    items: list[JSON] = response.json()["items"]
    return items


async def test_sigkill_and_restart_keeps_finished_matches_and_aborts_live_ones(tmp_path: Path, db_url: str) -> None:
    db = db_url
    log = tmp_path / "server.log"

    async with server_process(db, log) as (process, client):
        with anyio.fail_after(45):
            while True:
                finished = await matches(client, "finished")
                live = await matches(client, "live")
                if finished and len(live) >= 2:
                    break
                await anyio.sleep(0.1)
        # Record the finished matches as they are now (a match may finish meanwhile: it is
        # simply not in this set).
        before = {}
        for match in finished:
            replay = await client.get(f"/api/matches/{match['id']}/replay")
            document = await client.get(f"/api/matches/{match['id']}")
            before[match["id"]] = (document.json(), replay.json())
        # What is live right before the kill (a match may still finish in the few ms between).
        live_ids = {m["id"] for m in await matches(client, "live")}
        assert len(live_ids) >= 2
        seat_pids = children_of(process.pid)
        assert seat_pids, "live matches run their seats as child processes"
        killed_at = time.time()
        process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await process.wait()
        assert process.returncode == -signal.SIGKILL

    # The seats of the killed server see their pipes close and exit on their own.
    with anyio.fail_after(10):
        while True:
            if not any(is_alive(pid) for pid in seat_pids):
                break
            await anyio.sleep(0.05)

    async with server_process(db, log) as (process, client):
        for match_id, (document, replay) in before.items():
            assert (await client.get(f"/api/matches/{match_id}")).json() == document
            assert (await client.get(f"/api/matches/{match_id}/replay")).json() == replay
            assert document["status"] == "finished"
            assert all(s["status"] for s in document["seats"])

        aborted = 0
        for match_id in live_ids:
            document = (await client.get(f"/api/matches/{match_id}")).json()
            if document["status"] == "finished":  # it finished just before the kill
                assert document["finished_at"] <= killed_at, document
                continue
            assert document["status"] == "aborted", document
            assert isinstance(document["reason"], str) and document["reason"]
            replay = await client.get(f"/api/matches/{match_id}/replay")
            assert replay.status_code == 200
            # What was durable when it was killed: from the initial state on, if that had been
            # written yet (a match that went live the moment before has none on PostgreSQL).
            steps = replay.json()["steps"]
            assert [s["step"] for s in steps] == list(range(len(steps)))
            assert not steps or steps[0]["actions"] == [None, None]
            aborted += 1
        assert aborted >= 1
        assert not {m["id"] for m in await matches(client, "pending")} & live_ids

        # The ladder goes on: new matches start and finish on the same database.
        last_old = max([*before, *live_ids])
        with anyio.fail_after(30):
            while True:
                fresh = [m for m in await matches(client, "finished") if m["id"] > last_old]
                if fresh:
                    break
                await anyio.sleep(0.1)
        assert fresh[0]["status"] == "finished"
        assert any(m["id"] > last_old for m in await matches(client, "live"))
        health = (await client.get("/api/health")).json()
        assert health["status"] == "ok"

    # The second server was stopped gracefully (SIGTERM; uvicorn re-raises the signal once it
    # has shut down, hence the status): what was live is stored as aborted.
    assert process.returncode in (0, -signal.SIGTERM)
    [(unfinished,)] = query(db, "SELECT count(*) FROM matches WHERE status IN ('pending', 'live')")
    reasons = [row[0] for row in query(db, "SELECT reason FROM matches WHERE status = 'aborted' AND id > ?", last_old)]
    # Ratings: each rated match counted once per seat, across the kill; aborted ones never.
    [(rated,)] = query(
        db, "SELECT count(*) FROM matches m WHERE status = 'finished' AND rating_done = true"
            " AND (SELECT count(DISTINCT agent_id) FROM match_seats s WHERE s.match_id = m.id) = 2")
    [(rated_seats,)] = query(db, "SELECT coalesce(sum(matches), 0) FROM ratings")
    [(rated_aborted,)] = query(db, "SELECT count(*) FROM matches WHERE status = 'aborted' AND rating_done = true")
    assert unfinished == 0
    assert reasons and all(reasons)  # the second server's live matches, stopped by its shutdown
    assert rated >= len(before) and rated_seats == 2 * rated and rated_aborted == 0
