"""The limits on accounts and users hold across the cluster: two fronts as real processes
(``arena serve --role front``, no worker, so challenges stay pending) on the tests' private
PostgreSQL, and requests spread over both.

Storage counts each limit from the rows it bounds, in the transaction that adds the row, under
an advisory lock (``server/storage/quotas.py``), so a user at a limit on front A is refused on
front B with the same words, the hourly limits add up what both fronts stored, and a burst of
requests on both fronts at once passes a limit by none. Every client address here is given in
``X-Forwarded-For``, which the processes of ``nodes.py`` take from 127.0.0.1 (uvicorn's
default), so that each test has addresses of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.cluster.nodes import Node, node
from tests.server.conftest import RPS_ROCK, User

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

JSON = Any
# Room enough that only the limit a test is about binds.
ROOMY = {"concurrent_matches_per_user": 1000, "matches_per_user_hour": 1000, "submissions_per_user_hour": 1000,
         "signups_per_address_hour": 1000, "live_seats_per_address": 1000}
BURST = 16  # requests at once, half on each front


@asynccontextmanager
async def two_fronts(db: str, tmp_path: Path, **limits: int) -> AsyncIterator[tuple[Node, Node]]:
    async with AsyncExitStack() as stack:
        fronts = [await stack.enter_async_context(node(db, "front", tmp_path / f"front_{n}.log", **{**ROOMY, **limits}))
                  for n in ("a", "b")]
        yield fronts[0], fronts[1]


def came_from(address: str, user: User | None = None) -> dict[str, str]:
    return {"X-Forwarded-For": address, **(user.headers if user is not None else {})}


async def sign_up(front: Node, name: str, address: str) -> httpx.Response:
    return await front.client.post("/api/users", json={"name": name}, headers=came_from(address))


async def new_user(front: Node, name: str, address: str) -> User:
    reply = await sign_up(front, name, address)
    assert reply.status_code == 201, reply.text
    return User(reply.json()["user_id"], name, reply.json()["token"])


async def submit(front: Node, user: User, name: str, address: str) -> httpx.Response:
    return await front.client.post("/api/agents", json={"name": name, "game": "rps", "code": RPS_ROCK},
                                   headers=came_from(address, user))


async def challenge(front: Node, user: User, agents: list[int], address: str) -> httpx.Response:
    return await front.client.post("/api/matches", json={"game": "rps", "agents": agents},
                                   headers=came_from(address, user))


async def agents_of(front: Node, user: User, address: str) -> list[int]:
    ids = []
    for name in ("p", "q"):
        reply = await submit(front, user, name, address)
        assert reply.status_code == 201, reply.text
        ids.append(reply.json()["id"])
    return ids


def refusal(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    message: str = reply.json()["error"]["message"]
    return message


async def test_a_user_at_a_limit_on_one_front_is_refused_on_the_other_with_the_same_words(
    postgres_url: str, tmp_path: Path,
) -> None:
    limits = {"concurrent_matches_per_user": 2, "matches_per_user_hour": 3, "submissions_per_user_hour": 3,
              "signups_per_address_hour": 3}
    here = "203.0.113.10"
    async with two_fronts(postgres_url, tmp_path, **limits) as (a, b):
        # Accounts per address and hour: two made on A, one on B; then neither makes a fourth.
        alice = await new_user(a, "alice", here)
        await new_user(a, "bob", here)
        await new_user(b, "carol", here)
        words = {refusal(await sign_up(front, f"dave_{i}", here), 429) for i, front in enumerate((a, b, a))}
        assert words == {"at most 3 new accounts per address per 1 h; try again later"}
        assert (await sign_up(b, "erin", "203.0.113.11")).status_code == 201  # another address has its own

        # Submissions per user and hour, likewise.
        agents = await agents_of(a, alice, here)
        assert (await submit(b, alice, "r", here)).status_code == 201
        words = {refusal(await submit(front, alice, "s", here), 429) for front in (a, b)}
        assert words == {"at most 3 submissions per 1 h; try again later"}

        # Matches at once: one started on each front; neither starts a third.
        started = [(await challenge(front, alice, agents, here)).json() for front in (a, b)]
        assert [m["status"] for m in started] == ["pending", "pending"]
        words = {refusal(await challenge(front, alice, agents, here), 400) for front in (a, b)}
        assert words == {"at most 2 concurrent matches per user"}

        # Matches per hour: one stopped leaves room for a third at once, but not in the hour.
        stop = await a.client.post(f"/api/matches/{started[0]['id']}/abort", headers=alice.headers)
        assert stop.status_code == 200 and stop.json()["status"] == "aborted", stop.text
        assert (await challenge(b, alice, agents, here)).status_code == 201
        stop = await b.client.post(f"/api/matches/{started[1]['id']}/abort", headers=alice.headers)
        assert stop.status_code == 200, stop.text
        words = {refusal(await challenge(front, alice, agents, here), 429) for front in (a, b)}
        assert words == {"at most 3 matches per 1 h; try again later"}


@dataclass(frozen=True, slots=True)
class Burst:
    """Requests at once, half on each front, against one limit of ``limit`` (a setting)."""

    setting: str
    limit: int
    passes: int  # requests that pass it
    status: int  # of a refusal
    words: str  # of a refusal
    # Prepares what the requests need (accounts, agents) on the fronts; returns the request.
    prepare: Callable[[Node, Node, str], Awaitable[Callable[[Node, int], Awaitable[httpx.Response]]]]


async def _signups(a: Node, b: Node, address: str) -> Callable[[Node, int], Awaitable[httpx.Response]]:
    async def request(front: Node, i: int) -> httpx.Response:
        return await sign_up(front, f"burst_{i}", address)

    return request


async def _submissions(a: Node, b: Node, address: str) -> Callable[[Node, int], Awaitable[httpx.Response]]:
    user = await new_user(a, "submitter", address)

    async def request(front: Node, i: int) -> httpx.Response:
        return await submit(front, user, f"bot_{i}", address)

    return request


async def _matches_of_one_user(a: Node, b: Node, address: str) -> Callable[[Node, int], Awaitable[httpx.Response]]:
    user = await new_user(a, "challenger", address)
    agents = await agents_of(b, user, address)

    async def request(front: Node, i: int) -> httpx.Response:
        return await challenge(front, user, agents, address)

    return request


async def _matches_of_one_address(a: Node, b: Node, address: str) -> Callable[[Node, int], Awaitable[httpx.Response]]:
    # Four accounts of one address, each with agents of its own; they take turns in the burst.
    users = [await new_user(front, f"neighbour_{i}", address) for i, front in enumerate((a, b, a, b))]
    agents = [await agents_of(a, user, address) for user in users]

    async def request(front: Node, i: int) -> httpx.Response:
        n = i % len(users)
        return await challenge(front, users[n], agents[n], address)

    return request


BURSTS = {
    "signups": Burst("signups_per_address_hour", 5, 5, 429,
                     "at most 5 new accounts per address per 1 h; try again later", _signups),
    "submissions": Burst("submissions_per_user_hour", 4, 4, 429, "at most 4 submissions per 1 h; try again later",
                         _submissions),
    # Two agents each are submitted before the burst.
    "matches per hour": Burst("matches_per_user_hour", 5, 5, 429, "at most 5 matches per 1 h; try again later",
                              _matches_of_one_user),
    "matches at once": Burst("concurrent_matches_per_user", 3, 3, 400, "at most 3 concurrent matches per user",
                             _matches_of_one_user),
    # Six seats: three two-seat matches, whichever accounts of the address start them.
    "live seats": Burst("live_seats_per_address", 6, 3, 429, "the accounts signed up from your address hold 6 live "
                        "seats, at most 6 at once (this rps match needs 2); try again when one of their matches has "
                        "ended", _matches_of_one_address),
}


@pytest.mark.parametrize("kind", list(BURSTS))
async def test_a_burst_on_both_fronts_at_once_passes_a_limit_by_none(
    postgres_url: str, tmp_path: Path, kind: str,
) -> None:
    burst = BURSTS[kind]
    async with two_fronts(postgres_url, tmp_path, **{burst.setting: burst.limit}) as (a, b):
        request = await burst.prepare(a, b, "198.51.100.20")
        replies: dict[int, httpx.Response] = {}

        async def one(front: Node, i: int) -> None:
            replies[i] = await request(front, i)

        async with anyio.create_task_group() as tg:
            for i, front in zip(range(BURST), itertools.cycle((a, b)), strict=False):
                tg.start_soon(one, front, i)
    statuses = [replies[i].status_code for i in range(BURST)]
    assert statuses.count(201) == burst.passes, [r.text for r in replies.values()]
    assert statuses.count(burst.status) == BURST - burst.passes, statuses
    for reply in replies.values():
        if reply.status_code != 201:
            assert refusal(reply, burst.status) == burst.words, reply.text
