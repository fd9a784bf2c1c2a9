"""No failure inside one match, or one pass of a background task, ends the app (issue 10, 1).

A test-only game whose rules raise a plain ``RuntimeError`` (a bug, as a game plugin may
have) fails inside a real match task on a real server: that match is stored ``aborted`` with
the reason and its spectators get ``end``, while another user's match started before finishes
normally, the API carries on and ``GET /api/health`` stays ``ok`` (counting the error). A
game whose config check raises stops the ladder's scheduler for that game only, and health
says so (503, ``degraded``); closed storage makes it say ``failing``; a rating pass that fails
is reported until one succeeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

import server.matches.games as games
from server.app import create_app
from server.health import Component, Health
from server.ladder.ratings import Rater
from server.matches.games import RockPaperScissors
from server.matches.hub import Hub
from server.storage import RatedMatch, SqliteStorage, open_sqlite
from tests.security.processes import descendants, describe
from tests.server.conftest import (
    RPS_CYCLE,
    RPS_ROCK,
    RPS_SLOW,
    User,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

JSON = Any
FAILING_STEP = 3


class BrokenRules(RockPaperScissors):
    """Rock-paper-scissors whose rules have a bug: the third step raises."""

    name: ClassVar[str] = "brokenrules"
    title: ClassVar[str] = "Broken rules (tests)"

    def apply(self, actions: Mapping[int, JSON]) -> None:
        if self.step + 1 == FAILING_STEP:
            raise RuntimeError(f"a bug in the rules at step {FAILING_STEP}")
        super().apply(actions)


class BrokenCheck(RockPaperScissors):
    """Rock-paper-scissors whose config check has a bug: every match fails to start."""

    name: ClassVar[str] = "brokencheck"
    title: ClassVar[str] = "Broken config check (tests)"

    @classmethod
    def check_config(cls, config: Mapping[str, JSON]) -> None:
        raise RuntimeError("a bug in the config check")


@pytest.fixture
def broken_games(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The built-in games and the two broken ones, as if installed as plugins (no other plugin)."""
    registry = games._Registry((*games.BUILTIN_GAMES, BrokenRules, BrokenCheck), "agent_arena.games.tests-only")
    monkeypatch.setattr(games, "GAMES", registry)
    yield


async def health_of(client: httpx.AsyncClient) -> tuple[int, JSON]:
    response = await client.get("/api/health")
    return response.status_code, response.json()


async def spectate_to_end(client: httpx.AsyncClient, match_id: int) -> list[JSON]:
    frames: list[JSON] = []
    with anyio.fail_after(20):
        async with connect(ws_url(client, f"/ws/matches/{match_id}")) as ws:
            while not frames or frames[-1]["type"] != "end":
                frames.append(json.loads(await ws.recv()))
    return frames


async def rps_pair(client: httpx.AsyncClient, user: User, game: str = "rps") -> list[int]:
    first = await submit_agent(client, user, f"{user.name}_{game}_a", game, RPS_SLOW)
    second = await submit_agent(client, user, f"{user.name}_{game}_b", game, RPS_CYCLE)
    return [first["id"], second["id"]]


async def test_a_match_whose_rules_raise_is_aborted_and_the_server_goes_on(
    broken_games: None, tmp_path: Path
) -> None:
    # Fresh seats are this process's children, so that none can be left over unseen (beside what
    # the test process ran before: a fork server an earlier test started lives until it exits).
    earlier = set(descendants(os.getpid()))
    async with api_client(quiet_settings(tmp_path, seat_mode="fresh")) as client:
        bob = await create_user(client, "bob")
        mallory = await create_user(client, "mallory")
        before = await start_match(client, bob, "rps", await rps_pair(client, bob), {"episodeSteps": 300}, seed=3)

        broken = await start_match(client, mallory, "brokenrules", await rps_pair(client, mallory, "brokenrules"))
        aborted = await wait_finished(client, broken["id"])
        assert aborted["status"] == "aborted"
        bug = f"RuntimeError: a bug in the rules at step {FAILING_STEP}"
        assert aborted["reason"] == f"aborted by an internal error: {bug}"
        frames = await spectate_to_end(client, broken["id"])
        assert frames[-1]["result"]["status"] == "aborted" and frames[-1]["result"]["reason"] == aborted["reason"]
        replay = (await client.get(f"/api/matches/{broken['id']}/replay")).json()
        assert [step["step"] for step in replay["steps"]] == list(range(FAILING_STEP))  # stored up to the failure

        # The other user's match, live all along, ends as it would have.
        finished = await wait_finished(client, before["id"])
        assert finished["status"] == "finished" and finished["reason"] is None
        assert [s["status"] for s in finished["seats"]] == ["DONE", "DONE"] and finished["steps"] == 300

        # The API and storage carry on: a new account plays a new match to its end.
        carol = await create_user(client, "carol")
        after = await start_match(client, carol, "rps", await rps_pair(client, carol), {"episodeSteps": 20})
        assert (await wait_finished(client, after["id"]))["status"] == "finished"
        status, health = await health_of(client)
        assert status == 200 and health["status"] == "ok", health
        assert health["components"]["storage"] == {"status": "ok"}
        assert health["components"]["matches"]["internal_errors"] == 1
        assert health["components"]["matches"]["last_internal_error"].startswith(f"match {broken['id']}: RuntimeError")
        assert health["live_matches"] == 0
        left = [describe(pid) for pid in descendants(os.getpid()) if pid not in earlier]
        assert left == []  # every seat is gone


async def test_many_failing_matches_at_once_leave_the_others_alone(broken_games: None, tmp_path: Path) -> None:
    async with api_client(quiet_settings(tmp_path)) as client:
        bob = await create_user(client, "bob")
        mallory = await create_user(client, "mallory")
        before = await start_match(client, bob, "rps", await rps_pair(client, bob), {"episodeSteps": 200}, seed=4)
        pair = await rps_pair(client, mallory, "brokenrules")
        broken = [await start_match(client, mallory, "brokenrules", pair) for _ in range(8)]
        for match in broken:
            assert (await wait_finished(client, match["id"]))["status"] == "aborted"
        assert (await wait_finished(client, before["id"]))["status"] == "finished"
        status, health = await health_of(client)
        assert status == 200 and health["status"] == "ok"
        assert health["components"]["matches"]["internal_errors"] == len(broken)


async def test_a_failing_scheduler_is_reported_and_the_ladder_goes_on(broken_games: None, tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, ladder=True, ladder_slots=2, ladder_featured=0)
    async with api_client(settings) as client:
        status, health = await health_of(client)
        assert status == 200 and health["status"] == "ok"
        assert health["components"]["scheduler"] == {"status": "ok"}
        owner = await create_user(client, "owner")
        await rps_pair(client, owner, "brokencheck")  # the scheduler's attempts at this game raise
        await rps_pair(client, owner, "rps")  # ... while it keeps playing rps
        with anyio.fail_after(30):
            status, health = await health_of(client)
            while status == 200:
                await anyio.sleep(0.05)
                status, health = await health_of(client)
        assert status == 503 and health["status"] == "degraded", health
        scheduler = health["components"]["scheduler"]
        assert scheduler["status"] == "failing" and scheduler["failures"] >= 1
        assert scheduler["reason"] == "cannot start a brokencheck match: RuntimeError: a bug in the config check"
        assert health["components"]["storage"] == {"status": "ok"}
        # The ladder still plays the game it can.
        with anyio.fail_after(30):
            while True:
                page = (await client.get("/api/matches?status=finished")).json()["items"]
                if any(m["game"] == "rps" and m["tags"].get("scheduled") for m in page):
                    break
                await anyio.sleep(0.1)


async def test_health_says_failing_when_storage_fails(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path)
    app = create_app(settings)
    async with api_client(settings, app=app) as client:
        bob = await create_user(client, "bob")
        rock = await submit_agent(client, bob, "rock", "rps", RPS_ROCK)
        cycle = await submit_agent(client, bob, "cycle", "rps", RPS_CYCLE)
        match = await start_match(client, bob, "rps", [rock["id"], cycle["id"]], {"episodeSteps": 10})
        await wait_finished(client, match["id"])
        assert (await client.get("/api/health")).status_code == 200

        state: Any = app.state.arena
        await state.storage.close()
        status, health = await health_of(client)
        assert status == 503 and health["status"] == "failing", health
        storage = health["components"]["storage"]
        assert storage["status"] == "failing" and "storage is closed" in storage["reason"]
        assert [layer["name"] for layer in health["sandbox"]["layers"]][0] == "static_analysis"


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


class FlakyStorage:
    """Real storage whose rating pass fails while ``is_failing`` (a disk error, say)."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.is_failing = True

    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        if self.is_failing:
            raise RuntimeError("disk I/O error")
        return await self.storage.rate_finished(limit)


async def test_the_rating_task_reports_its_failure_until_a_pass_succeeds(tmp_path: Path) -> None:
    health = Health()
    async with open_sqlite(tmp_path / "arena.db") as storage:
        flaky = FlakyStorage(storage)
        rater = Rater(flaky, Hub(), health=health)  # type: ignore[arg-type]  # only rate_finished is used
        async with anyio.create_task_group() as tg:
            await tg.start(rater.run)
            await until(lambda: Component.RATINGS in health.failures())
            failure = health.failures()[Component.RATINGS]
            assert failure.reason == "cannot rate finished matches: RuntimeError: disk I/O error"
            flaky.is_failing = False  # the next try (after a pause) succeeds and clears it
            await until(lambda: Component.RATINGS not in health.failures())
            tg.cancel_scope.cancel()

