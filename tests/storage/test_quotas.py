"""Limits counted by storage from the rows they bound (``server/storage/quotas.py``), on both
backends: what counts (a refused request does not; the ladder's matches count for nobody; a
match stops counting at once when it ends; an hour slides), and, on PostgreSQL, two storages
(two processes) at once that never pass a limit together. The words of each refusal are
those the HTTP API has always given."""

from __future__ import annotations

import time

import anyio
import pytest

from protocol.errors import ConfigError, NameTaken, RateLimited
from server.storage import ChallengeQuota, MatchStatus, NewSeat, Storage, open_postgres, open_storage
from tests.storage.raw import query

pytestmark = pytest.mark.both_backends

HERE, THERE = "203.0.113.1", "203.0.113.2"


def quota(user_id: int, holder: str = HERE, *, at_once: int = 100, per_hour: int = 100,
          seats: int = 100) -> ChallengeQuota:
    return ChallengeQuota(user_id, holder, max_at_once=at_once, max_per_hour=per_hour, max_holder_seats=seats)


async def challenge(storage: Storage, agents: list[int], limits: ChallengeQuota) -> int:
    record = await storage.create_match("rps", 1, {}, 7, [NewSeat(a, 1) for a in agents],
                                        {"user_id": limits.user_id}, quota=limits)
    return record.id


async def test_accounts_per_address_count_what_was_made_in_the_last_hour(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        await storage.create_user("ann", "h1", HERE, max_per_hour=2)
        with pytest.raises(NameTaken):  # refused: made nothing, so it counts for nothing
            await storage.create_user("ann", "h2", HERE, max_per_hour=2)
        await storage.create_user("bob", "h3", HERE, max_per_hour=2)
        with pytest.raises(RateLimited, match=r"^at most 2 new accounts per address per 1 h; try again later$"):
            await storage.create_user("cid", "h4", HERE, max_per_hour=2)
        await storage.create_user("cid", "h5", THERE, max_per_hour=2)  # another address has its own
        await storage.create_user("dan", "h6", HERE)  # no limit asked for (the examples' owner)
        # An hour later the first of them no longer counts.
        query(db_url, "UPDATE users SET created_at = created_at - 3601 WHERE name = 'ann'")
        await storage.create_user("eve", "h7", HERE, max_per_hour=3)


async def test_submissions_per_user_count_the_versions_stored_in_the_last_hour(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        ann = await storage.create_user("ann", "h1", HERE)
        bob = await storage.create_user("bob", "h2", HERE)
        await storage.save_agent(ann.id, "a", "rps", "x", max_per_hour=2)
        await storage.save_agent(ann.id, "a", "rps", "y", max_per_hour=2)  # a new version is a submission too
        with pytest.raises(RateLimited, match=r"^at most 2 submissions per 1 h; try again later$"):
            await storage.save_agent(ann.id, "b", "rps", "x", max_per_hour=2)
        await storage.save_agent(bob.id, "b", "rps", "x", max_per_hour=2)  # per user
        query(db_url, "UPDATE agent_versions SET created_at = created_at - 3601 WHERE version = 1")
        agent = await storage.save_agent(ann.id, "a", "rps", "z", max_per_hour=2)
        assert agent.version == 3


async def test_a_challenge_counts_its_users_matches_and_its_addresses_seats(db_url: str) -> None:
    async with open_storage(db_url) as storage:
        ann = await storage.create_user("ann", "h1", HERE)
        bob = await storage.create_user("bob", "h2", HERE)
        old = await storage.create_user("old", "h3")  # from before addresses were kept
        agents = [(await storage.save_agent(ann.id, name, "rps", "x")).id for name in ("a", "b")]

        # At once: pending and live matches count; one that ended does not.
        first = await challenge(storage, agents, quota(ann.id, at_once=2))
        await challenge(storage, agents, quota(ann.id, at_once=2))
        with pytest.raises(ConfigError, match=r"^at most 2 concurrent matches per user$"):
            await challenge(storage, agents, quota(ann.id, at_once=2))
        await storage.set_match_live(first, time.time())
        with pytest.raises(ConfigError):
            await challenge(storage, agents, quota(ann.id, at_once=2))
        record = await storage.get_match(first)
        await storage.finish_match(first, MatchStatus.ABORTED, "stopped", record.seats, time.time())
        await challenge(storage, agents, quota(ann.id, at_once=2))

        # Per hour: the three stored so far, ended or not.
        with pytest.raises(RateLimited, match=r"^at most 3 matches per 1 h; try again later$"):
            await challenge(storage, agents, quota(ann.id, per_hour=3))

        # Seats: every account of the address together (ann holds 4 live seats); bob is refused.
        words = (r"^the accounts signed up from your address hold 4 live seats, at most 5 at once \(this rps match "
                 r"needs 2\); try again when one of their matches has ended$")
        with pytest.raises(RateLimited, match=words):
            await challenge(storage, agents, quota(bob.id, seats=5))
        await challenge(storage, agents, quota(bob.id, THERE, seats=5))  # counted where it is held
        # An account from before addresses were kept is held where it calls from.
        with pytest.raises(RateLimited):
            await challenge(storage, agents, quota(old.id, HERE, seats=5))
        await challenge(storage, agents, quota(old.id, THERE, seats=5))

        # The ladder's matches count for nobody.
        for _ in range(3):
            await storage.create_match("rps", 1, {}, 7, [NewSeat(a, 1) for a in agents], {}, rated=True)
        await challenge(storage, agents, quota(bob.id, THERE, seats=6, at_once=2))

        # An hour later a match no longer counts per hour (and still does at once while unfinished).
        query(db_url, "UPDATE matches SET created_at = created_at - 3601")
        with pytest.raises(ConfigError):
            await challenge(storage, agents, quota(ann.id, per_hour=3, at_once=2))
        await challenge(storage, agents, quota(ann.id, per_hour=1, at_once=3))


async def test_two_storages_at_once_never_pass_a_limit_together(postgres_url: str) -> None:
    # Two pools, as two fronts have: 40 challenges at once for room for 5, and 40 signups for 7.
    async with open_postgres(postgres_url) as one, open_postgres(postgres_url) as two:
        ann = await one.create_user("ann", "h", HERE)
        agents = [(await one.save_agent(ann.id, name, "rps", "x")).id for name in ("a", "b")]
        outcomes: list[str] = []

        async def attempt(storage: Storage, i: int) -> None:
            try:
                if i % 2:
                    await challenge(storage, agents, quota(ann.id, at_once=5))
                else:
                    await storage.create_user(f"u{i}", f"h{i}", THERE, max_per_hour=7)
                outcomes.append(f"made {i % 2}")
            except (RateLimited, ConfigError) as exc:
                outcomes.append(type(exc).__name__)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(80):
                    tg.start_soon(attempt, (one, two)[i // 2 % 2], i)
    assert sorted(outcomes) == sorted(["made 1"] * 5 + ["made 0"] * 7 + ["ConfigError"] * 35 + ["RateLimited"] * 33)
