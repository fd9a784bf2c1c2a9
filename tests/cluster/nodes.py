"""The cluster's processes for tests: ``arena serve --role`` processes on the tests' private
PostgreSQL, started, killed and paused by PID, and the matches they run.

Bots sleep a little per move, so that matches are live long enough to lose their worker in the
middle. Leases are short (``LEASE_S``) so that a lost worker's matches are claimed again within
seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import Process

from server.matches.games import get_game, resolve_config
from server.matches.replay import verify_replay
from server.storage import MatchRecord, MatchStatus, NewSeat, Storage

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2.0
# Every match of a lost worker ends (run again elsewhere, or aborted) within this: the lease,
# the claim poll, and the match played again from its start on a loaded 2-core machine.
RECOVERY_S = 45.0
STEPS = 100  # episodeSteps of the RPS matches; a bot sleeps SLEEP_S per move
SLEEP_S = 0.03

SLOW_RPS = f"""
from time import sleep

def agent(observation, configuration):
    sleep({SLEEP_S})
    return observation.step % configuration.signs
"""

# Settings a cluster process takes beyond its role, port and database (see server.config).
RUNNER = """
import json
import sys

import uvicorn

from server.app import create_app
from server.config import Settings

db, role, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = {"ladder": False, "seed_examples": False, "claim_poll_s": 0.1, **json.loads(sys.argv[4])}
settings = Settings(db=db, role=role, port=port, **options)
uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Node:
    role: str
    process: Process
    client: httpx.AsyncClient

    @property
    def pid(self) -> int:
        return self.process.pid

    async def health(self) -> Any:
        return (await self.client.get("/api/health")).json()


@asynccontextmanager
async def node(db: str, role: str, log: Path, *, max_matches: int = 8, **options: Any) -> AsyncIterator[Node]:
    """One cluster process, up once its /api/health answers; killed (by its PID) on the way out.
    ``options`` are further ``Settings`` of it (JSON values)."""
    port = free_port()
    settings = {"lease_s": LEASE_S, "worker_matches": max_matches, **options}
    with log.open("ab") as log_file:
        process = await anyio.open_process(
            [sys.executable, "-c", RUNNER, db, role, str(port), json.dumps(settings)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            cwd=ROOT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
            with anyio.fail_after(60):
                while True:
                    if process.returncode is not None:
                        raise AssertionError(f"{role} exited early:\n{await anyio.Path(log).read_text()}")
                    try:
                        if (await client.get("/api/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.1)
            yield Node(role, process, client)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)  # a paused one cannot stop otherwise
                    process.terminate()
                except ProcessLookupError:
                    pass
                with anyio.move_on_after(15):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    with anyio.move_on_after(5):
                        await process.wait()
            await process.aclose()


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float, every_s: float = 0.1) -> None:
    """Return once ``condition()`` holds; fail after ``timeout_s``."""
    with anyio.fail_after(timeout_s):
        while True:
            if await condition():
                return
            await anyio.sleep(every_s)


async def create_matches(
    storage: Storage, n: int, *, rated: bool = True, tags: dict[str, Any] | None = None,
) -> list[MatchRecord]:
    """``n`` RPS matches between two slow bots, stored pending for the workers."""
    user = await storage.create_user("alice", "h")
    a = await storage.save_agent(user.id, "slow-a", "rps", SLOW_RPS)
    b = await storage.save_agent(user.id, "slow-b", "rps", SLOW_RPS)
    game = get_game("rps")
    config = resolve_config(game, {"episodeSteps": STEPS})  # as a front stores it: complete
    return [
        await storage.create_match(
            "rps", game.rules_version, config, 1000 + i, [NewSeat(a.id, 1), NewSeat(b.id, 1)], tags, rated=rated
        )
        for i in range(n)
    ]


async def wait_until_ended(storage: Storage, ids: Sequence[int], timeout_s: float) -> list[MatchRecord]:
    with anyio.fail_after(timeout_s):
        while True:
            records = [await storage.get_match(i) for i in ids]
            if all(r.status in (MatchStatus.FINISHED, MatchStatus.ABORTED) for r in records):
                return records
            await anyio.sleep(0.2)


async def check_replays(front: Node, records: Sequence[MatchRecord]) -> None:
    """Every finished match's replay verifies, from its first step to its last."""
    for record in records:
        if record.status is MatchStatus.FINISHED:
            doc = (await front.client.get(f"/api/matches/{record.id}/replay")).json()
            assert len(doc["steps"]) == STEPS, (record.id, len(doc["steps"]))
            report = verify_replay(doc)
            assert report.ok, (record.id, report.problems)
