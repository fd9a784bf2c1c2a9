"""The match queue in PostgreSQL (``server/storage/_pg_queue.py``): claims under a lease, renewals,
fencing by attempt, giving up after the configured attempts, and a start-up abort that touches
only its own worker's matches. Each storage opened here stands for a process of its own (its
own pool and step writer); leases are short so that they run out within a test."""

from __future__ import annotations

import anyio
import pytest

from protocol.errors import LeaseLost
from server.storage import (
    Lease,
    MatchRecord,
    MatchStatus,
    NewSeat,
    PostgresStorage,
    SeatResult,
    open_postgres,
    open_storage,
)
from tests.storage.raw import query
from tests.storage.test_storage import make_step

LEASE_S = 0.4


async def matches(storage: PostgresStorage, n: int, *, rated: bool = False) -> list[MatchRecord]:
    user = await storage.create_user("alice", "h")
    a = await storage.save_agent(user.id, "a", "tictactoe", "x")
    b = await storage.save_agent(user.id, "b", "tictactoe", "x")
    return [await storage.create_match("tictactoe", 1, {}, i, [NewSeat(a.id, 1), NewSeat(b.id, 1)], rated=rated)
            for i in range(n)]


def results(match: MatchRecord) -> list[SeatResult]:
    return [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", r, None)
            for s, r in zip(match.seats, [1.0, -1.0], strict=True)]


async def test_concurrent_claims_take_distinct_matches(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as one, open_postgres(postgres_url) as two:
        created = await matches(one, 12)
        claimed: dict[str, list[int]] = {"one": [], "two": []}

        async def claim_all(storage: PostgresStorage, name: str) -> None:
            while (record := await storage.claim_match(Lease(name, 30.0), 3)) is not None:
                assert record.worker == name and record.attempt == 1
                claimed[name].append(record.id)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(claim_all, one, "one")
                    tg.start_soon(claim_all, two, "two")
        ids = claimed["one"] + claimed["two"]
        assert sorted(ids) == [m.id for m in created]  # each once, none twice
        assert claimed["one"] and claimed["two"]
        assert (await one.get_match(ids[0])).worker in ("one", "two")


async def test_a_lapsed_lease_is_claimed_again_and_the_old_attempt_is_fenced_out(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as old, open_postgres(postgres_url) as new:
        [match] = await matches(old, 1, rated=True)
        first = await old.claim_match(Lease("old", LEASE_S), 3)
        assert first is not None and first.attempt == 1
        await old.set_match_live(match.id, 1.0)
        await old.append_steps(match.id, [make_step(0), make_step(1)])
        await old.flush()
        assert await new.claim_match(Lease("new", 30.0), 3) is None  # the lease holds

        with anyio.fail_after(10):
            while True:
                second = await new.claim_match(Lease("new", 30.0), 3)
                if second is not None:
                    break
                await anyio.sleep(0.05)
        assert second.id == match.id and second.attempt == 2 and second.worker == "new"
        assert second.status is MatchStatus.PENDING and second.steps == 0
        assert await new.get_steps(match.id) == []  # run again from its seed: the log starts over

        # The old attempt comes back: every write of it is refused, none lands in the new log.
        assert await old.renew_leases(Lease("old", LEASE_S), [match.id]) == {match.id}
        await old.append_steps(match.id, [make_step(2)])
        with pytest.raises(LeaseLost):
            await old.finish_match(match.id, MatchStatus.FINISHED, None, results(match), 2.0)
        with pytest.raises(LeaseLost):
            await old.finish_match(match.id, MatchStatus.FINISHED, None, results(match), 2.0)
        with pytest.raises(LeaseLost):
            await old.set_match_live(match.id, 3.0)

        await new.set_match_live(match.id, 4.0)
        await new.append_steps(match.id, [make_step(0)])
        assert await new.renew_leases(Lease("new", 30.0), [match.id]) == set()
        end = await new.finish_match(match.id, MatchStatus.FINISHED, None, results(match), 5.0)
        assert end.status is MatchStatus.FINISHED and end.steps == 1 and end.attempt == 2
        assert [s.step for s in await new.get_steps(match.id)] == [0]
        assert len(end.rating_changes) == 2  # rated with the result of the attempt that holds it
        assert await new.rate_finished() == [] and await old.rate_finished() == []  # rated once


async def test_stale_steps_written_before_the_claim_are_deleted_with_the_old_attempt(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as old, open_postgres(postgres_url) as new:
        [match] = await matches(old, 1)
        assert await old.claim_match(Lease("old", LEASE_S), 3) is not None
        await old.append_steps(match.id, [make_step(i) for i in range(5)])
        await old.flush()
        await anyio.sleep(LEASE_S + 0.1)
        second = await new.claim_match(Lease("new", 30.0), 3)
        assert second is not None and second.id == match.id
        assert query(postgres_url, "SELECT count(*) FROM match_steps WHERE match_id = ?", match.id) == [(0,)]


async def test_a_match_whose_worker_is_lost_too_often_is_aborted_with_the_reason(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as storage:
        [match] = await matches(storage, 1)
        for attempt in (1, 2):
            record = await storage.claim_match(Lease(f"w{attempt}", 0.05), 2)
            assert record is not None and record.attempt == attempt
            await anyio.sleep(0.1)
        assert await storage.claim_match(Lease("w3", 30.0), 2) is None
        final = await storage.get_match(match.id)
        assert final.status is MatchStatus.ABORTED
        assert final.reason is not None and "2 attempts" in final.reason


async def test_renewal_keeps_a_lease_and_reports_a_stopped_match_lost(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as worker, open_postgres(postgres_url) as front:
        created = await matches(front, 2)
        lease = Lease("w", LEASE_S)
        claimed = [await worker.claim_match(lease, 3) for _ in created]
        assert all(c is not None for c in claimed)
        for _ in range(4):  # renewed past its length: nobody can take it
            await anyio.sleep(LEASE_S / 2)
            assert await worker.renew_leases(lease, [m.id for m in created]) == set()
            assert await front.claim_match(Lease("other", 30.0), 3) is None
        # A front stops one (an owner's abort): the worker learns it at its next renewal.
        await front.finish_match(created[0].id, MatchStatus.ABORTED, "stopped by its owner", created[0].seats, 1.0)
        assert await worker.renew_leases(lease, [m.id for m in created]) == {created[0].id}


async def test_start_up_abort_touches_only_the_workers_own_matches(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as storage:
        created = await matches(storage, 3)
        assert await storage.claim_match(Lease("mine", 30.0), 3) is not None
        assert await storage.claim_match(Lease("theirs", 30.0), 3) is not None
        assert await storage.abort_unfinished("restarted", worker="mine") == 1
        statuses = [(await storage.get_match(m.id)).status for m in created]
        assert statuses == [MatchStatus.ABORTED, MatchStatus.PENDING, MatchStatus.PENDING]


@pytest.mark.both_backends
async def test_a_match_created_with_a_lease_names_its_worker(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        user = await storage.create_user("alice", "h")
        a = await storage.save_agent(user.id, "a", "tictactoe", "x")
        seats = [NewSeat(a.id, 1), NewSeat(a.id, 1)]
        held = await storage.create_match("tictactoe", 1, {}, 1, seats, lease=Lease("here", 30.0))
        free = await storage.create_match("tictactoe", 1, {}, 2, seats)
        assert (held.worker, held.attempt) == ("here", 1)
        assert (free.worker, free.attempt) == (None, 0)
        assert await storage.abort_unfinished("restarted", worker="here") == 1
        assert (await storage.get_match(free.id)).status is MatchStatus.PENDING


async def test_a_held_match_is_not_claimed_by_another_worker(postgres_url: str) -> None:
    async with open_postgres(postgres_url) as storage:
        user = await storage.create_user("alice", "h")
        a = await storage.save_agent(user.id, "a", "tictactoe", "x")
        await storage.create_match("tictactoe", 1, {}, 1, [NewSeat(a.id, 1)] * 2, lease=Lease("all", 30.0))
        assert await storage.claim_match(Lease("worker", 30.0), 3) is None
