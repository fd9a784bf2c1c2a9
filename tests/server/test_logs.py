"""``arena serve --log-format json`` (issue 14, part 7): every line the server writes (stderr and stdout),
its own and uvicorn's, is one JSON object with time, level, logger and message, and the lines
about a match or an agent carry its id."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from server.logs import JsonFormatter
from tests.client.serving import call, serving
from tests.server.conftest import RPS_CYCLE

pytestmark = pytest.mark.timeout(90)


def test_a_json_server_logs_one_object_a_line_with_the_ids(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"  # its stdout and stderr: nothing but JSON lines
    with serving(tmp_path / "arena.db", log, "--log-format", "json") as url:
        token = call(f"{url}/api/users", {"name": "logger"})["token"]
        agents = [call(f"{url}/api/agents", {"name": name, "game": "rps", "code": RPS_CYCLE}, token)["id"]
                  for name in ("a", "b")]
        match_id = call(f"{url}/api/matches", {"game": "rps", "agents": agents, "config": {"episodeSteps": 20}},
                        token)["id"]
        deadline = time.monotonic() + 30
        while call(f"{url}/api/matches/{match_id}")["status"] != "finished":
            assert time.monotonic() < deadline, "the match did not finish"
            time.sleep(0.05)
        call(f"{url}/api/agents/{agents[0]}")
        with connect(url.replace("http://", "ws://") + f"/ws/matches/{match_id}", proxy=None) as spectator:
            assert json.loads(spectator.recv(timeout=10))["type"] == "snapshot"

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line, not some
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    about_match = [entry for entry in entries if entry.get("match_id") == match_id]
    # The manager's line at its end, the requests for it and the spectator's socket, each with its id.
    ended = [e for e in about_match if e["logger"] == "server.matches.manager"]
    assert len(ended) == 1 and ended[0]["level"] == "INFO" and "finished after 19 moves" in ended[0]["message"]
    assert any(e["logger"] == "uvicorn.access" and e["method"] == "GET" and e["status"] == 200
               and e["path"] == f"/api/matches/{match_id}" for e in about_match)
    assert any("WebSocket" in e["message"] for e in about_match)
    assert any(e.get("agent_id") == agents[0] and e["logger"] == "uvicorn.access" for e in entries)
    # A line about no match carries no id.
    assert all("match_id" not in e for e in entries if e["message"].startswith("Started server process"))


def test_a_record_with_an_extra_id_and_an_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("server.test").makeRecord(
            "server.test", logging.ERROR, __file__, 1, "the store failed\nfor %s", ("reasons",), sys.exc_info(),
            extra={"match_id": 7})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["match_id"] == 7 and "agent_id" not in entry
    assert entry["message"] == "the store failed\nfor reasons" and entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback") and "ValueError: boom" in entry["exception"]
