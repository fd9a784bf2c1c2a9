"""The limits of ``quotas.py`` on SQLite: each counted in the writer's transaction that adds the
row it bounds, before the row is added. One writer runs at a time (``BEGIN IMMEDIATE``), so
the count and the insert of one request come wholly before or after another's: no lock of
our own is needed. The bodies of the inserts are ``_accounts.py``'s and ``_matches.py``'s.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from . import _accounts, _matches
from .base import AgentRecord, MatchRecord, UserRecord
from .quotas import HOUR_S, SIGNUPS, SUBMISSIONS, ChallengeQuota, rate_limited

__all__: list[str] = []

# In the order ChallengeQuota.check takes them: the user's unfinished challenges, the user's
# challenges of the last hour, the seats of the unfinished challenges counted against an address.
CHALLENGE_COUNTS = """
    SELECT (SELECT count(*) FROM matches WHERE started_by = {user} AND status IN ('pending', 'live')),
           (SELECT count(*) FROM matches WHERE started_by = {user} AND created_at > {since}),
           (SELECT count(*) FROM match_seats s JOIN matches m ON m.id = s.match_id
            WHERE m.held_by = {holder} AND m.status IN ('pending', 'live'))
"""
SIGNUP_COUNT = "SELECT count(*) FROM users WHERE created_from = {address} AND created_at > {since}"
SUBMISSION_COUNT = """
    SELECT count(*) FROM agent_versions v JOIN agents a ON a.id = v.agent_id
    WHERE a.user_id = {user} AND v.created_at > {since}
"""
MARK_CHALLENGE = "UPDATE matches SET started_by = {user}, held_by = {holder} WHERE id = {match}"


def create_user(db: sqlite3.Connection, max_per_hour: int, name: str, token_hash: str, created_from: str,
                now: float) -> UserRecord:
    """A new user made from ``created_from``, unless that address made ``max_per_hour`` within the hour.

    Raises:
        RateLimited: the address's accounts of the last hour are used up.
        NameTaken: the name is taken.
    """
    sql = SIGNUP_COUNT.format(address="?", since="?")
    if db.execute(sql, (created_from, now - HOUR_S)).fetchone()[0] >= max_per_hour:
        raise rate_limited(max_per_hour, SIGNUPS)
    return _accounts.create_user(db, name, token_hash, created_from, now)


def save_agent(db: sqlite3.Connection, max_per_hour: int, user_id: int, name: str, game: str, code: str | None,
               now: float) -> AgentRecord:
    """A new agent or version of the user's, unless the user stored ``max_per_hour`` within the hour.

    Raises:
        RateLimited: the user's submissions of the last hour are used up.
        UserNotFound, ConfigError: as ``_accounts.save_agent``.
    """
    if db.execute(SUBMISSION_COUNT.format(user="?", since="?"), (user_id, now - HOUR_S)).fetchone()[0] >= max_per_hour:
        raise rate_limited(max_per_hour, SUBMISSIONS)
    return _accounts.save_agent(db, user_id, name, game, code, now)


def create_challenge(db: sqlite3.Connection, quota: ChallengeQuota, game: str, seats: int, now: float,
                     create: tuple[Any, ...]) -> MatchRecord:
    """The ``game`` match of ``seats`` seats that ``_matches.create_match(db, *create)`` stores,
    marked as ``quota``'s user's challenge, held by its holder, unless ``quota`` leaves no room for it.

    Raises:
        RateLimited, ConfigError: as ``ChallengeQuota.check``.
        AgentNotFound: as ``_matches.create_match``.
    """
    sql = CHALLENGE_COUNTS.format(user="?", since="?", holder="?")
    at_once, this_hour, held = db.execute(sql, (quota.user_id, quota.user_id, now - HOUR_S, quota.holder)).fetchone()
    quota.check(at_once=at_once, this_hour=this_hour, held_seats=held, game=game, seats=seats)
    record = _matches.create_match(db, *create)
    db.execute(MARK_CHALLENGE.format(user="?", holder="?", match="?"), (quota.user_id, quota.holder, record.id))
    return record
