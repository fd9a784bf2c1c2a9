"""A match's storage costs a handful of trips to the database threads, not one per statement.

Every storage call is one job for a database thread (``server/storage/_thread.py``), and the
step writer stores a batch of steps per job: a whole match, from ``POST /api/matches`` through
its end, takes a bounded number of trips however many steps it has. The bound is generous (a
200-step match takes about ten today); one trip per step or per statement would break it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from server.app import create_app
from server.state import ArenaState
from server.storage import SqliteStorage
from tests.server.conftest import RPS_CYCLE, create_user, quiet_settings, running_server, submit_agent

MATCHES = 4
STEPS = 200
MAX_TRIPS_PER_MATCH = 25


async def test_a_match_costs_a_bounded_number_of_storage_trips(tmp_path: Path) -> None:
    app = create_app(quiet_settings(tmp_path))
    async with running_server(quiet_settings(tmp_path), app=app) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, "tripper")
        agents = [(await submit_agent(client, user, f"cycle{n}", "rps", RPS_CYCLE))["id"] for n in (1, 2)]
        state: ArenaState = app.state.arena
        assert isinstance(state.storage, SqliteStorage)
        before = state.storage.trips
        for _ in range(MATCHES):
            created = await client.post("/api/matches", headers=user.headers, json={
                "game": "rps", "agents": agents, "config": {"episodeSteps": STEPS}})
            assert created.status_code == 201, created.text
            match_id = created.json()["id"]
            with anyio.fail_after(30):
                while match_id in state.manager.running:  # noqa: ASYNC110 - polled in memory: no storage trip
                    await anyio.sleep(0.02)
            trips = state.storage.trips  # before the check below, which reads the match
            match = (await client.get(f"/api/matches/{match_id}")).json()
            assert match["status"] == "finished" and match["steps"] == STEPS, match
            before += state.storage.trips - trips  # the check's own trips are not the match's
        per_match = (state.storage.trips - before) / MATCHES
    assert per_match <= MAX_TRIPS_PER_MATCH, f"{per_match:.1f} storage trips per match of {STEPS} steps"
