"""Helpers for server tests: the real app under real uvicorn on a free port, and API shortcuts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.http.transport import uvicorn_options

JSON = Any

# Bots used across the server tests (all pass the static validator).
TICTACTOE_FIRST_FREE = """
def agent(observation, configuration):
    return observation.board.index(0)
"""

RPS_ROCK = """
def agent(observation, configuration):
    return 0
"""

RPS_CYCLE = """
def agent(observation, configuration):
    return observation.step % configuration.signs
"""

RPS_SLOW = """
from time import sleep

def agent(observation, configuration):
    sleep(0.004)
    return observation.step % configuration.signs
"""

FAULTY = """
def agent(observation, configuration):
    print("thinking about step", observation.step)
    raise ValueError("boom at step " + str(observation.step))
"""


def quiet_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: its own database file, no examples, no ladder (unless overridden)."""
    base = Settings(db=str(tmp_path / "arena.db"), ladder=False, seed_examples=False, port=0)
    return replace(base, **overrides)


@asynccontextmanager
async def running_server(
    settings: Settings, *, send_buffer_bytes: int | None = None, app: Starlette | None = None
) -> AsyncIterator[str]:
    """Run the app under uvicorn on a free port; yields ``http://127.0.0.1:PORT``.

    ``app``: an app made by ``create_app(settings)`` whose state (``app.state.arena``) the test
    reaches into; by default one is made here.

    ``send_buffer_bytes`` sets ``SO_SNDBUF`` on the listening socket, which every accepted
    connection inherits (Linux): the kernel then holds little of what a client does not read.
    """
    sock = socket.create_server(("127.0.0.1", 0))
    # Accepted sockets inherit this. asyncio sets TCP_NODELAY only on sockets made with proto
    # IPPROTO_TCP, and create_server's is 0: without it, a response in two writes waits for the
    # client's delayed ACK, 40 ms a request on a kept-alive connection (`arena serve` binds its own).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send_buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    port = sock.getsockname()[1]
    app = app if app is not None else create_app(settings)
    # As `arena serve` runs it (its WebSockets, its frame bound, a bounded graceful shutdown, no
    # X-Forwarded-For trusted unless the settings list a proxy).
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve([sock])
        finally:
            stopped.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            with anyio.fail_after(10):
                while not server.started:
                    if stopped.is_set():
                        raise RuntimeError("uvicorn stopped during start-up")
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                # Shut down the way uvicorn does on SIGINT, even when the test failed, so a
                # failure is not buried under the lifespan's cancellation traceback.
                server.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(15):
                    await stopped.wait()
                tg.cancel_scope.cancel()  # a backstop: never hang on a server that does not stop
    finally:
        sock.close()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_user(client: httpx.AsyncClient, name: str) -> User:
    """POST /api/users and return the new user with its token."""
    response = await client.post("/api/users", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return User(body["user_id"], name, body["token"])


async def submit_agent(client: httpx.AsyncClient, user: User, name: str, game: str, code: str) -> JSON:
    """POST /api/agents with the user's token; returns the agent document."""
    response = await client.post("/api/agents", json={"name": name, "game": game, "code": code}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def start_match(
    client: httpx.AsyncClient, user: User, game: str, agents: list[int], config: dict[str, JSON] | None = None,
    seed: int | None = None,
) -> JSON:
    """POST /api/matches; returns the match document."""
    body: dict[str, JSON] = {"game": game, "agents": agents}
    if config is not None:
        body["config"] = config
    if seed is not None:
        body["seed"] = seed
    response = await client.post("/api/matches", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def wait_finished(client: httpx.AsyncClient, match_id: int, timeout_s: float = 30) -> JSON:
    """Poll GET /api/matches/{id} until it is finished or aborted; returns the document."""
    with anyio.fail_after(timeout_s):
        while True:
            response = await client.get(f"/api/matches/{match_id}")
            assert response.status_code == 200, response.text
            doc = response.json()
            if doc["status"] in ("finished", "aborted"):
                return doc
            await anyio.sleep(0.05)


@asynccontextmanager
async def api_client(settings: Settings, **server_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A running server and an HTTP client on it (``client.base_url`` is the server's URL).

    Tests enter this themselves: an anyio task group cannot live in an async-generator
    fixture, whose setup and teardown pytest-asyncio runs in different tasks.
    """
    async with (
        running_server(settings, **server_options) as url,
        httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as client,
    ):
        yield client


def ws_url(client: httpx.AsyncClient, path: str) -> str:
    """The ``ws://`` URL of ``path`` on the server ``client`` talks to."""
    return str(client.base_url).replace("http://", "ws://", 1).rstrip("/") + path


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Quiet settings on the test's database: SQLite, or both backends in turn for a test marked
    ``both_backends`` (see tests/conftest.py)."""
    return quiet_settings(tmp_path, db=db_url)
