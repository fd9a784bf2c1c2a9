"""The remote-agent SDK (``client.RemoteAgent``) against the real server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from client import RemoteAgent, RemoteAgentError
from client.sdk import agent_url
from protocol.messages import MatchEnd, MatchStart
from server.config import Settings
from tests.server.agent_client import register_remote
from tests.server.conftest import (
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

pytestmark = pytest.mark.timeout(90)

JSON = Any


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return quiet_settings(tmp_path)


def server_url(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


def first_free(start: MatchStart) -> Any:
    def play(observation: Any, configuration: Any) -> Any:
        return observation.board.index(0)  # attribute access, as on Kaggle

    return play


async def wait_connected(agent: RemoteAgent, times: int = 1) -> None:
    with anyio.fail_after(10):
        while agent.connections < times:  # noqa: ASYNC110 - the SDK has no event to wait on
            await anyio.sleep(0.01)


def test_agent_url() -> None:
    assert agent_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/agent"
    assert agent_url("https://arena.example/") == "wss://arena.example/ws/agent"
    assert agent_url("ws://h:1/ws/agent") == "ws://h:1/ws/agent"
    with pytest.raises(RemoteAgentError):
        agent_url("ftp://nowhere")


async def test_sdk_agent_plays_a_sandboxed_one(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "tictactoe")
        local = (await submit_agent(client, alice, "local", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        agent = RemoteAgent(server_url(client), alice.token, first_free)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent.run, max_matches=2))
            await wait_connected(agent)
            assert agent.welcome is not None and agent.welcome.agents == [remote]
            first = await start_match(client, alice, "tictactoe", [remote, local])
            second = await start_match(client, alice, "tictactoe", [local, remote])
        assert {r.match_id for r in agent.results} == {first["id"], second["id"]}
        for match in (first, second):
            doc = await wait_finished(client, match["id"])
            assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
            assert doc["seats"][0]["reward"] == 1.0  # first-free against first-free: the first mover wins
        assert not agent.errors


async def test_two_sdk_agents_of_two_users_play_each_other_with_async_players(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = await register_remote(client, alice, "a", "rps")
        b = await register_remote(client, bob, "b", "rps")
        closed: list[int] = []

        @asynccontextmanager
        async def cycling(start: MatchStart) -> AsyncIterator[Any]:
            async def play(observation: Any, configuration: Any) -> Any:
                await anyio.lowlevel.checkpoint()
                return observation.step % configuration.signs

            try:
                yield play
            finally:
                closed.append(start.seat)

        async def rock(start: MatchStart) -> Any:
            async def play(observation: Any, configuration: Any) -> Any:
                return 0

            return play

        agent_a = RemoteAgent(server_url(client), alice.token, cycling)
        agent_b = RemoteAgent(server_url(client), bob.token, rock, agents=[b])
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent_a.run, max_matches=1))
            tg.start_soon(partial(agent_b.run, max_matches=1))
            await wait_connected(agent_a)
            await wait_connected(agent_b)
            match = await start_match(client, alice, "rps", [a, b], {"episodeSteps": 30})
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert closed == [0]  # the player's context closed at the match's end
        steps = (await client.get(f"/api/matches/{match['id']}/replay")).json()["steps"]
        assert [s["actions"] for s in steps[1:4]] == [[0, 0], [1, 0], [2, 0]]


async def test_sdk_resumes_after_a_dropped_connection(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "rps")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        moves = 0
        made: list[int] = []

        def make_player(start: MatchStart) -> Any:
            made.append(start.match_id)

            def play(observation: Any, configuration: Any) -> Any:
                nonlocal moves
                moves += 1
                if moves == 10:
                    anyio.from_thread.run(agent.drop_connection)  # the network fails mid-match
                return 1

            return play

        agent = RemoteAgent(server_url(client), alice.token, make_player, backoff_s=(0.05, 0.5))
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent.run, max_matches=1))
            await wait_connected(agent)
            match = await start_match(client, alice, "rps", [remote, rock], {"episodeSteps": 40})
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert agent.connections == 2 and made == [match["id"]]  # one player for the whole match
        log = (await client.get(f"/api/agents/{remote}/logs?match={match['id']}", headers=alice.headers)).json()
        assert "connection lost" in log["log"] and "resumed on a new connection" in log["log"]


async def test_player_that_raises_ends_its_seat_with_error(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        remote = await register_remote(client, alice, "remote", "tictactoe")
        local = (await submit_agent(client, alice, "local", "tictactoe", TICTACTOE_FIRST_FREE))["id"]

        def make_player(start: MatchStart) -> Any:
            def play(observation: Any, configuration: Any) -> Any:
                raise ValueError("no idea what to play")

            return play

        agent = RemoteAgent(server_url(client), alice.token, make_player)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent.run, max_matches=1))
            await wait_connected(agent)
            match = await start_match(client, alice, "tictactoe", [remote, local])
        doc = await wait_finished(client, match["id"])
        assert [s["status"] for s in doc["seats"]] == ["ERROR", "DONE"]
        assert "ValueError: no idea what to play" in doc["seats"][0]["reason"]
        assert isinstance(agent.results[0], MatchEnd) and agent.results[0].result["seats"][0]["status"] == "ERROR"


async def test_wrong_token_and_someone_elses_agent_are_clear_errors(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        a = await register_remote(client, alice, "a", "rps")
        with anyio.fail_after(10), pytest.raises(RemoteAgentError) as wrong:
            await RemoteAgent(server_url(client), "not-a-token", first_free).run()
        assert wrong.value.code == "unauthorized" and "unknown or revoked token" in str(wrong.value)
        with anyio.fail_after(10), pytest.raises(RemoteAgentError) as foreign:
            await RemoteAgent(server_url(client), bob.token, first_free, agents=[a]).run()
        assert foreign.value.code == "forbidden" and f"agent {a}" in str(foreign.value)


async def test_revoked_token_ends_a_running_agent(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        await register_remote(client, alice, "a", "rps")
        agent = RemoteAgent(server_url(client), alice.token, first_free)
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:

                async def rotate(user: User) -> None:
                    await wait_connected(agent)
                    response = await client.post("/api/users/me/tokens/rotate", headers=user.headers)
                    assert response.status_code == 201

                tg.start_soon(rotate, alice)
                with pytest.raises(RemoteAgentError) as revoked:
                    await agent.run()
        assert revoked.value.code == "unauthorized"


async def test_unreachable_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with anyio.fail_after(10), pytest.raises(RemoteAgentError) as unreachable:
        await RemoteAgent(f"http://127.0.0.1:{port}", "token", first_free).run()
    assert unreachable.value.code == "unreachable" and "cannot reach the arena server" in str(unreachable.value)
