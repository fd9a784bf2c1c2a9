"""The ``arena`` command line, run as a real process: play, replay, validate, doctor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOTS = ROOT / "server" / "bots"
LAYERS = (
    "static_analysis", "restricted_runtime", "process_isolation", "resource_limits",
    "timeouts", "namespaces", "seccomp", "filesystem",
)  # fmt: skip
# Small configurations keep every match quick.
MATCHUPS = [
    pytest.param("tictactoe", "tictactoe_random", "tictactoe_minimax", [], id="tictactoe"),
    pytest.param("connectx", "connectx_random", "connectx_greedy", [], id="connectx"),
    pytest.param("rps", "rps_random", "rps_counter", ["--config", "episodeSteps=50"], id="rps"),
]


def arena(*args: object, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``arena ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "client", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def play_json(*args: object) -> dict[str, Any]:
    """The replay document ``arena play --json`` prints (the match must be played)."""
    proc = arena("play", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def bot(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


def moves(doc: dict[str, Any], seat: int) -> list[Any]:
    """The actions one seat took, step by step (steps where it did not act left out)."""
    return [s["actions"][seat] for s in doc["steps"][1:] if s["actions"][seat] is not None]


# -- play -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("game", "first", "second", "extra"), MATCHUPS)
def test_play_example_bots_prints_the_result(game: str, first: str, second: str, extra: list[str]) -> None:
    proc = arena("play", BOTS / f"{first}.py", BOTS / f"{second}.py", "--game", game, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "result:" in proc.stdout
    assert "winner:" in proc.stdout
    assert f"{first}.py" in proc.stdout and f"{second}.py" in proc.stdout
    assert "seed " in proc.stdout  # a random seed is printed so the game can be replayed


def test_play_render_shows_every_step() -> None:
    proc = arena("play", BOTS / "tictactoe_random.py", BOTS / "tictactoe_minimax.py", "--game", "tictactoe",
                 "--seed", "4", "--render")
    assert proc.returncode == 0, proc.stderr
    assert "step 0: initial state" in proc.stdout
    assert "step 1: tictactoe_random.py (X) plays cell" in proc.stdout
    assert "step 2: tictactoe_minimax.py (O) plays cell" in proc.stdout
    assert ". . .\n. . .\n. . ." in proc.stdout


@pytest.mark.parametrize(("game", "first", "second", "extra"), MATCHUPS)
def test_same_seed_same_game(game: str, first: str, second: str, extra: list[str]) -> None:
    args = (BOTS / f"{first}.py", BOTS / f"{second}.py", "--game", game, "--seed", 12345, *extra)
    one, two = play_json(*args), play_json(*args)

    def without_timing(doc: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in step.items() if k != "timing"} for step in doc["steps"]]

    assert without_timing(one) == without_timing(two)
    assert one["seats"] == two["seats"]
    assert one["seed"] == 12345


def test_json_document_shape() -> None:
    doc = play_json(BOTS / "connectx_random.py", BOTS / "connectx_greedy.py", "--game", "connectx",
                    "--seed", 1)
    assert {"game", "config", "seed", "seats", "steps"} <= doc.keys()
    assert doc["game"] == "connectx"
    assert doc["config"]["columns"] == 7
    assert [s["name"] for s in doc["seats"]] == ["connectx_random", "connectx_greedy"]
    for seat in doc["seats"]:
        assert {"name", "path", "status", "reward", "reason"} <= seat.keys()
        assert seat["status"] == "DONE"
    for step in doc["steps"]:
        assert {"step", "actions", "statuses", "rewards", "state"} <= step.keys()
    assert doc["steps"][0]["step"] == 0
    assert doc["steps"][0]["actions"] == [None, None]
    assert [s["step"] for s in doc["steps"]] == list(range(len(doc["steps"])))


def test_json_prints_only_the_document() -> None:
    proc = arena("play", BOTS / "rps_random.py", BOTS / "rps_counter.py", "--game", "rps",
                 "--config", "episodeSteps=10", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["game"] == "rps"  # the whole of stdout is one JSON document


# -- bad input ----------------------------------------------------------------------------------------


BAD_BOT = "import os\n\n\ndef agent(obs, config):\n    return eval('0')\n"


def test_rejected_bot_exits_1_with_findings(tmp_path: Path) -> None:
    bad = bot(tmp_path, "bad.py", BAD_BOT)
    proc = arena("play", bad, BOTS / "tictactoe_random.py", "--game", "tictactoe")
    assert proc.returncode == 1
    assert f"{bad}:1:1: import: " in proc.stderr
    assert f"{bad}:5:12: builtin: " in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("arena: error: ")
    assert "result:" not in proc.stdout


def test_rejected_bot_json_error_document(tmp_path: Path) -> None:
    bad = bot(tmp_path, "bad.py", BAD_BOT)
    proc = arena("play", BOTS / "tictactoe_random.py", bad, "--game", "tictactoe", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "validation_failed"
    assert error["file"] == str(bad)
    assert error["message"]
    assert [(f["line"], f["col"], f["rule"]) for f in error["findings"]] == [(1, 1, "import"), (5, 12, "builtin")]
    assert all(f["message"] for f in error["findings"])


@pytest.mark.parametrize(
    ("source", "rule"),
    [(b"\xff\xfe not text\n", "encoding"), (b"def agent(:\n", "syntax")],
    ids=["not-utf8", "not-python"],
)
def test_bot_that_is_not_python_exits_1(tmp_path: Path, source: bytes, rule: str) -> None:
    path = tmp_path / "bot.py"
    path.write_bytes(source)
    proc = arena("play", path, BOTS / "tictactoe_random.py", "--game", "tictactoe")
    assert proc.returncode == 1
    assert f": {rule}: " in proc.stderr


def test_unknown_config_key_names_the_known_ones() -> None:
    proc = arena("play", BOTS / "rps_random.py", BOTS / "rps_counter.py", "--game", "rps", "--config", "bogus=1")
    assert proc.returncode == 1
    assert "bogus" in proc.stderr
    for key in ("episodeSteps", "signs", "actTimeout"):
        assert key in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line


@pytest.mark.parametrize("item", ["episodeSteps", "=5", "episodeSteps=many"])
def test_malformed_config_exits_1(item: str) -> None:
    proc = arena("play", BOTS / "rps_random.py", BOTS / "rps_counter.py", "--game", "rps", "--config", item)
    assert proc.returncode == 1
    assert proc.stderr.startswith("arena: error: ")


def test_unknown_game_lists_the_games() -> None:
    proc = arena("play", BOTS / "rps_random.py", BOTS / "rps_counter.py", "--game", "chess")
    assert proc.returncode == 1
    assert "chess" in proc.stderr
    assert "connectx, rps, tictactoe" in proc.stderr


def test_missing_bot_file(tmp_path: Path) -> None:
    proc = arena("play", tmp_path / "nope.py", BOTS / "rps_counter.py", "--game", "rps")
    assert proc.returncode == 1
    assert proc.stderr == f"arena: error: bot file '{tmp_path / 'nope.py'}' not found\n"


def test_usage_errors_exit_2() -> None:
    assert arena().returncode == 2
    assert arena("play", BOTS / "rps_random.py").returncode == 2  # no --game
    assert arena("frobnicate").returncode == 2


# -- replay ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("game", "first", "second", "extra"), MATCHUPS)
def test_replay_verify(tmp_path: Path, game: str, first: str, second: str, extra: list[str]) -> None:
    doc = play_json(BOTS / f"{first}.py", BOTS / f"{second}.py", "--game", game, "--seed", 99, *extra)
    good = tmp_path / "replay.json"
    good.write_text(json.dumps(doc))
    proc = arena("replay", good, "--verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"ok: {len(doc['steps']) - 1} steps verified\n"

    tampered = json.loads(json.dumps(doc))
    state = tampered["steps"][2]["state"]
    if "board" in state:
        state["board"][state["board"].index(0)] = 2  # a mark nobody played
    else:
        state["scores"][0] += 1
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    proc = arena("replay", bad, "--verify")
    assert proc.returncode == 1
    assert "step 2" in proc.stdout
    assert "corrupt" in proc.stderr


def test_replay_verify_tells_changed_rules(tmp_path: Path) -> None:
    doc = play_json(BOTS / "tictactoe_random.py", BOTS / "tictactoe_minimax.py", "--game", "tictactoe")
    doc["rules_version"] = 999
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    proc = arena("replay", path, "--verify")
    assert proc.returncode == 1
    assert "rules" in proc.stderr and "not a corrupt log" in proc.stderr


def test_replay_plays_a_file(tmp_path: Path) -> None:
    doc = play_json(BOTS / "connectx_random.py", BOTS / "connectx_greedy.py", "--game", "connectx", "--seed", 2)
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(doc))
    proc = arena("replay", path)
    assert proc.returncode == 0, proc.stderr
    assert " 0 1 2 3 4 5 6" in proc.stdout
    assert f"step {len(doc['steps']) - 1}: " in proc.stdout
    assert "winner:" in proc.stdout


def test_replay_of_a_file_that_is_not_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    proc = arena("replay", path, "--verify")
    assert proc.returncode == 1
    assert "not a replay document" in proc.stderr
    assert arena("replay", tmp_path / "missing.json").returncode == 1


# -- validate and doctor ------------------------------------------------------------------------------


def test_validate(tmp_path: Path) -> None:
    good = arena("validate", BOTS / "connectx_greedy.py")
    assert good.returncode == 0
    assert good.stdout == f"{BOTS / 'connectx_greedy.py'}: ok\n"
    bad = bot(tmp_path, "bad.py", BAD_BOT)
    proc = arena("validate", bad)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{bad}:1:1: import: import of 'os' is forbidden",
        f"{bad}:5:12: builtin: call of 'eval' is forbidden",
    ]


def test_validate_accepts_numpy_only_with_allow_numpy(tmp_path: Path) -> None:
    numpy_bot = bot(tmp_path, "np_bot.py", "import numpy as np\n\ndef agent(obs, config):\n    return 0\n")
    refused = arena("validate", numpy_bot)
    assert refused.returncode == 1
    finding = "import: module 'numpy' is not enabled on this arena (the operator's allow_numpy)"
    assert refused.stdout == f"{numpy_bot}:1:1: {finding}\n"
    accepted = arena("validate", numpy_bot, "--allow-numpy")
    assert (accepted.returncode, accepted.stdout) == (0, f"{numpy_bot}: ok\n")


def test_doctor_lists_every_layer() -> None:
    proc = arena("doctor")
    assert proc.returncode == 0, proc.stderr
    for name in LAYERS:
        assert name in proc.stdout
    assert "bot interpreter: " in proc.stdout
    assert arena("doctor", "--require-layers", "static_analysis,timeouts").returncode == 0
    unknown = arena("doctor", "--require-layers", "moat")
    assert unknown.returncode == 1 and "known layers" in unknown.stderr


# -- Kaggle-style bots ----------------------------------------------------------------------------------


def test_connectx_attribute_access(tmp_path: Path) -> None:
    leftmost = bot(tmp_path, "leftmost.py", (
        "def agent(obs, config):\n"
        "    assert obs.mark in (1, 2) and config.inarow == 4\n"
        "    return [c for c in range(config.columns) if obs.board[c] == 0][0]\n"
    ))
    doc = play_json(leftmost, leftmost, "--game", "connectx", "--seed", 3)
    assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"]
    for before, after in zip(doc["steps"], doc["steps"][1:], strict=False):
        board = before["state"]["board"]
        acted = [a for a in after["actions"] if a is not None]
        assert acted == [min(c for c in range(7) if board[c] == 0)]


def test_rps_attribute_access(tmp_path: Path) -> None:
    copycat = bot(tmp_path, "copycat.py", (
        "def agent(obs, config):\n"
        "    if obs.lastOpponentAction is None:\n"
        "        return obs.step % config.signs\n"
        "    return (obs.lastOpponentAction + 1) % config.signs\n"
    ))
    doc = play_json(copycat, BOTS / "rps_random.py", "--game", "rps", "--config", "episodeSteps=30", "--seed", 8)
    assert doc["seats"][0]["status"] == "DONE"
    mine, theirs = moves(doc, 0), moves(doc, 1)
    assert mine[0] == 0
    assert mine[1:] == [(a + 1) % 3 for a in theirs[:-1]]


LAST_FUNCTION_CONNECTX = """
import random


def centre(columns):
    return columns // 2


def free_columns(board, columns):
    return [c for c in range(columns) if board[c] == 0]


def my_bot(observation, configuration):
    free = free_columns(observation["board"], configuration["columns"])
    middle = centre(configuration["columns"])
    return middle if middle in free else random.choice(free)
"""

LAST_FUNCTION_RPS = """
def beat(sign, signs):
    return (sign + 1) % signs


def opening(signs):
    return signs - 1


def player(observation, configuration):
    if observation.lastOpponentAction is None:
        return opening(configuration.signs)
    return beat(observation.lastOpponentAction, configuration.signs)
"""


@pytest.mark.parametrize(
    ("game", "source", "opponent", "extra"),
    [
        pytest.param("connectx", LAST_FUNCTION_CONNECTX, "connectx_random", [], id="connectx"),
        pytest.param("rps", LAST_FUNCTION_RPS, "rps_random", ["--config", "episodeSteps=20"], id="rps"),
    ],
)
def test_last_function_is_the_agent(tmp_path: Path, game: str, source: str, opponent: str,
                                    extra: list[str]) -> None:
    # The helpers above the last function would fail (wrong arguments) if they were called as the agent.
    path = bot(tmp_path, "last.py", source)
    doc = play_json(path, BOTS / f"{opponent}.py", "--game", game, "--seed", 5, *extra)
    assert doc["seats"][0]["status"] == "DONE", doc["seats"][0]["reason"]
    assert doc["seats"][0]["reason"] is None
    first = moves(doc, 0)[0]
    assert first == (3 if game == "connectx" else 2)


def test_rps_module_state_persists_between_moves(tmp_path: Path) -> None:
    counter = bot(tmp_path, "counter.py", (
        "calls = 0\n\n\n"
        "def agent(observation, configuration):\n"
        "    global calls\n"
        "    sign = calls % 3\n"
        "    calls += 1\n"
        "    print('call', calls)\n"
        "    return sign\n"
    ))
    doc = play_json(counter, BOTS / "rps_random.py", "--game", "rps", "--config", "episodeSteps=20", "--seed", 6)
    assert doc["seats"][0]["status"] == "DONE"
    played = moves(doc, 0)
    assert played == [i % 3 for i in range(len(played))]
    assert len(played) == 19


def test_connectx_module_state_persists_between_moves(tmp_path: Path) -> None:
    # Seat 0 walks along the bottom row from its own memory; seat 1 stacks column 6 and is too late.
    walker = bot(tmp_path, "walker.py", (
        "played = []\n\n\n"
        "def agent(obs, config):\n"
        "    played.append(len(played))\n"
        "    return played[-1]\n"
    ))
    stacker = bot(tmp_path, "stacker.py", "def agent(obs, config):\n    return config.columns - 1\n")
    doc = play_json(walker, stacker, "--game", "connectx", "--seed", 7)
    assert moves(doc, 0) == [0, 1, 2, 3]
    assert [s["reward"] for s in doc["seats"]] == [1.0, -1.0]
