"""Free accounts no longer multiply the per-user limits (issue 10, item 5), on a real server.

Account creation is limited per client address, and the live seats of the challenges started
by every account signed up from one address share one bound. The address is the socket's
peer: ``X-Forwarded-For`` counts only from a proxy the operator lists in
``forwarded_allow_ips`` (none by default). Each test also checks that another user's match,
started before the abuse, finishes normally and that ``GET /api/health`` stays ok.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest

from server.config import Settings
from tests.server.agent_client import open_agent, play, recv, rps_cycle
from tests.server.bystander import check_bystander, start_bystander
from tests.server.conftest import RPS_ROCK, User, api_client, wait_finished
from tests.server.ladder_client import open_lobby, read_until

pytestmark = pytest.mark.timeout(120)

JSON = Any
HELD_CONFIG = {"episodeSteps": 3, "agentTimeout": 30}  # live until the test connects its remote agent


def came_from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def sign_up(client: httpx.AsyncClient, name: str, address: str | None = None) -> httpx.Response:
    return await client.post("/api/users", json={"name": name}, headers=came_from(address) if address else None)


async def test_account_creation_is_limited_per_address_and_forwarded_for_is_not_trusted(settings: Settings) -> None:
    async with api_client(settings) as client:  # the default limit: 20 new accounts an hour per address
        carol = await start_bystander(client)  # one of them
        # A burst of 30, each claiming another address: none is trusted, all come from one peer.
        replies: dict[int, httpx.Response] = {}

        async def one(i: int) -> None:
            replies[i] = await sign_up(client, f"throwaway{i}", f"203.0.113.{i + 1}")

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i)
        statuses = [replies[i].status_code for i in range(30)]
        assert statuses.count(201) == settings.signups_per_address_hour - 1 == 19
        assert statuses.count(429) == 11
        for reply in replies.values():
            if reply.status_code == 429:
                error = reply.json()["error"]
                assert error["code"] == "rate_limited" and "accounts per address" in error["message"]
        # The accounts that were made work; carol's match ran on undisturbed.
        made = next(r for r in replies.values() if r.status_code == 201).json()
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {made['token']}"})
        assert me.status_code == 200 and me.json()["name"] == made["name"]
        await check_bystander(client, carol)


async def test_live_seats_are_bound_per_address_across_its_accounts(settings: Settings) -> None:
    behind_proxy = replace(settings, forwarded_allow_ips="127.0.0.1", signups_per_address_hour=4,
                           live_seats_per_address=4)
    attacker, elsewhere = "203.0.113.5", "203.0.113.6"
    async with api_client(behind_proxy) as client, open_lobby(client) as lobby:
        carol = await start_bystander(client, headers=came_from("198.51.100.7"))
        accounts = []
        for i in range(4):
            reply = await sign_up(client, f"m{i}", attacker)
            assert reply.status_code == 201, reply.text
            accounts.append(User(reply.json()["user_id"], f"m{i}", reply.json()["token"]))
        refused = await sign_up(client, "m4", attacker)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        other = await sign_up(client, "neighbour", elsewhere)  # the limit is per address
        assert other.status_code == 201, other.text
        neighbour = User(other.json()["user_id"], "neighbour", other.json()["token"])

        async def agents_of(user: User, address: str) -> list[int]:
            ids = []
            for body in ({"name": f"{user.name}_remote", "game": "rps", "remote": True},
                         {"name": f"{user.name}_rock", "game": "rps", "code": RPS_ROCK}):
                reply = await client.post("/api/agents", json=body, headers={**user.headers, **came_from(address)})
                assert reply.status_code == 201, reply.text
                ids.append(reply.json()["id"])
            return ids

        async def challenge(user: User, agents: list[int], address: str) -> httpx.Response:
            return await client.post("/api/matches", json={"game": "rps", "agents": agents, "config": HELD_CONFIG},
                                     headers={**user.headers, **came_from(address)})

        pairs = [await agents_of(user, attacker) for user in accounts[:3]]
        # Two accounts of one address fill its four seats with matches that wait for their remote agent.
        held = []
        for user, pair in zip(accounts[:2], pairs[:2], strict=True):
            reply = await challenge(user, pair, attacker)
            assert reply.status_code == 201, reply.text
            held.append(reply.json())
        # A third account of that address is refused, even calling from elsewhere: its seats
        # count where it signed up.
        for address in (attacker, "192.0.2.9"):
            reply = await challenge(accounts[2], pairs[2], address)
            assert reply.status_code == 429, reply.text
            error = reply.json()["error"]
            assert error["code"] == "rate_limited" and "live seats" in error["message"]
        # Another address is not affected.
        reply = await challenge(neighbour, await agents_of(neighbour, elsewhere), elsewhere)
        assert reply.status_code == 201, reply.text
        neighbour_match = reply.json()

        # Once one held match ends, its seats are free again.
        frames: list[JSON] = []
        async with open_agent(client, accounts[0]) as ws:
            await recv(ws, "welcome")
            await play(ws, rps_cycle)
        await read_until(lobby, frames, lambda fs: any(
            f["type"] == "match_ended" and f["match"]["id"] == held[0]["id"] for f in fs))
        reply = await challenge(accounts[2], pairs[2], attacker)
        assert reply.status_code == 201, reply.text
        third = reply.json()

        # Every held match plays to its end once its remote agent connects.
        for user, match in ((accounts[1], held[1]), (accounts[2], third), (neighbour, neighbour_match)):
            async with open_agent(client, user) as ws:
                await recv(ws, "welcome")
                await play(ws, rps_cycle)
            doc = await wait_finished(client, match["id"])
            assert [s["status"] for s in doc["seats"]] == ["DONE", "DONE"], json.dumps(doc)
        await check_bystander(client, carol)
