"""Draining (DESIGN.md, "Operations"): ``arena serve`` stopped by SIGTERM or Ctrl-C starts no new
match (503), lets its live matches finish or stops them at ``--drain-timeout`` (stored aborted
with the reason), sends every spectator its ``end``, closes every WebSocket with 1001, reaps
every child process and exits 0.

Each test runs the real server (``python -m client serve``) as a subprocess in a session of its
own, as a terminal runs ``scripts/serve``: Ctrl-C is SIGINT to the server's process group (its
sandboxed children live in sessions of their own, and never see it). Bots sleep a little per
move, so that a match is live when the signal comes. The server's processes are recorded by
pid and start time (``/proc``) while it serves; none may be left once it has exited.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process, TaskGroup
from websockets.asyncio.client import connect

from server.storage import MatchRecord, MatchStatus, NewSeat, open_postgres, open_storage
from tests.cluster.nodes import ROOT, SLOW_RPS, STEPS, create_matches, eventually, free_port
from tests.server.conftest import User, create_user, start_match, submit_agent, ws_url

pytestmark = [pytest.mark.timeout(180)]

JSON = Any

SHORT_STEPS = 150  # with SLOW_RPS (0.03 s a move): a match of some 5 s, live when the signal comes
LONG_STEPS = 10_000  # some 5 minutes: only a drain timeout or a second signal ends it
EXIT_S = 60.0  # a server that drains a short match has exited within this
LEFT_S = 5.0  # and its processes are gone within this


# -- the server's process ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    start_ticks: int  # field 22 of /proc/PID/stat: a pid used again is another process


def _stat(pid: int) -> tuple[str, int, int] | None:
    """State, parent pid and start time of ``pid``; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def process_tree(root: int) -> set[Proc]:
    """Every live process below ``root``."""
    children: dict[int, list[Proc]] = {}
    for entry in os.scandir("/proc"):
        found = _stat(int(entry.name)) if entry.name.isdigit() else None
        if found is not None and found[0] != "Z":
            children.setdefault(found[1], []).append(Proc(int(entry.name), found[2]))
    tree: set[Proc] = set()
    todo = [root]
    while todo:
        for proc in children.get(todo.pop(), []):
            tree.add(proc)
            todo.append(proc.pid)
    return tree


def still_running(procs: set[Proc]) -> set[Proc]:
    """Those of ``procs`` still running (not a zombie, nor a new process under an old pid)."""
    left = set()
    for proc in procs:
        found = _stat(proc.pid)
        if found is not None and found[0] != "Z" and found[2] == proc.start_ticks:
            left.add(proc)
    return left


@dataclass
class Server:
    process: Process
    client: httpx.AsyncClient
    log: Path
    seen: set[Proc] = field(default_factory=set)  # every process of the server seen so far

    def look(self) -> set[Proc]:
        """Record the server's processes now; returns them."""
        tree = process_tree(self.process.pid)
        self.seen |= tree
        return tree

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server; SIGINT to its process group, as Ctrl-C in its terminal."""
        if sig is signal.SIGINT:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    async def exited(self, timeout_s: float = EXIT_S) -> int:
        """The server's exit status, once it has exited (within ``timeout_s``)."""
        with anyio.fail_after(timeout_s):
            return await self.process.wait()

    async def assert_nothing_left(self) -> None:
        """No process the server ever had is running any more (given ``LEFT_S``)."""
        assert self.seen, "the server was never seen with a child process"
        await until(lambda: not still_running(self.seen), LEFT_S, f"the server's processes gone: {self.seen}")


@asynccontextmanager
async def serve(tmp_path: Path, *args: str, db: str | None = None) -> AsyncIterator[Server]:
    """``arena serve`` on a free port with ``args``, up once its health answers; killed on the way
    out if it has not exited by then."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    command = [sys.executable, "-m", "client", "serve", "--port", str(port), "--db", db or str(tmp_path / "arena.db"),
               "--no-ladder", "--no-examples", "--log-level", "info", *args]
    with log.open("ab") as log_file:
        process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                           cwd=ROOT, start_new_session=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
            async def is_up() -> bool:
                assert process.returncode is None, f"arena serve exited early:\n{log.read_text()}"
                try:
                    return (await client.get("/api/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(is_up, 60)
            yield Server(process, client, log)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                with anyio.move_on_after(10):
                    await process.wait()
            await process.aclose()


# -- its sockets -------------------------------------------------------------------------------------


@dataclass
class Socket:
    """What one WebSocket received, and how it was closed."""

    frames: list[JSON] = field(default_factory=list)
    close_code: int | None = None
    is_closed: bool = False

    def events(self) -> int:
        return sum(1 for frame in self.frames if frame["type"] == "event")


async def follow(url: str, sock: Socket, *, headers: dict[str, str] | None = None) -> None:
    """Read every frame of the socket at ``url`` until the server closes it."""
    async with connect(url, additional_headers=headers, proxy=None, max_size=None, open_timeout=10,
                       close_timeout=5) as ws:
        try:
            async for message in ws:
                sock.frames.append(json.loads(message))
        finally:
            sock.close_code = ws.close_code
            sock.is_closed = True


def open_socket(tg: TaskGroup, client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> Socket:
    """A WebSocket of the server at ``path``, followed in ``tg`` until the server closes it."""
    sock = Socket()
    tg.start_soon(functools.partial(follow, ws_url(client, path), sock, headers=headers))
    return sock


async def until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Return once ``condition()`` holds (polled); fail after ``timeout_s``."""
    with anyio.move_on_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"not within {timeout_s:g} s: {what}")


def assert_ended_for_spectator(sock: Socket, status: str, reason: str | None = None) -> None:
    """The spectator got a snapshot, events with contiguous ``seq``, ``end`` (of a match ended
    with ``status`` and ``reason``) last, then 1001."""
    assert sock.is_closed and sock.close_code == 1001, (sock.close_code, sock.frames[-3:])
    assert sock.frames[0]["type"] == "snapshot" and sock.frames[-1]["type"] == "end", sock.frames[-3:]
    seqs = [frame["seq"] for frame in sock.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq skipped"
    assert (sock.frames[-1]["result"]["status"], sock.frames[-1]["result"]["reason"]) == (status, reason)


# -- the tests ---------------------------------------------------------------------------------------


async def draining(client: httpx.AsyncClient) -> None:
    """Return once the server's health says it is draining (503)."""
    async def says_so() -> bool:
        health = await client.get("/api/health")
        return health.json()["status"] == "draining" and health.status_code == 503

    await eventually(says_so, 10, every_s=0.05)


@dataclass
class Live:
    """Matches of two slow bots, live, each with a spectator."""

    user: User
    agents: list[int]
    matches: list[JSON]
    spectators: list[Socket]

    async def is_refused(self, client: httpx.AsyncClient) -> None:
        """A new match is refused with 503, saying why."""
        refused = await client.post("/api/matches", json={"game": "rps", "agents": self.agents},
                                    headers=self.user.headers)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "draining" and "shutting down" in error["message"], error


async def live_matches(server: Server, tg: TaskGroup, steps: int, count: int = 1) -> Live:
    """``count`` matches of ``steps`` between two slow bots, each followed by a spectator in
    ``tg``, once every spectator has seen a few moves (the server's processes recorded then)."""
    client = server.client
    user = await create_user(client, "drainer")
    agents = [(await submit_agent(client, user, f"slow-{i}", "rps", SLOW_RPS))["id"] for i in range(2)]
    matches = [await start_match(client, user, "rps", agents, {"episodeSteps": steps}) for _ in range(count)]
    spectators = [open_socket(tg, client, f"/ws/matches/{match['id']}") for match in matches]
    await until(lambda: all(s.events() >= 5 for s in spectators), 30, "the matches are live")
    assert server.look(), "no seat process under the server"
    return Live(user, agents, matches, spectators)


async def stored(tmp_path: Path, match: JSON) -> MatchRecord:
    async with open_storage(str(tmp_path / "arena.db")) as storage:
        return await storage.get_match(match["id"])


async def test_sigterm_lets_the_live_match_finish_and_closes_every_socket_with_1001(tmp_path: Path) -> None:
    async with serve(tmp_path) as server, anyio.create_task_group() as tg:
        client = server.client
        live = await live_matches(server, tg, SHORT_STEPS)
        (spectator,) = live.spectators
        lobby = open_socket(tg, client, "/ws/lobby")
        agent = open_socket(tg, client, "/ws/agent", live.user.headers)  # a remote agent's connection, idle here
        await until(lambda: agent.frames, 10, "the agent welcomed")

        server.signal(signal.SIGTERM)
        await draining(client)  # while it drains, no match starts
        await live.is_refused(client)
        assert not spectator.is_closed, "the match was cut short"
        server.look()

        assert await server.exited() == 0, server.log.read_text()[-3000:]
        await until(lambda: spectator.is_closed and lobby.is_closed and agent.is_closed, 10, "every socket closed")
    assert_ended_for_spectator(spectator, "finished")
    assert spectator.events() >= SHORT_STEPS - 5  # all of them, but for those the snapshot carried
    assert lobby.close_code == 1001 and agent.close_code == 1001, (lobby.close_code, agent.close_code)
    (match,) = live.matches
    assert any(frame["type"] == "match_ended" and frame["match"]["id"] == match["id"] for frame in lobby.frames)
    record = await stored(tmp_path, match)
    assert (record.status, record.steps) == (MatchStatus.FINISHED, SHORT_STEPS)
    async with open_storage(str(tmp_path / "arena.db")) as storage:
        every, _ = await storage.list_matches()
    assert [m.id for m in every] == [match["id"]]  # the refused one was never stored
    await server.assert_nothing_left()


async def test_the_drain_timeout_stops_a_long_match_stored_aborted_with_the_reason(tmp_path: Path) -> None:
    async with serve(tmp_path, "--drain-timeout", "1") as server, anyio.create_task_group() as tg:
        live = await live_matches(server, tg, LONG_STEPS)
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert await server.exited() == 0, server.log.read_text()[-3000:]
        # A bound, not a speed: the match had minutes to go, and the timeout is 1 s.
        assert time.monotonic() - signalled < 30
        await until(lambda: live.spectators[0].is_closed, 10, "the spectator closed")
    reason = "server shut down: drain timeout (1 s) passed"
    assert_ended_for_spectator(live.spectators[0], "aborted", reason)
    record = await stored(tmp_path, live.matches[0])
    assert (record.status, record.reason) == (MatchStatus.ABORTED, reason)
    assert 0 < record.steps < LONG_STEPS
    await server.assert_nothing_left()


async def test_ctrl_c_drains_the_same_way(tmp_path: Path) -> None:
    async with serve(tmp_path) as server, anyio.create_task_group() as tg:
        live = await live_matches(server, tg, SHORT_STEPS)
        server.signal(signal.SIGINT)
        await draining(server.client)
        await live.is_refused(server.client)
        assert await server.exited() == 0, server.log.read_text()[-3000:]
        await until(lambda: live.spectators[0].is_closed, 10, "the spectator closed")
    assert_ended_for_spectator(live.spectators[0], "finished")
    record = await stored(tmp_path, live.matches[0])
    assert (record.status, record.steps) == (MatchStatus.FINISHED, SHORT_STEPS)
    await server.assert_nothing_left()


async def test_a_second_ctrl_c_stops_the_live_matches_at_once(tmp_path: Path) -> None:
    async with serve(tmp_path) as server, anyio.create_task_group() as tg:  # the default drain timeout: 30 s
        live = await live_matches(server, tg, LONG_STEPS, count=2)
        server.signal(signal.SIGINT)
        await draining(server.client)
        server.look()
        server.signal(signal.SIGINT)
        assert await server.exited(timeout_s=25) == 0, server.log.read_text()[-3000:]  # before the drain timeout
        await until(lambda: all(s.is_closed for s in live.spectators), 10, "the spectators closed")
    reason = "server shut down: stopped by a second signal before the drain timeout (30 s)"
    for match, spectator in zip(live.matches, live.spectators, strict=True):
        assert_ended_for_spectator(spectator, "aborted", reason)
        record = await stored(tmp_path, match)
        assert (record.status, record.reason) == (MatchStatus.ABORTED, reason)
    await server.assert_nothing_left()


@pytest.mark.slow
async def test_a_draining_worker_claims_nothing_more_and_finishes_its_match(postgres_url: str, tmp_path: Path) -> None:
    async with open_postgres(postgres_url) as storage:
        async with serve(tmp_path, "--role", "worker", db=postgres_url) as worker:
            (running,) = await create_matches(storage, 1)  # 100 steps of slow bots: a few seconds
            await eventually(lambda: _runs(worker, running.id), 30, every_s=0.05)
            worker.look()
            worker.signal(signal.SIGTERM)
            await draining(worker.client)
            pending = await storage.create_match(running.game, running.rules_version, running.config, 7,
                                                 [NewSeat(s.agent_id, s.version) for s in running.seats], None)
            worker.look()
            assert await worker.exited() == 0, worker.log.read_text()[-3000:]
        finished = await storage.get_match(running.id)
        assert (finished.status, finished.steps, finished.attempt) == (MatchStatus.FINISHED, STEPS, 1)
        left = await storage.get_match(pending.id)
        assert (left.status, left.worker, left.attempt) == (MatchStatus.PENDING, None, 0)  # for another worker
        await worker.assert_nothing_left()


async def _runs(worker: Server, match_id: int) -> bool:
    health = (await worker.client.get("/api/health")).json()
    return match_id in health["matches"]
