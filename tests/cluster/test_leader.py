"""One leader in the cluster, elected through PostgreSQL: a session-level advisory lock
(``server/cluster/leader.py``), held by the process that runs the ladder's scheduler and the
rater. First the election alone, in this process (two ``Leadership`` objects on the tests'
private PostgreSQL, one session ended from the database side); then real processes
(``arena serve --role``, ``nodes.py``): fronts and workers competing, the ladder run by the
leader with its matches played by workers, and the leader killed.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from server.cluster import Leadership
from server.matches.replay import verify_replay
from server.storage import AgentRecord, LadderMatch, MatchStatus, Storage, leader_application_name, open_postgres
from tests.cluster.nodes import Node, eventually, node
from tests.storage.raw import query

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

RETRY_S = 0.5
# A follower takes over a lock freed by a session's end at its next try: within RETRY_S, plus
# a connection and a round trip or two on a loaded 2-core machine. A process killed (SIGKILL)
# frees its lock as soon as its kernel closes its socket, so the same bound holds for it.
TAKEOVER_S = RETRY_S + 5.0
# After a new leader takes over, the ladder creates a new match once a slot is free: when one
# of the (two-second) matches running ends, or one of a killed worker's is run again elsewhere
# (its lease, then the match itself) and ends; on a loaded 2-core machine.
NEW_MATCH_S = TAKEOVER_S + 30.0
SLOTS = 2
FEATURED = 1
# The ladder's settings of every process: its slots, and a leader replaced quickly.
LADDER: dict[str, Any] = {"ladder": True, "ladder_slots": SLOTS, "ladder_featured": FEATURED, "leader_retry_s": RETRY_S}
# Tic-tac-toe, the first empty cell: X wins at the seventh move, some 2 s a match.
SLOW_TICTACTOE = """
from time import sleep

def agent(observation, configuration):
    sleep(0.2)
    return list(observation.board).index(0)
"""


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


async def seed_agents(storage: Storage, n: int) -> list[AgentRecord]:
    """``n`` slow tic-tac-toe agents for the ladder to pair."""
    user = await storage.create_user("alice", "h")
    return [await storage.save_agent(user.id, f"slow-{i}", "tictactoe", SLOW_TICTACTOE) for i in range(n)]


async def leaders(nodes: Sequence[Node]) -> list[Node]:
    """The nodes whose health says they lead (a dead one says nothing)."""
    found = []
    for each in nodes:
        if each.process.returncode is None and (await each.health())["leader"]:
            found.append(each)
    return found


@dataclass
class Slots:
    """The most unfinished ladder matches seen at once, of each kind, by watching storage."""

    rated: int = 0
    featured: int = 0
    seen: set[int] = field(default_factory=set)  # every ladder match seen unfinished

    def add(self, matches: list[LadderMatch]) -> None:
        self.rated = max(self.rated, sum(1 for m in matches if not m.featured))
        self.featured = max(self.featured, sum(1 for m in matches if m.featured))
        self.seen.update(m.id for m in matches)


@asynccontextmanager
async def watching_slots(storage: Storage) -> AsyncIterator[Slots]:
    """Sample the ladder's unfinished matches every 20 ms for as long as the block runs."""
    slots = Slots()

    async def watch() -> None:
        while True:
            slots.add(await storage.unfinished_ladder_matches())
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        yield slots
        tg.cancel_scope.cancel()


async def finished_ladder_matches(storage: Storage, after_id: int = 0) -> list[Any]:
    matches, _ = await storage.list_matches(status=MatchStatus.FINISHED, limit=200)
    return [m for m in matches if m.rated and m.id > after_id]


async def test_two_processes_compete_one_leads_and_a_follower_tells_the_ladder(
    postgres_url: str, tmp_path: Path,
) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        await seed_agents(storage, 4)
        # No worker: the leader's matches stay pending, holding the slots.
        one = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "one.log", **LADDER))
        two = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "two.log", **LADDER))
        await eventually(lambda: _count_pending(storage, SLOTS + FEATURED), 30)
        first, second = await one.health(), await two.health()
        # The first to start took the lock; the other competes and knows who leads.
        assert (first["leader"], second["leader"]) == (True, False)
        assert first["leadership"]["leader"] == first["leadership"]["name"] == second["leadership"]["leader"]
        assert first["leadership"]["name"] != second["leadership"]["name"]
        assert first["leadership"]["terms"] == 1 and second["leadership"]["terms"] == 0
        rows = query(postgres_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE ?",
                     "agent-arena-leader %")
        assert rows == [(2,)]

        # GET /api/ladder on the process that does not lead: from the database, naming the leader.
        led, told = (await one.client.get("/api/ladder")).json(), (await two.client.get("/api/ladder")).json()
        for doc in (led, told):
            assert doc["running"] is True and doc["leader"] == first["leadership"]["name"]
            assert doc["slots"] == {"rated": SLOTS, "featured": FEATURED, "pace_s": 0.3}
            assert doc["live"] == {"rated": SLOTS, "featured": FEATURED}
            (tictactoe,) = [g for g in doc["games"] if g["game"] == "tictactoe"]
            assert tictactoe["agents"] == 4 and len(tictactoe["queue"]) == 4
            assert (tictactoe["live_rated"], tictactoe["live_featured"]) == (SLOTS, FEATURED)
        queue = [e for g in told["games"] if g["game"] == "tictactoe" for e in g["queue"]]
        playing = {m.agent_ids for m in await storage.unfinished_ladder_matches()}
        assert {e["agent_id"] for e in queue if e["playing"]} == {a for ids in playing for a in ids}
        assert all(e["version_matches"] >= 1 for e in queue if e["playing"])
        # Still no more matches than the slots: the follower starts none.
        assert len(await storage.unfinished_ladder_matches()) == SLOTS + FEATURED


async def _count_pending(storage: Storage, n: int) -> bool:
    return len(await storage.unfinished_ladder_matches()) == n


async def test_the_ladder_runs_on_the_leader_and_goes_on_when_the_leader_front_or_worker_is_killed(
    postgres_url: str, tmp_path: Path,
) -> None:
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        agents = await seed_agents(storage, 4)
        slots = await stack.enter_async_context(watching_slots(storage))
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log", **LADDER))
        one = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "one.log", **LADDER))
        two = await stack.enter_async_context(node(postgres_url, "worker", tmp_path / "two.log", **LADDER))
        nodes = [front, one, two]
        workers = {(await w.health())["worker"]: w for w in (one, two)}
        assert [n.role for n in await leaders(nodes)] == ["front"]

        # The front's scheduler creates the matches, the workers run them.
        await eventually(lambda: _finished_at_least(storage, 6), 60)
        finished = await finished_ladder_matches(storage)
        assert {m.worker for m in finished} <= set(workers)
        assert all(len({s.agent_id for s in m.seats}) == 2 and m.tags.get("scheduled") for m in finished)
        assert {s.agent_id for m in finished for s in m.seats} <= {a.id for a in agents}
        for match in finished[:3]:
            report = verify_replay((await front.client.get(f"/api/matches/{match.id}/replay")).json())
            assert report.ok, (match.id, report.problems)

        # The leader (the front) is killed: a worker leads within TAKEOVER_S and the ladder goes on.
        newest = max(slots.seen)
        front.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await front.process.wait()
        await eventually(lambda: _one_leader(nodes), TAKEOVER_S, every_s=0.05)
        print(f"a worker leads {time.monotonic() - killed_at:.2f} s after the leader front was killed")
        (leader,) = await leaders(nodes)
        await eventually(lambda: _started_after(slots, newest), NEW_MATCH_S)
        print(f"the new leader started a ladder match {time.monotonic() - killed_at:.2f} s after the kill")

        # That worker is killed in turn, in the middle of its matches: the other one leads, runs
        # the lost matches again (their leases run out) and the ladder goes on.
        (other,) = [w for w in (one, two) if w is not leader]
        newest = max(slots.seen)
        leader.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await leader.process.wait()
        await eventually(lambda: _one_leader([other]), TAKEOVER_S, every_s=0.05)
        print(f"the other worker leads {time.monotonic() - killed_at:.2f} s after the leader worker was killed")
        await eventually(lambda: _started_after(slots, newest), NEW_MATCH_S)
        print(f"the new leader started a ladder match {time.monotonic() - killed_at:.2f} s after the kill")
        await eventually(lambda: _finished_after(storage, newest), NEW_MATCH_S)
        health = await other.health()
        assert health["leadership"]["terms"] == 1 and health["status"] == "ok", health

    # Never more unfinished ladder matches than the slots, whoever led, whatever was killed.
    assert slots.rated <= SLOTS and slots.featured <= FEATURED, slots
    assert slots.rated == SLOTS and slots.featured == FEATURED  # the slots were used


async def _finished_at_least(storage: Storage, n: int) -> bool:
    return len(await finished_ladder_matches(storage)) >= n


async def _one_leader(nodes: Sequence[Node]) -> bool:
    return len(await leaders(nodes)) == 1


async def _started_after(slots: Slots, match_id: int) -> bool:
    return max(slots.seen) > match_id


async def _finished_after(storage: Storage, match_id: int) -> bool:
    return bool(await finished_ladder_matches(storage, match_id))
