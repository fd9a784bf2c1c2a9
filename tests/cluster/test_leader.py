"""One leader in the cluster, elected through PostgreSQL: a session-level advisory lock
(``server/cluster/leader.py``), held by the process that runs the ladder's scheduler and the
rater. First the election alone, in this process (two ``Leadership`` objects on the tests'
private PostgreSQL, one session ended from the database side); then real processes
(``arena serve --role``, ``nodes.py``): fronts and workers competing, the ladder run by the
leader with its matches played by workers, and the leader killed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import anyio
import asyncpg
import pytest

from server.cluster import Leadership
from server.storage import leader_application_name
from tests.cluster.nodes import eventually

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

RETRY_S = 0.5
# A follower takes over a lock freed by a session's end at its next try: within RETRY_S, plus
# a connection and a round trip or two on a loaded 2-core machine.
TAKEOVER_S = RETRY_S + 5.0


async def terminate(url: str, name: str) -> int:
    """End the leader session of the process named ``name`` from the database side, found by its
    application_name; the pid it had."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = $1", leader_application_name(name))
    finally:
        await conn.close()
    assert [row[1] for row in rows] == [True], rows
    pid: int = rows[0][0]
    return pid


async def test_a_leader_whose_session_is_terminated_stops_and_another_takes_over(postgres_url: str) -> None:
    running: list[str] = []  # the processes whose work runs now
    terms: list[str] = []  # every start of work, in order

    async def lead(name: str) -> None:
        running.append(name)
        terms.append(name)
        try:
            await anyio.sleep_forever()
        finally:
            running.remove(name)

    one = Leadership(postgres_url, functools.partial(lead, "one"), name="one", retry_s=RETRY_S)
    two = Leadership(postgres_url, functools.partial(lead, "two"), name="two", retry_s=RETRY_S)
    async with anyio.create_task_group() as tg:
        await tg.start(one.run)
        await tg.start(two.run)
        # The first to try leads; the other knows who does.
        assert (one.is_leader, two.is_leader) == (True, False)
        await eventually(holds(lambda: running == ["one"]), 5)
        assert two.leader == "one" and one.leader == "one"

        pid = await terminate(postgres_url, "one")
        assert pid == one.backend_pid
        await eventually(holds(lambda: two.is_leader), TAKEOVER_S, every_s=0.01)
        await eventually(holds(lambda: running == ["two"]), 5)
        assert one.is_leader is False and "one" not in running
        # The old leader connects again and follows.
        await eventually(holds(lambda: one.is_connected and one.leader == "two" and one.backend_pid != pid), 10)
        assert one.terms == 1 and two.terms == 1

        await terminate(postgres_url, "two")
        await eventually(holds(lambda: one.is_leader), TAKEOVER_S, every_s=0.01)
        await eventually(holds(lambda: running == ["one"]), 5)
        assert one.terms == 2 and terms == ["one", "two", "one"]
        tg.cancel_scope.cancel()
    assert running == [] and not one.is_leader and not two.is_leader


def holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``condition`` as ``eventually`` takes it."""
    async def check() -> bool:
        return condition()
    return check
