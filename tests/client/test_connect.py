"""The ``arena`` account commands as real processes against a real server: connect, login,
agents, logs and repro, and their one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

from server.config import Settings
from tests.server.conftest import (
    FAULTY,
    TICTACTOE_FIRST_FREE,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

pytestmark = pytest.mark.timeout(120)

JSON = Any
ROOT = Path(__file__).resolve().parents[2]
BOTS = ROOT / "server" / "bots"

# Takes 1.5 s over its move at step 5 (actTimeout 0.5 s and a 0.2 s bank in the test): TIMEOUT.
SLOW_AT_STEP_3 = """
from time import sleep

def agent(observation, configuration):
    if observation.step == 4:
        sleep(1.5)
    return observation.board.index(0)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return quiet_settings(tmp_path)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no token or server from the caller, a config file of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    return {**clean, "ARENA_CONFIG": str(tmp_path / "config.toml"), "HOME": str(tmp_path)}


def server_url(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def arena(env: dict[str, str], *args: object, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``arena ARGS`` without blocking the event loop the server runs on."""
    with anyio.fail_after(timeout_s):
        proc = await anyio.run_process([sys.executable, "-m", "client", *map(str, args)], cwd=ROOT, env=env,
                                       check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


async def find_agent(client: httpx.AsyncClient, user: User, name: str) -> JSON:
    """Poll until the user's agent ``name`` exists (registered by a command running meanwhile)."""
    with anyio.fail_after(30):
        while True:
            items = (await client.get(f"/api/agents?user={user.id}")).json()["items"]
            found = [a for a in items if a["name"] == name]
            if found:
                return found[0]
            await anyio.sleep(0.05)


async def collect(proc: Process) -> tuple[int, str, str]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = b"", b""
    async with anyio.create_task_group() as tg:

        async def read_out() -> None:
            nonlocal out
            assert proc.stdout is not None
            async for chunk in proc.stdout:
                out += chunk

        async def read_err() -> None:
            nonlocal err
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                err += chunk

        tg.start_soon(read_out)
        tg.start_soon(read_err)
    return await proc.wait(), out.decode(), err.decode()


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "no-sandbox"])
async def test_connect_plays_a_match_against_a_sandboxed_example_bot(
    settings: Settings, env: dict[str, str], tmp_path: Path, sandbox: bool
) -> None:
    bot = tmp_path / "my_bot.py"
    bot.write_text(TICTACTOE_FIRST_FREE.replace("return", "print('thinking');\n    return"), encoding="utf-8")
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        example = (await submit_agent(client, alice, "minimax", "tictactoe",
                                      (BOTS / "tictactoe_minimax.py").read_text()))["id"]
        command = [sys.executable, "-m", "client", "connect", str(bot), "--game", "tictactoe", "--matches", "1",
                   "--server", server_url(client), "--token", alice.token]
        if not sandbox:
            command.append("--no-sandbox")
        async with await anyio.open_process(command, cwd=ROOT, env=env) as proc:
            async with anyio.create_task_group() as tg:
                result: list[tuple[int, str, str]] = []

                async def wait() -> None:
                    result.append(await collect(proc))

                tg.start_soon(wait)
                agent = await find_agent(client, alice, "my_bot")
                assert agent["remote"] is True and agent["game"] == "tictactoe"
                match = await start_match(client, alice, "tictactoe", [agent["id"], example])
                doc = await wait_finished(client, match["id"])
        code, out, err = result[0]
        assert code == 0, err
        assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
        assert f"match {match['id']}: playing seat 0 (tictactoe)" in out
        verdict = {1.0: "won", -1.0: "lost", 0.0: "draw"}[doc["seats"][0]["reward"]]
        assert f"match {match['id']}: {verdict}" in out
        assert f"agent {agent['id']}: my_bot (tictactoe)" in err
        # Connecting again reuses the agent rather than registering another.
        again = await arena(env, "connect", bot, "--game", "tictactoe", "--matches", "0", "--server",
                            server_url(client), "--token", alice.token)
        assert again.returncode == 0, again.stderr
        items = (await client.get(f"/api/agents?user={alice.id}")).json()["items"]
        assert [a["name"] for a in items].count("my_bot") == 1


async def test_login_agents_logs_and_the_config_file(settings: Settings, env: dict[str, str]) -> None:
    async with api_client(settings) as client:
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        url = server_url(client)
        chatty = await submit_agent(client, alice, "chatty", "tictactoe",
                                    TICTACTOE_FIRST_FREE.replace("return", "print('my move');\n    return"))
        other = await submit_agent(client, bob, "other", "tictactoe", TICTACTOE_FIRST_FREE)
        match = await start_match(client, alice, "tictactoe", [chatty["id"], other["id"]])
        await wait_finished(client, match["id"])

        wrong = await arena(env, "login", "--server", url, "--token", "nope")
        assert wrong.returncode == 1 and wrong.stderr == "arena: error: wrong token: unknown or revoked token\n"
        login = await arena(env, "login", "--server", url, "--token", alice.token)
        assert login.returncode == 0, login.stderr
        assert "logged in" in login.stdout and "alice" in login.stdout
        config = anyio.Path(env["ARENA_CONFIG"])
        assert alice.token in await config.read_text() and (await config.stat()).st_mode & 0o777 == 0o600

        # No flags: the config file gives both the server and the token.
        agents = await arena(env, "agents")
        assert agents.returncode == 0, agents.stderr
        assert "chatty" in agents.stdout and "other" not in agents.stdout
        logs = await arena(env, "logs", "chatty", "--match", match["id"])
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.count("my move") == 4  # seat 0 moves at steps 1, 3, 5 and 7
        watched = await arena(env, "watch", match["id"], "--seat", "0")  # the owner's view: log lines too
        assert watched.returncode == 0, watched.stderr
        assert "seat 0 | my move" in watched.stdout and "winner" in watched.stdout
        refused = await arena(env, "watch", match["id"], "--seat", "1")
        assert refused.returncode == 1 and "is not yours" in refused.stderr
        foreign = await arena(env, "logs", str(other["id"]), "--match", match["id"])
        assert foreign.returncode == 1 and foreign.stderr.count("\n") == 1 and "owner" in foreign.stderr
        # The environment beats the file, a flag beats both.
        as_bob = await arena({**env, "ARENA_TOKEN": bob.token}, "agents")
        assert "other" in as_bob.stdout and "chatty" not in as_bob.stdout
        flag = await arena({**env, "ARENA_TOKEN": bob.token}, "agents", "--token", alice.token)
        assert "chatty" in flag.stdout


async def test_one_line_errors(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bot = tmp_path / "bot.py"
    bot.write_text(TICTACTOE_FIRST_FREE, encoding="utf-8")
    for args in (("connect", bot, "--game", "tictactoe"), ("agents",), ("repro", "1", "--seat", "0")):
        proc = await arena(env, *args, "--server", dead, "--token", "t")
        assert proc.returncode == 1, proc
        assert proc.stderr.startswith(f"arena: error: cannot reach the arena server at {dead}"), proc.stderr
        assert proc.stderr.count("\n") == 1
    async with api_client(settings) as client:
        url = server_url(client)
        wrong = await arena(env, "connect", bot, "--game", "tictactoe", "--server", url, "--token", "nope")
        assert wrong.returncode == 1 and wrong.stderr == "arena: error: wrong token: unknown or revoked token\n"
        missing = await arena(env, "connect", bot, "--game", "tictactoe", "--server", url)
        assert missing.returncode == 1 and "needs a token" in missing.stderr
        rejected = tmp_path / "rejected.py"
        rejected.write_text("def agent(obs, config):\n    return eval('1')\n", encoding="utf-8")
        proc = await arena(env, "connect", rejected, "--game", "tictactoe", "--server", url, "--token", "t")
        assert proc.returncode == 1
        assert f"{rejected}:2:12: builtin: " in proc.stderr
        assert proc.stderr.splitlines()[-1].startswith("arena: error: ")


async def test_repro_reruns_a_failed_seat_locally(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        url = server_url(client)
        first = (await submit_agent(client, alice, "first", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        faulty = (await submit_agent(client, alice, "faulty", "tictactoe", FAULTY))["id"]
        slow = (await submit_agent(client, alice, "slow", "tictactoe", SLOW_AT_STEP_3))["id"]
        crashed = await start_match(client, alice, "tictactoe", [first, faulty], seed=3)
        timed_out = await start_match(client, alice, "tictactoe", [slow, first],
                                      {"actTimeout": 0.5, "remainingOverageTime": 0.2}, seed=4)
        for match in (crashed, timed_out):
            await wait_finished(client, match["id"])

        proc = await arena(env, "repro", crashed["id"], "--seat", "1", "--server", url, "--token", alice.token)
        assert proc.returncode == 0, proc.stderr
        assert f"match {crashed['id']} seat 1 (faulty v1): ERROR at step 2" in proc.stdout
        assert "reproduced: ERROR at step 2" in proc.stdout and "boom at step 1" in proc.stdout
        assert "ValueError: boom at step 1" in proc.stderr  # the re-run's log: the bot's own traceback

        proc = await arena(env, "repro", timed_out["id"], "--seat", "0", "--server", url, "--token", alice.token)
        assert proc.returncode == 0, proc.stderr
        assert "TIMEOUT at step 5" in proc.stdout and "limit: actTimeout + overage bank" in proc.stdout
        assert "reproduced: TIMEOUT at step 5" in proc.stdout

        fixed = tmp_path / "fixed.py"
        fixed.write_text(TICTACTOE_FIRST_FREE, encoding="utf-8")
        proc = await arena(env, "repro", timed_out["id"], "--seat", "0", "--bot", fixed, "--server", url,
                           "--token", alice.token)
        assert proc.returncode == 0, proc.stderr
        assert "not reproduced: DONE through step 5" in proc.stdout

        done = await arena(env, "repro", timed_out["id"], "--seat", "1", "--server", url, "--token", alice.token)
        assert done.returncode == 1 and "did not fail" in done.stderr
