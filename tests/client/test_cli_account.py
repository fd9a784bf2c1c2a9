"""The ``arena`` commands DESIGN.md pins over the HTTP API, as real processes against a real
server: ``signup``, ``token rotate``, ``agents disable|enable``, ``challenge`` and ``matches``,
their output, the config file they write, and their one-line errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.config import Settings
from server.storage import open_storage
from tests.cluster.nodes import create_matches, eventually
from tests.server.conftest import (
    FAULTY,
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

pytestmark = pytest.mark.timeout(180)

JSON = Any
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return quiet_settings(tmp_path, worker_name="worker-7")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no token or server from the caller, a config file of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    return {**clean, "ARENA_CONFIG": str(tmp_path / "config.toml"), "HOME": str(tmp_path)}


async def arena(env: dict[str, str], *args: object, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``arena ARGS`` without blocking the event loop the server runs on."""
    with anyio.fail_after(timeout_s):
        proc = await anyio.run_process([sys.executable, "-m", "client", *map(str, args)], cwd=ROOT, env=env,
                                       check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def one_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 1 with exactly ``arena: error: MESSAGE`` on stderr."""
    assert (proc.returncode, proc.stderr) == (1, f"arena: error: {message}\n"), proc


def saved(env: dict[str, str]) -> dict[str, Any]:
    return tomllib.loads(Path(env["ARENA_CONFIG"]).read_text(encoding="utf-8"))


async def test_signup_prints_the_token_once_and_saves_it(settings: Settings, env: dict[str, str]) -> None:
    async with api_client(settings) as client:
        url = str(client.base_url).rstrip("/")
        proc = await arena(env, "signup", "alice", "--server", url)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("user ") and lines[0].endswith(f": alice on {url}")
        token = lines[1].removeprefix("token: ")
        assert lines[1].startswith("token: arena_") and proc.stdout.count(token) == 1
        assert saved(env) == {"server": url, "token": token}
        assert stat.S_IMODE((await anyio.Path(env["ARENA_CONFIG"]).stat()).st_mode) == 0o600
        me = (await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})).json()
        assert me["name"] == "alice" and lines[0] == f"user {me['user_id']}: alice on {url}"
        # The next command needs neither --server nor --token.
        mine = await arena(env, "agents")
        assert (mine.returncode, mine.stdout) == (0, "no agents yet: arena submit BOT --game G, or arena connect "
                                                     "BOT --game G\n"), mine.stderr

        kept = await arena(env, "signup", "bob", "--no-save")
        assert kept.returncode == 0 and "token: arena_" in kept.stdout and "not saved" in kept.stderr
        assert saved(env)["token"] == token  # alice's stays

        doc = await arena(env, "signup", "carol", "--json", "--no-save")
        assert doc.returncode == 0, doc.stderr
        carol = json.loads(doc.stdout)
        assert set(carol) == {"user_id", "name", "token"} and carol["name"] == "carol"

        one_error(await arena(env, "signup", "alice"), "user name 'alice' is taken")
        taken = await arena(env, "signup", "alice", "--json")
        assert taken.returncode == 1 and json.loads(taken.stdout)["error"]["code"] == "name_taken"
        bad = await arena(env, "signup", "no way")
        assert bad.returncode == 1 and bad.stderr.startswith("arena: error: ") and bad.stderr.count("\n") == 1
        assert saved(env)["token"] == token  # a refused signup saves nothing


async def test_token_rotate_saves_the_new_token_in_place_of_the_saved_one(
    settings: Settings, env: dict[str, str]
) -> None:
    async with api_client(settings) as client:
        url = str(client.base_url).rstrip("/")
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        assert (await arena(env, "login", "--server", url, "--token", alice.token)).returncode == 0

        proc = await arena(env, "token", "rotate")
        assert proc.returncode == 0, proc.stderr
        first = proc.stdout.splitlines()[0]
        assert first.startswith(f"new token for user {alice.id}: arena_")
        new = first.rsplit(" ", 1)[1]
        assert "the old token no longer works" in proc.stdout and "saved to" in proc.stderr
        assert saved(env) == {"server": url, "token": new}
        one_error(await arena(env, "agents", "--token", alice.token), "wrong token: unknown or revoked token")
        assert (await arena(env, "agents")).returncode == 0  # the saved one is the new one

        # Another account's token, given by flag (before or after "rotate"): the file keeps alice's.
        for args in (("token", "rotate", "--token", bob.token), ("token", "--token", "BOB", "rotate")):
            proc = await arena(env, *[bob.token if a == "BOB" else a for a in args])
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.startswith(f"new token for user {bob.id}: ") and "not saved" in proc.stderr
            bob = User(bob.id, bob.name, proc.stdout.split()[5])
        assert saved(env)["token"] == new

        # ARENA_TOKEN holds the saved token: saved, with a warning that the environment still wins.
        proc = await arena({**env, "ARENA_TOKEN": new}, "token", "rotate", "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["user_id"] == alice.id and saved(env)["token"] == doc["token"]
        assert "ARENA_TOKEN is set" in proc.stderr

        one_error(await arena(env, "token", "rotate", "--token", new), "wrong token: unknown or revoked token")
        missing = await arena({**env, "ARENA_CONFIG": str(Path(env["HOME"]) / "none.toml")}, "token", "rotate",
                              "--server", url)
        one_error(missing, "rotating a token needs a token: pass --token, set ARENA_TOKEN or run arena login")
        assert (await arena(env, "token")).returncode == 2  # no action: a usage error


async def test_agents_disable_and_enable(settings: Settings, env: dict[str, str]) -> None:
    async with api_client(settings) as client:
        url = str(client.base_url).rstrip("/")
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        first = await submit_agent(client, alice, "first", "tictactoe", TICTACTOE_FIRST_FREE)
        await submit_agent(client, alice, "other", "tictactoe", TICTACTOE_FIRST_FREE)
        bobs = await submit_agent(client, bob, "bobs", "tictactoe", TICTACTOE_FIRST_FREE)
        remote = ("--server", url, "--token", alice.token)

        # The flags may come before the action or after it.
        proc = await arena(env, "agents", *remote, "disable", "first")
        assert (proc.returncode, proc.stdout) == (0, f"agent {first['id']}: first (tictactoe) v1, disabled: "
                                                     "it plays no new match\n"), proc.stderr
        listed = await arena(env, "agents", *remote)
        assert f"{first['id']}  first  tictactoe   v1  submitted, disabled" in listed.stdout, listed.stdout
        assert "other  tictactoe   v1  submitted  rating" in listed.stdout
        refused = await arena(env, "challenge", "first", "other", "--game", "tictactoe", *remote)
        one_error(refused, f"agent {first['id']} ('first') is disabled by its owner")

        proc = await arena(env, "agents", "enable", str(first["id"]), "--json", *remote)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert (doc["id"], doc["disabled"]) == (first["id"], False)
        again = await arena(env, "challenge", "first", "other", "--game", "tictactoe", "--json", *remote)
        assert again.returncode == 0, again.stderr

        one_error(await arena(env, "agents", "disable", "ghost", *remote), "you have no agent named 'ghost'")
        one_error(await arena(env, "agents", "disable", str(bobs["id"]), *remote),
                  f"agent {bobs['id']} is not yours: only its owner may change it")
        one_error(await arena(env, "agents", "disable", "first", "--server", url),
                  "disabling an agent needs a token: pass --token, set ARENA_TOKEN or run arena login")
        assert (await arena(env, "agents", "frobnicate", *remote)).returncode == 2
        assert (await arena(env, "agents", "disable", *remote)).returncode == 2  # no AGENT


async def test_challenge_by_name_or_id(settings: Settings, env: dict[str, str]) -> None:
    async with api_client(settings) as client:
        url = str(client.base_url).rstrip("/")
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        carol = await create_user(client, "carol")
        mine = await submit_agent(client, alice, "first", "tictactoe", TICTACTOE_FIRST_FREE)
        faulty = await submit_agent(client, bob, "faulty", "tictactoe", FAULTY)
        await submit_agent(client, bob, "first", "tictactoe", TICTACTOE_FIRST_FREE)  # alice's "first" comes first
        twins = [await submit_agent(client, user, "twin", "tictactoe", TICTACTOE_FIRST_FREE) for user in (bob, carol)]
        await submit_agent(client, bob, "rocky", "rps", TICTACTOE_FIRST_FREE)
        remote = ("--server", url, "--token", alice.token)

        proc = await arena(env, "challenge", "first", "faulty", "--game", "tictactoe", "--seed", 5,
                           "--config", "actTimeout=2", *remote)
        assert proc.returncode == 0, proc.stderr
        head, link = proc.stdout.splitlines()
        match_id = int(head.split()[1].rstrip(":"))
        assert head == f"match {match_id}: tictactoe, first vs faulty (pending, unrated, seed 5)"
        assert link == f"{url}/matches/{match_id}"
        doc = await wait_finished(client, match_id)
        assert [s["agent_id"] for s in doc["seats"]] == [mine["id"], faulty["id"]]
        assert doc["seed"] == 5 and doc["config"]["actTimeout"] == 2.0 and doc["rated"] is False
        assert doc["tags"]["started_by"] == "alice"

        proc = await arena(env, "challenge", faulty["id"], "first", "--game", "tictactoe", "--json", *remote)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert [s["name"] for s in doc["seats"]] == ["faulty", "first"] and doc["status"] in ("pending", "live")

        watched = await arena(env, "challenge", "first", "faulty", "--game", "tictactoe", "--watch", *remote)
        assert watched.returncode == 0, watched.stderr
        assert f"{url}/matches/" in watched.stdout and "tictactoe match " in watched.stdout
        assert "winner: first (seat 0)" in watched.stdout and "ERROR" in watched.stdout

        # Names: someone else's only one of that name in the game; refused when ambiguous or unknown.
        one_error(await arena(env, "challenge", "first", "twin", "--game", "tictactoe", *remote),
                  f"2 agents named 'twin' that plays tictactoe ({twins[0]['id']} of bob, {twins[1]['id']} of carol): "
                  "give the id of one")
        one_error(await arena(env, "challenge", "first", "ghost", "--game", "tictactoe", *remote),
                  "no agent named 'ghost' that plays tictactoe")
        one_error(await arena(env, "challenge", "first", "rocky", "--game", "tictactoe", *remote),
                  "no agent named 'rocky' that plays tictactoe")
        one_error(await arena(env, "challenge", "first", "faulty", "--game", "rps", *remote),
                  "no agent named 'first' that plays rps (yours plays tictactoe)")

        # The server's refusals, one line each; --json also prints its error document.
        nan = await arena(env, "challenge", "first", "faulty", "--game", "tictactoe", "--config", "actTimeout=NaN",
                          *remote)
        one_error(nan, "config actTimeout must be a finite number in 0.001..60, got 'NaN'")
        nan = await arena(env, "challenge", "first", "faulty", "--game", "tictactoe", "--config", "actTimeout=NaN",
                          "--json", *remote)
        assert nan.returncode == 1
        assert json.loads(nan.stdout)["error"]["code"] == "config_out_of_range"
        unknown = await arena(env, "challenge", "first", "faulty", "--game", "tictactoe", "--config", "speed=9",
                              *remote)
        assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
        assert "unknown config key 'speed' for tictactoe; known keys: " in unknown.stderr
        one_error(await arena(env, "challenge", "first", "--game", "tictactoe", *remote),
                  "tictactoe needs 2 agents, got 1")
        chequers = await arena(env, "challenge", "1", "2", "--game", "chequers", *remote)
        assert chequers.returncode == 1 and chequers.stderr.count("\n") == 1
        assert chequers.stderr.startswith("arena: error: unknown game 'chequers'; known games: ")

        # Refused here, before any request: a malformed --config, no token.
        dead = ("--server", "http://127.0.0.1:9", "--token", "t")
        one_error(await arena(env, "challenge", "1", "2", "--game", "tictactoe", "--config", "actTimeout", *dead),
                  "--config expects KEY=VALUE, got 'actTimeout'")
        one_error(await arena(env, "challenge", "1", "2", "--game", "tictactoe", "--server", url),
                  "starting a match needs a token: pass --token, set ARENA_TOKEN or run arena login")
        assert (await arena(env, "challenge", "1", "2", "--game", "tictactoe", "--watch", "--json")).returncode == 2


async def test_matches_lists_filters_and_pages(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    # 203 matches from before this start: a server on SQLite marks them aborted as it starts.
    async with open_storage(settings.db) as storage:
        older = await create_matches(storage, 203, rated=False)
    async with api_client(settings) as client:
        url = str(client.base_url).rstrip("/")
        bob = await create_user(client, "bob")
        first = await submit_agent(client, bob, "first", "tictactoe", TICTACTOE_FIRST_FREE)
        faulty = await submit_agent(client, bob, "faulty", "tictactoe", FAULTY)
        rock = await submit_agent(client, bob, "rock", "rps", RPS_ROCK)
        slow = await submit_agent(client, bob, "slow", "rps", RPS_SLOW)
        won = await start_match(client, bob, "tictactoe", [first["id"], faulty["id"]], seed=1)
        drawn = await start_match(client, bob, "rps", [rock["id"], rock["id"]], {"episodeSteps": 10}, seed=2)
        for match in (won, drawn):
            await wait_finished(client, match["id"])
        live = await start_match(client, bob, "rps", [slow["id"], slow["id"]], {"episodeSteps": 10_000}, seed=3)

        async def is_live() -> bool:
            return bool((await client.get(f"/api/matches/{live['id']}")).json()["steps"] >= 2)

        await eventually(is_live, 30)

        # Newest first, no token needed.
        proc = await arena(env, "matches", "--limit", 4, "--server", url)
        assert proc.returncode == 0, proc.stderr
        header, *rows = proc.stdout.splitlines()
        assert header.split() == ["id", "game", "status", "seats", "worker", "result"]
        assert [int(row.split()[0]) for row in rows] == [live["id"], drawn["id"], won["id"], older[-1].id]
        assert rows[0].split()[1:6] == ["rps", "live", "slow", "vs", "slow"] and " worker-7 " in rows[0]
        assert rows[0].split()[-2] == "step"
        assert rows[1].endswith("worker-7  draw")
        assert rows[2].endswith("worker-7  first won, faulty ERROR")
        assert rows[3].endswith("-         server stopped while the match was live")
        next_id = older[-1].id
        assert proc.stderr == f"more: arena matches --cursor {next_id} (with the same --agent and --status)\n"

        # By agent (a name of someone else's is fine without a token), by status.
        proc = await arena(env, "matches", "--agent", "faulty", "--server", url)
        assert [int(r.split()[0]) for r in proc.stdout.splitlines()[1:]] == [won["id"]] and proc.stderr == ""
        proc = await arena(env, "matches", "--agent", first["id"], "--status", "finished", "--json", "--server", url)
        doc = json.loads(proc.stdout)
        assert [m["id"] for m in doc["items"]] == [won["id"]] and doc["next"] is None
        proc = await arena(env, "matches", "--status", "live", "--server", url)
        assert [int(r.split()[0]) for r in proc.stdout.splitlines()[1:]] == [live["id"]]
        one_error(await arena(env, "matches", "--agent", "ghost", "--server", url), "no agent named 'ghost'")
        assert (await arena(env, "matches", "--status", "won", "--server", url)).returncode == 2
        assert (await arena(env, "matches", "--limit", 0, "--server", url)).returncode == 2

        # Paging: more than the server's largest page, then on from a listing's next.
        proc = await arena(env, "matches", "--status", "aborted", "--limit", 201, "--json", "--server", url)
        doc = json.loads(proc.stdout)
        assert [m["id"] for m in doc["items"]] == [m.id for m in reversed(older)][:201]
        assert all(m["reason"] == "server stopped while the match was live" for m in doc["items"])
        proc = await arena(env, "matches", "--status", "aborted", "--cursor", doc["next"], "--json", "--server", url)
        rest = json.loads(proc.stdout)
        assert [m["id"] for m in rest["items"]] == [older[1].id, older[0].id] and rest["next"] is None
        proc = await arena(env, "matches", "--limit", 1000, "--server", url)
        assert len(proc.stdout.splitlines()) == 1 + 206 and proc.stderr == ""

        stopped = await arena(env, "abort", live["id"], "--server", url, "--token", bob.token)
        assert stopped.returncode == 0, stopped.stderr
        await wait_finished(client, live["id"])
        proc = await arena(env, "matches", "--limit", 1, "--server", url)
        assert proc.stdout.splitlines()[1].endswith("worker-7  stopped by user bob (owner of seats 0, 1)")


async def test_no_server_is_one_line(env: dict[str, str]) -> None:
    dead = "http://127.0.0.1:9"
    for args in (("signup", "dave"), ("matches",), ("token", "rotate", "--token", "t"),
                 ("agents", "disable", "x", "--token", "t"), ("challenge", "1", "2", "--game", "rps", "--token", "t")):
        proc = await arena(env, *args, "--server", dead)
        assert proc.returncode == 1, proc
        assert proc.stderr.startswith(f"arena: error: cannot reach the arena server at {dead}") and \
            proc.stderr.count("\n") == 1, proc.stderr

