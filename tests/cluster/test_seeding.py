"""Processes of a cluster that start at once on a fresh database each seed the example bots: the
ones that come second take what the first stored (the tests' PostgreSQL, several storages)."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from server.app import seed_examples
from server.bots import example_bots
from server.storage import AgentRecord, open_postgres
from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(120)]


async def test_processes_seeding_together_store_the_examples_once(postgres_url: str) -> None:
    async with AsyncExitStack() as stack:
        storages = [await stack.enter_async_context(open_postgres(postgres_url)) for _ in range(4)]
        seeded: list[list[AgentRecord]] = []

        async def seed(i: int) -> None:
            seeded.append(await seed_examples(storages[i]))

        async with anyio.create_task_group() as tg:
            for i in range(len(storages)):
                tg.start_soon(seed, i)
    examples = sum(len(bots) for bots in example_bots().values())
    assert query(postgres_url, "SELECT count(*) FROM users WHERE name = 'arena'") == [(1,)]
    [(agents,)] = query(postgres_url, "SELECT count(*) FROM agents a JOIN users u ON u.id = a.user_id"
                                      " WHERE u.name = 'arena'")
    assert agents == examples
    assert len(seeded) == len(storages)
    assert all(sorted(a.id for a in agents) == sorted(a.id for a in seeded[0]) for agents in seeded)
