"""``arena play --fail-on-fault``: a played match exits 3 when a seat ended ``TIMEOUT``, ``ERROR``
or ``INVALID``, and 0 as before without the flag or without a fault."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANDOM = ROOT / "server" / "bots" / "tictactoe_random.py"

FAULTS = [
    pytest.param("ERROR", "def agent(observation, configuration):\n    raise ValueError('boom')\n", [],
                 id="raises"),
    pytest.param("INVALID", "def agent(observation, configuration):\n    return 42\n", [], id="illegal-move"),
    pytest.param("TIMEOUT", "from time import sleep\n\n\ndef agent(observation, configuration):\n    sleep(2)\n"
                            "    return observation.board.index(0)\n",
                 ["--config", "actTimeout=0.2", "--config", "remainingOverageTime=0"], id="too-slow"),
]


def play(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "client", "play", *map(str, args), "--game", "tictactoe"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("status", "source", "config"), FAULTS)
def test_a_faulty_seat_exits_3_with_the_flag_only(tmp_path: Path, status: str, source: str, config: list[str]) -> None:
    bot = tmp_path / "bad.py"
    bot.write_text(source, encoding="utf-8")
    flagged = play(bot, RANDOM, *config, "--seed", 1, "--fail-on-fault")
    assert flagged.returncode == 3, flagged.stderr
    assert f"  seat 0  bad.py               {status}" in flagged.stdout
    assert flagged.stdout.endswith("winner: tictactoe_random.py (seat 1)\n")
    assert flagged.stderr.splitlines()[-1] == f"arena: seat 0 bad.py {status} (--fail-on-fault: exit 3)"

    plain = play(bot, RANDOM, *config, "--seed", 1)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == flagged.stdout  # the same match, only the exit status differs
    assert "--fail-on-fault" not in plain.stderr

    doc = play(bot, RANDOM, *config, "--seed", 1, "--fail-on-fault", "--json")
    assert doc.returncode == 3, doc.stderr
    assert [s["status"] for s in json.loads(doc.stdout)["seats"]] == [status, "DONE"]


def test_a_match_without_a_fault_exits_0_with_the_flag() -> None:
    proc = play(RANDOM, ROOT / "server" / "bots" / "tictactoe_minimax.py", "--seed", 3, "--fail-on-fault")
    assert proc.returncode == 0, proc.stderr
    assert "winner:" in proc.stdout and proc.stderr == ""
