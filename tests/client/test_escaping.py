"""The terminal shows what bots and users chose, inert (issue 10, item 6).

A reason, an illegal move, a remote agent's error message or a log line holding
``\\x1b]0;...\\x07`` (retitle), ``\\x1b[2J`` (clear) or a newline (a fake ``winner:`` line) was
printed raw by ``arena replay``, ``arena watch`` and ``arena play --render``. These tests run
the real CLI, as a process, on a hostile replay file, on a local match and against a real
server holding hostile matches, and check that no control character reaches the terminal
while JSON output stays the JSON it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from client.terminal import printable, quoted_lines
from tests.server.agent_client import open_agent, recv, register_remote
from tests.server.bystander import check_bystander, start_bystander
from tests.server.conftest import (
    TICTACTOE_FIRST_FREE,
    api_client,
    create_user,
    quiet_settings,
    submit_agent,
    wait_finished,
)

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
JSON = Any
RETITLE, CLEAR, FAKE = "\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\nwinner: evil (seat 1)\n"
HOSTILE = f"{RETITLE}{CLEAR}\r{FAKE}\u202e\u200b\x9b31m"
HOSTILE_BOT = f"""
def agent(observation, configuration):
    print({HOSTILE!r})
    return {HOSTILE!r}
"""


def arena(*args: object, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "client", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s, check=False, env={"PATH": "/usr/bin:/bin", "HOME": "/nowhere"})


def assert_inert(text: str, *, is_log: bool = False) -> None:
    """No control or invisible character but the line breaks, and (but in a log, which is the
    bot's own lines) no line the bot wrote."""
    unsafe = sorted({c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
    assert not unsafe, (unsafe, text)
    if not is_log:
        assert not any(line.startswith("winner: evil") for line in text.splitlines()), text


# -- the helper -----------------------------------------------------------------------------------


def test_printable_escapes_control_and_invisible_characters() -> None:
    assert printable("plain, ünïcødé 日本 ok") == "plain, ünïcødé 日本 ok"
    assert printable("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert printable("a\nb\x1b", multiline=True) == "a\nb\\x1b"
    assert printable(RETITLE) == "\\x1b]0;pwned\\x07"
    assert printable("\x7f\x85\x9b") == "\\x7f\\x85\\x9b"
    assert printable("x\u202ey\u200bz\u2028\ufeff") == "x\\u202ey\\u200bz\\u2028\\ufeff"
    assert printable("\U000e0041") == "\\U000e0041"  # a tag character: invisible
    assert printable(42) == "42" and printable(None) == "None"
    assert_inert(printable(HOSTILE))
    assert_inert(printable(HOSTILE, multiline=True), is_log=True)  # its line breaks are kept
    assert quoted_lines("one\nwinner: evil\x1b[2J\n") == "  | one\n  | winner: evil\\x1b[2J"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)  # escaping twice changes nothing


# -- a hostile replay file, and a local match -------------------------------------------------------


def test_replay_of_a_hostile_file_is_inert_and_its_json_intact(tmp_path: Path) -> None:
    doc = {
        "game": "tictactoe", "config": {}, "seed": HOSTILE, "id": HOSTILE, "status": HOSTILE, "reason": HOSTILE,
        "seats": [{"name": f"good{HOSTILE}", "status": "DONE", "reward": 1, "reason": HOSTILE},
                  {"name": "evil", "status": HOSTILE, "reward": -1, "reason": HOSTILE}],
        "steps": [
            {"step": 0, "actions": [None, None], "statuses": ["ACTIVE", "INACTIVE"], "rewards": [0, 0],
             "state": {"board": [0] * 9, "to_act": [0]}},
            {"step": HOSTILE, "actions": [HOSTILE, None], "statuses": ["INVALID", "DONE"], "rewards": [0, 0],
             "state": {"weird": HOSTILE}},
        ],
    }
    for game in ("tictactoe", "connectx", "rps", "other"):
        path = tmp_path / f"{game}.json"
        path.write_text(json.dumps({**doc, "game": game}), encoding="utf-8")
        shown = arena("replay", path)
        assert shown.returncode == 0, shown.stderr
        assert_inert(shown.stdout)
        assert_inert(shown.stderr)
        assert "\\x1b]0;pwned\\x07" in shown.stdout  # shown, escaped
        as_json = arena("replay", path, "--json")
        assert json.loads(as_json.stdout) == {**doc, "game": game}  # JSON output stays JSON, strings intact
        verified = arena("replay", path, "--verify")
        assert_inert(verified.stdout)
        assert_inert(verified.stderr)
    # An error naming a hostile file name is one inert line too.
    missing = arena("replay", tmp_path / f"no{HOSTILE}.json")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1
    assert_inert(missing.stderr)


def test_play_render_shows_a_hostile_bot_inert(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.py"
    hostile.write_text(HOSTILE_BOT, encoding="utf-8")
    fair = tmp_path / "fair.py"
    fair.write_text(TICTACTOE_FIRST_FREE, encoding="utf-8")
    for args in ((hostile, fair, "--render"), (fair, hostile, "--render"), (hostile, fair, "--logs")):
        proc = arena("play", *args, "--game", "tictactoe", "--seed", "1")
        assert proc.returncode == 0, proc.stderr
        assert_inert(proc.stdout)
        assert_inert(proc.stderr)
        assert "INVALID" in proc.stdout and "\\x1b" in proc.stdout + proc.stderr
    played = arena("play", hostile, fair, "--game", "tictactoe", "--seed", "1", "--json")
    assert json.loads(played.stdout)["steps"][1]["actions"][0] == HOSTILE  # the JSON holds it as it was
    bad_key = arena("play", hostile, fair, "--game", "tictactoe", "--config", f"{RETITLE}{CLEAR}=1")
    assert bad_key.returncode == 1
    assert_inert(bad_key.stderr)


# -- against a real server --------------------------------------------------------------------------


async def test_watch_replay_and_logs_of_hostile_matches_are_inert(tmp_path: Path) -> None:
    async with api_client(quiet_settings(tmp_path)) as client:
        carol = await start_bystander(client)
        mallory = await create_user(client, "mallory")
        hostile = (await submit_agent(client, mallory, "hostile", "tictactoe", HOSTILE_BOT))["id"]
        fair = (await submit_agent(client, mallory, "fair", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        remote = await register_remote(client, mallory, "remote", "tictactoe")
        # A sandboxed bot whose move and log are hostile.
        reply = await client.post("/api/matches", json={"game": "tictactoe", "agents": [hostile, fair]},
                                  headers=mallory.headers)
        assert reply.status_code == 201, reply.text
        invalid = await wait_finished(client, reply.json()["id"])
        assert invalid["seats"][0]["status"] == "INVALID"
        # A remote agent whose error message is hostile.
        async with open_agent(client, mallory) as ws:
            await recv(ws, "welcome")
            reply = await client.post("/api/matches", json={"game": "tictactoe", "agents": [remote, fair]},
                                      headers=mallory.headers)
            assert reply.status_code == 201, reply.text
            turn = await recv(ws, "turn")
            await ws.send(json.dumps({"type": "agent_error", "match_id": turn["match_id"], "step": turn["step"],
                                      "message": HOSTILE, "seat": turn["seat"]}))
            errored = await wait_finished(client, reply.json()["id"])
        assert errored["seats"][0]["status"] == "ERROR"
        replay = (await client.get(f"/api/matches/{invalid['id']}/replay")).json()
        assert HOSTILE in [a for step in replay["steps"] for a in step["actions"]]  # stored as the bot sent it

        server = str(client.base_url).rstrip("/")
        remote_args = ("--server", server, "--token", mallory.token)
        commands: list[tuple[object, ...]] = [
            (command, match["id"]) for match in (invalid, errored) for command in ("replay", "watch")]
        commands += [("logs", "hostile", "--match", invalid["id"]), ("agents",)]
        runs = [await anyio.to_thread.run_sync(partial(arena, *command, *remote_args)) for command in commands]
        for proc in runs:
            assert proc.returncode == 0, (proc.args, proc.stderr)
            assert_inert(proc.stdout, is_log=proc is runs[4])  # arena logs prints the log itself, lines and all
            assert_inert(proc.stderr)
        assert all("\\x1b]0;pwned\\x07" in proc.stdout for proc in runs[:5]), [proc.stdout for proc in runs]
        as_json = await anyio.to_thread.run_sync(partial(arena, "replay", invalid["id"], *remote_args, "--json"))
        assert json.loads(as_json.stdout) == replay
        await check_bystander(client, carol)
