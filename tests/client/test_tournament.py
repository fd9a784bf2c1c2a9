"""``arena tournament`` as users run it: every format plays its games in the sandbox, each game a
replay file that verifies, standings and a crosstable; ``--resume`` finishes a run stopped
halfway with the same totals; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.matches.replay import verify_replay
from tests.client.serving import ROOT, arena

pytestmark = pytest.mark.timeout(300)

SIGNS = {"rock": 0, "paper": 1, "scissors": 2}
# Long enough for a score beyond rps's tieRewardThreshold (20): every game has a winner or is a
# draw between the same sign.
RPS = ("--game", "rps", "--config", "episodeSteps=30")


@pytest.fixture
def bots(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, sign in (*SIGNS.items(), ("rock2", 0)):
        path = tmp_path / f"{name}.py"
        path.write_text(f"def agent(observation, configuration):\n    return {sign}\n")
        found[name] = path
    return found


def tournament(*args: object) -> dict[str, object]:
    done = arena("tournament", *args, "--json", timeout_s=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def game_files(out: Path) -> list[Path]:
    return sorted((out / "games").glob("*.json"))


def test_a_round_robin_plays_every_pairing_each_first_once(bots: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "rr"
    doc = tournament(bots["rock"], bots["paper"], bots["scissors"], *RPS, "--seed", "5", "--out", out)
    files = game_files(out)
    assert len(files) == doc["games"] == 6
    pairings = []
    for path in files:
        replay = json.loads(path.read_text())
        assert verify_replay(replay).ok, path
        pairings.append(tuple(seat["name"] for seat in replay["seats"]))
    assert sorted(pairings) == sorted((a, b) for a in SIGNS for b in SIGNS if a != b)
    # rock < paper < scissors < rock: each bot wins two games and loses two.
    standings = {row["bot"]: row for row in doc["standings"]}
    assert all(row["points"] == 2 and row["games"] == 4 for row in standings.values()), standings
    assert all(abs(row["elo"]) < 1e-6 for row in standings.values()), standings
    points = doc["crosstable"]["points"]
    names = doc["crosstable"]["bots"]
    assert points[names.index("paper")][names.index("rock")] == 2
    assert points[names.index("rock")][names.index("paper")] == 0
    assert points[0][0] is None


def test_a_gauntlet_plays_the_first_bot_against_each_other(bots: dict[str, Path], tmp_path: Path) -> None:
    doc = tournament(bots["paper"], bots["rock"], bots["rock2"], *RPS, "--format", "gauntlet", "--rounds", "2",
                     "--out", tmp_path / "g")
    assert doc["games"] == 8  # two opponents, twice each first
    top = doc["standings"][0]
    assert top["bot"] == "paper" and top["points"] == 8
    assert top["elo"] is None or top["elo"] > 0  # it won every game: an Elo without bound, or large
    rows = {row["bot"]: row for row in doc["standings"]}
    assert rows["rock"]["games"] == rows["rock2"]["games"] == 4


def test_a_swiss_tournament_pairs_by_score_without_rematches_and_gives_byes(
    bots: dict[str, Path], tmp_path: Path,
) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    paths = [bots[name] for name in ("rock", "paper", "scissors", "rock2")]
    lone = extra / "paper.py"
    lone.write_text(bots["paper"].read_text())
    out = tmp_path / "swiss"
    doc = tournament(*paths, lone, *RPS, "--format", "swiss", "--rounds", "3", "--out", out)
    assert doc["games"] == 6  # five bots: two games and a bye a round
    met = [frozenset(seat["path"] for seat in json.loads(p.read_text())["seats"]) for p in game_files(out)]
    assert len(set(met)) == len(met), met  # no rematch while there was another choice
    assert sum(row["byes"] for row in doc["standings"]) == 3
    assert all(row["byes"] <= 1 for row in doc["standings"])


def test_resume_finishes_an_interrupted_run_with_the_same_totals(bots: dict[str, Path], tmp_path: Path) -> None:
    args = (bots["rock"], bots["paper"], bots["scissors"], *RPS, "--rounds", "2", "--seed", "9")
    whole = tournament(*args, "--out", tmp_path / "whole")
    out = tmp_path / "cut"
    tournament(*args, "--out", out)
    files = game_files(out)
    for path in files[3:]:  # as if stopped after its first three games
        path.unlink()
    again = arena("tournament", *args, "--out", out)
    assert again.returncode == 1 and "--resume" in again.stderr
    resumed = tournament(*args, "--out", out, "--resume")
    assert len(game_files(out)) == len(files) == whole["games"] == 12
    assert resumed["standings"] == whole["standings"] and resumed["crosstable"] == whole["crosstable"]
    # A bot changed since: not the same tournament.
    bots["rock"].write_text("def agent(observation, configuration):\n    return 1\n")
    changed = arena("tournament", *args, "--out", out, "--resume")
    assert changed.returncode == 1 and "differs in hashes" in changed.stderr


@pytest.mark.parametrize(("args", "words"), [
    (("--game", "rps"), "two bots or more"),
    (("--game", "rps", "--rounds", "-1"), "must be 1 or more"),
])
def test_bad_input_is_one_line(bots: dict[str, Path], args: tuple[str, ...], words: str) -> None:
    extra = () if "two bots" in words else (bots["paper"],)
    done = arena("tournament", bots["rock"], *extra, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert words in line, line


def test_resume_without_a_tournament_says_so(bots: dict[str, Path], tmp_path: Path) -> None:
    done = arena("tournament", bots["rock"], bots["paper"], *RPS, "--out", tmp_path / "none", "--resume")
    assert done.returncode == 1 and "no tournament to resume" in done.stderr


def test_allow_numpy_reaches_the_seats(tmp_path: Path, bots: dict[str, Path]) -> None:
    """With --allow-numpy the validator and the seats both let a bot import numpy (where the bot
    interpreter has it: the seat says why otherwise)."""
    numpy_bot = tmp_path / "np_paper.py"
    numpy_bot.write_text("import numpy as np\n\ndef agent(observation, configuration):\n    return int(np.int64(1))\n")
    out = tmp_path / "np"
    doc = tournament(bots["rock"], numpy_bot, *RPS, "--allow-numpy", "--out", out)
    statuses = {seat["status"] for path in game_files(out) for seat in json.loads(path.read_text())["seats"]}
    assert statuses == {"DONE"}, statuses
    assert doc["standings"][0]["bot"] == "np_paper"


COUNTER = (ROOT / "server" / "bots" / "rps_counter.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("form", ["round-robin", "gauntlet", "swiss"])
def test_four_bots_killed_in_the_middle_resume_to_the_same_totals(
    bots: dict[str, Path], tmp_path: Path, form: str,
) -> None:
    """The counter bot (it plays what beats its opponent's favourite sign) beats every bot of one
    sign; a run killed (SIGKILL) after a few games and resumed ends as an uninterrupted one."""
    counter = tmp_path / "counter.py"
    counter.write_text(COUNTER)
    args = (counter, bots["rock"], bots["paper"], bots["scissors"], "--game", "rps", "--config", "episodeSteps=300",
            "--format", form, "--rounds", "2", "--seed", "4", "--concurrency", "1")
    whole = tournament(*args, "--out", tmp_path / "whole")
    assert whole["standings"][0]["bot"] == "counter", whole["standings"]
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "client", "tournament", *map(str, args), "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "games").exists() and len(game_files(out)) >= 2):  # a few games in: kill it
            assert process.poll() is None, "it ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the tournament and its seats, in its own session
        process.wait()
    cut = len(game_files(out))
    assert 2 <= cut < whole["games"], cut
    resumed = tournament(*args, "--out", out, "--resume")
    assert len(game_files(out)) == whole["games"]
    assert resumed["standings"] == whole["standings"] and resumed["crosstable"] == whole["crosstable"]


def test_a_damaged_game_file_is_named_on_resume(bots: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    args = (bots["rock"], bots["paper"], *RPS, "--seed", "2", "--out", out)
    tournament(*args)
    game_files(out)[0].write_text("{not json")
    done = arena("tournament", *args, "--resume")
    assert done.returncode == 1 and "0000.json is not a game of this tournament" in done.stderr, done.stderr
