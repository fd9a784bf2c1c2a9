"""The ``arena`` server commands against a real ``arena serve``: submit, watch, replay by id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.serving import ROOT, arena, call, free_port, serving

BOTS = ROOT / "server" / "bots"

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``arena serve`` on a free port with an empty database, no ladder and no examples."""
    tmp = tmp_path_factory.mktemp("serve")
    with serving(tmp / "arena.db", tmp / "serve.log", "--log-level", "warning") as url:
        yield url


@pytest.fixture(scope="module")
def token(server: str) -> str:
    user: dict[str, Any] = call(f"{server}/api/users", {"name": "cli-tester"})
    return str(user["token"])


def test_submit_watch_and_replay_a_match(server: str, token: str, tmp_path: Path) -> None:
    ids = []
    for name in ("tictactoe_random", "tictactoe_minimax"):
        proc = arena("submit", BOTS / f"{name}.py", "--game", "tictactoe", "--server", server, "--token", token)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("agent ") and f"{name} version 1" in proc.stdout
        ids.append(int(proc.stdout.split()[1].rstrip(":")))
    match = call(f"{server}/api/matches", {"game": "tictactoe", "agents": ids, "seed": 11}, token)

    watched = arena("watch", match["id"], "--server", server)
    assert watched.returncode == 0, watched.stderr
    assert f"tictactoe match {match['id']}: tictactoe_random vs tictactoe_minimax" in watched.stdout
    assert "winner:" in watched.stdout

    verified = arena("replay", match["id"], "--verify", "--server", server)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: ")

    saved = arena("replay", match["id"], "--json", "--server", server)
    assert saved.returncode == 0, saved.stderr
    path = tmp_path / "replay.json"
    path.write_text(saved.stdout)
    assert arena("replay", path, "--verify").returncode == 0


def test_submit_rejected_bot_prints_findings(server: str, token: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\n\n\ndef agent(obs, config):\n    return 0\n")
    proc = arena("submit", bad, "--game", "tictactoe", "--server", server, "--token", token)
    assert proc.returncode == 1
    assert f"{bad}:1:1: import: " in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("arena: error: ")


def test_submit_needs_a_token(server: str) -> None:
    proc = arena("submit", BOTS / "rps_random.py", "--game", "rps", "--server", server)
    assert proc.returncode == 1
    assert "token" in proc.stderr


def test_unknown_match(server: str) -> None:
    for args in (("watch", 987654), ("replay", 987654)):
        proc = arena(*args, "--server", server)
        assert proc.returncode == 1
        assert proc.stderr == "arena: error: match 987654 not found\n"


def test_unreachable_server() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (("watch", 1), ("replay", 1), ("submit", BOTS / "rps_random.py", "--game", "rps", "--token", "x")):
        proc = arena(*args, "--server", dead)
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"arena: error: cannot reach the arena server at {dead}")
        assert proc.stderr.count("\n") == 1
