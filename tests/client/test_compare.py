"""``arena compare`` as users run it: pairs of games in the sandbox, the sequential test stopping
a clear difference early, a run to ``--games`` when it cannot decide, and the counts-only mode;
bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.stats.sprt import WDL, Pentanomial, Sprt, compare_pairs, compare_wdl
from tests.client.serving import ROOT, arena

pytestmark = pytest.mark.timeout(180)

ROCK = "def agent(observation, configuration):\n    return 0\n"
PAPER = "def agent(observation, configuration):\n    return 1\n"
# Long enough for a score beyond rps's tieRewardThreshold (20): paper beats rock outright.
RPS = ("--game", "rps", "--config", "episodeSteps=50")


@pytest.fixture
def bots(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, code in (("rock", ROCK), ("paper", PAPER), ("also_rock", ROCK), ("bad", "import os\n" + ROCK)):
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        found[name] = path
    return found


def test_a_clearly_stronger_bot_is_accepted_early(bots: dict[str, Path]) -> None:
    done = arena("compare", bots["rock"], bots["paper"], *RPS, "--sprt", "0,50", "--games", "400", "--seed", "7",
                 "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "H1"
    assert doc["games"] < 400  # the test decided: no need for every game
    assert doc["wins"] == doc["games"] and doc["draws"] == doc["losses"] == 0
    assert doc["pairs"] == [0, 0, 0, 0, doc["games"] // 2]
    assert doc["llr"] >= doc["llr_bounds"][1]
    assert doc["los"] == 1.0 and doc["elo"] is None  # every game won: an unbounded Elo


def test_equal_bots_play_every_game_asked_and_the_test_does_not_decide(bots: dict[str, Path]) -> None:
    done = arena("compare", bots["rock"], bots["also_rock"], *RPS, "--games", "10", "--seed", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("rps: ") and "up to 5 pairs from seed 1" in lines[0]
    assert "games 10, B: 0 wins, 10 draws, 0 losses" in lines
    assert "pairs (B's points 0, 1/2, 1, 3/2, 2): 0, 0, 5, 0, 0" in lines
    assert "Elo of B over A: +0.0, 95% interval [+0.0, +0.0], LOS 50.0%" in lines
    assert lines[-1] == "verdict: inconclusive: more games are needed"
    assert "games 10, B: W 0 D 10 L 0" in done.stderr  # the progress line, every 10 pairs or at the end


def test_counts_alone_give_the_statistics_module_s_document() -> None:
    done = arena("compare", "--pairs", "5,15,40,25,15", "--sprt", "0,10", "--alpha", "0.1", "--json")
    assert done.returncode == 0, done.stderr
    expected = compare_pairs(Pentanomial((5, 15, 40, 25, 15)), Sprt(0, 10, 0.1, 0.05)).to_json()
    assert json.loads(done.stdout) == expected
    done = arena("compare", "--wdl", "30,50,20", "--json")
    assert json.loads(done.stdout) == compare_wdl(WDL(30, 50, 20), Sprt(0, 20)).to_json()


@pytest.mark.parametrize(("args", "words"), [
    (("--pairs", "1,2,3"), "--pairs takes 5 comma-separated ints"),
    (("--wdl", "1,x,3"), "--wdl takes 3 comma-separated ints"),
    (("--pairs", "1,2,3,4,-5"), "count"),
    (("--wdl", "1,2,3", "--sprt", "10,0"), "elo0"),
    (("--wdl", "1,2,3", "--alpha", "0.7", "--beta", "0.5"), "error rates"),
    (("--pairs", "1,2,3,4,5", "--wdl", "1,2,3"), "not both"),
    (("--game", "rps"), "two bots"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    done = arena("compare", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("arena: error: ") and words in line, line


def test_a_bot_the_validator_rejects_is_refused_with_its_findings(bots: dict[str, Path]) -> None:
    done = arena("compare", bots["rock"], bots["bad"], *RPS)
    assert done.returncode == 1
    assert "bad.py rejected by the validator" in done.stderr


GREEDY = ROOT / "server" / "bots" / "connectx_greedy.py"
RANDOM = ROOT / "server" / "bots" / "connectx_random.py"


@pytest.mark.slow
def test_a_connectx_bot_that_wins_and_blocks_is_accepted_against_a_random_one_within_200_games() -> None:
    done = arena("compare", RANDOM, GREEDY, "--game", "connectx", "--sprt", "0,50", "--games", "200", "--seed", "3",
                 "--json", timeout_s=170)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "H1" and doc["games"] <= 200, doc
    assert doc["wins"] > doc["losses"]


@pytest.mark.slow
def test_a_bot_against_itself_is_not_accepted(tmp_path: Path) -> None:
    done = arena("compare", GREEDY, GREEDY, "--game", "connectx", "--sprt", "0,50", "--games", "60", "--seed", "3",
                 "--json", timeout_s=170)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] != "H1"


def test_the_games_of_a_comparison_are_replayed_by_arena_play_from_their_pair_seeds(tmp_path: Path) -> None:
    """Pair i plays seed + i, A first then B first: ``arena play`` with those seeds replays each
    game (seeded random bots: another seed would give other games)."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    source = (ROOT / "server" / "bots" / "rps_random.py").read_text()
    a.write_text(source)
    b.write_text(source)
    rps = (*RPS, "--config", "tieRewardThreshold=1")  # any lead wins: the games differ from seed to seed
    compared = json.loads(arena("compare", a, b, *rps, "--games", "8", "--seed", "11", "--json").stdout)
    pairs = [0] * 5
    for pair in range(4):
        points = 0  # B's, in half points
        for first, second, b_seat in ((a, b, 1), (b, a, 0)):
            replay = json.loads(arena("play", first, second, *rps, "--seed", 11 + pair, "--json").stdout)
            rewards = [seat["reward"] for seat in replay["seats"]]
            mine, theirs = rewards[b_seat], rewards[1 - b_seat]
            points += 2 if mine > theirs else 0 if mine < theirs else 1
        pairs[points] += 1
    assert compared["pairs"] == pairs
