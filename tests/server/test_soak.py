"""The soak (``scripts/soak.py``) for half a minute, and the invariants of its report.

The real server as a subprocess under the soak's whole load: the ladder and challenges between
instant bots, 1,000 spectator sockets joining and leaving, 20 remote agents that disconnect and
reconnect, steady submissions. Whatever the machine's load, none of it may make a sandboxed
seat time out or fault (every bot answers at once with a legal move), lose a spectator an event,
leave a match unfinished, keep descriptors the load opened once it is over, or leave a process
behind when the server stops. No speed is asserted: the figures are the report's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FDS_SLACK = 32  # descriptors the server may hold at the end beyond its start (both readings idle)


def test_half_a_minute_of_soak_keeps_every_invariant() -> None:
    run = subprocess.run([sys.executable, "-m", "scripts.soak", "--minutes", "0.5", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=540, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    print(json.dumps(report))
    matches, spectators, remote, server = (report["matches"], report["spectators"], report["remote_agents"],
                                           report["server"])

    # The load was there: matches of every kind, spectators, remote agents, submissions.
    assert matches["finished"] > 0 and matches["rated"] > 0
    assert spectators["sockets"] == 1000 and spectators["joins"] > 0 and spectators["events"] > 0
    assert spectators["latency_p99_ms"] is not None
    assert remote["agents"] == 20 and remote["turns"] > 0 and remote["connections"] > remote["agents"]
    assert report["requests"].get("submission: 201", 0) > 0
    assert any(key.startswith("challenge (tight clock): 201") for key in report["requests"])

    # What the server must hold under it.
    assert report["timeouts_server_caused"] == 0
    assert not [fault for fault in report["faults"] if fault.endswith("sandboxed")], report["faults"]
    assert spectators["seq_gaps"] == 0
    assert matches["unfinished"] == 0 and matches["drained_s"] is not None
    assert server["fds_peak"] > server["fds_start"] + 100  # the load's sockets were the server's for a while
    assert server["fds_end"] <= server["fds_start"] + FDS_SLACK, server
    assert server["children_left"] == 0, server["left"]
