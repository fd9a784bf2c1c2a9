"""Another user's match, started before an abuse and checked after it: it must finish normally,
and ``GET /api/health`` must still say ``ok``."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.server.conftest import RPS_CYCLE, RPS_SLOW, User, wait_finished

# About two seconds of play (a few ms a move on one side): long enough to span most abuses.
BYSTANDER_STEPS = 300


@dataclass(frozen=True, slots=True)
class Bystander:
    user: User
    match_id: int
    headers: dict[str, str]  # extra headers of its requests (its client address, behind a trusted proxy)


async def start_bystander(client: httpx.AsyncClient, name: str = "carol",
                          headers: dict[str, str] | None = None) -> Bystander:
    """Sign ``name`` up, submit two rps bots and start a match between them."""
    extra = headers or {}
    response = await client.post("/api/users", json={"name": name}, headers=extra)
    assert response.status_code == 201, response.text
    user = User(response.json()["user_id"], name, response.json()["token"])
    ids = []
    for agent_name, code in ((f"{name}_slow", RPS_SLOW), (f"{name}_cycle", RPS_CYCLE)):
        response = await client.post("/api/agents", json={"name": agent_name, "game": "rps", "code": code},
                                     headers={**user.headers, **extra})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    response = await client.post("/api/matches", json={"game": "rps", "agents": ids,
                                                       "config": {"episodeSteps": BYSTANDER_STEPS}},
                                 headers={**user.headers, **extra})
    assert response.status_code == 201, response.text
    return Bystander(user, response.json()["id"], extra)


async def check_bystander(client: httpx.AsyncClient, bystander: Bystander) -> None:
    """The bystander's match finished normally (every seat DONE), and the server says it is ok."""
    doc = await wait_finished(client, bystander.match_id, timeout_s=120)
    assert doc["status"] == "finished", doc
    assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"], doc
    health = await client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
