"""Limits that hold across every process of an arena, counted by storage from the rows they bound.

Theory of operation
-------------------
Accounts are free and a cluster has several fronts, so a limit that a process keeps in its
memory holds per process: a user would multiply it by the number of fronts (and on a front,
which runs no match, a count of the matches it runs is always 0). These limits are counted by
storage instead, from the rows they bound, in the transaction that adds the row:

- accounts made from one client address in the last hour (``users.created_from``);
- agent versions a user stored in the last hour (a submission is a version);
- for a challenge (``POST /api/matches``, a :class:`ChallengeQuota`): the user's unfinished
  challenges (``matches.started_by``), the user's challenges stored in the last hour, and the
  seats of the unfinished challenges counted against the client address its user signed up
  from (``matches.held_by``), whichever of that address's accounts started them.

Two requests at once, on two processes, must not both pass a limit that has room for one. On
SQLite one writer runs at a time (``BEGIN IMMEDIATE``): the count and the insert of one request
come wholly before or after another's. On PostgreSQL, at READ COMMITTED, two transactions could
each count before the other inserts, so each first takes a transaction-level advisory lock on
what it counts (``_pg_quotas.py``); the second waits for the first's commit, then counts its
row. A request refused stores nothing, so it counts for nothing.

An hour is a sliding window on the clocks of the processes that stored the rows; fronts whose
clocks disagree by seconds move it by as much. Each process also refuses, without asking the
database, what its own memory already counts over a limit (``server/http/ratelimit.py``):
a cheap first gate against a flood, worded alike (:func:`rate_limited`).

Not counted here: a user's agent connections (``server/matches/remote.py``) and a connection's
frames per second (``server/http/agent_ws.py``). They bound what a connection costs the front
that holds it (its sockets, its memory, its event loop), which is each front's own to protect;
a connection adds no row, no match and no rating, and a front that dies takes its connections
with it, where a count kept in the database would outlive them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import ConfigError, RateLimited

__all__ = ["HOUR_S", "MATCHES", "SIGNUPS", "SUBMISSIONS", "ChallengeQuota", "rate_limited"]

HOUR_S = 3600.0
# What each hourly limit counts, as its refusal names it.
SIGNUPS = "new accounts per address"
SUBMISSIONS = "submissions"
MATCHES = "matches"


def rate_limited(limit: int, what: str, window_s: float = HOUR_S) -> RateLimited:
    """The refusal of one more of ``what`` beyond ``limit`` per ``window_s``, worded alike wherever it is counted."""
    return RateLimited(f"at most {limit} {what} per {window_s / 3600:g} h; try again later")


@dataclass(frozen=True, slots=True)
class ChallengeQuota:
    """What a user's challenge must stay within, counted when it is stored (see the module
    docstring). ``holder`` is the client address whose accounts' live seats count together:
    where the user signed up, or, for an account from before addresses were kept, where it
    calls from."""

    user_id: int
    holder: str
    max_at_once: int  # the user's unfinished challenges
    max_per_hour: int  # the user's challenges stored in the last hour
    max_holder_seats: int  # seats of the unfinished challenges counted against ``holder``

    def check(self, *, at_once: int, this_hour: int, held_seats: int, game: str, seats: int) -> None:
        """Refuse a ``game`` challenge of ``seats`` seats when the counts so far leave no room for it.

        Raises:
            RateLimited: the user's hourly matches, or the holder's live seats, are used up.
            ConfigError: the user has ``max_at_once`` unfinished challenges.
        """
        if this_hour >= self.max_per_hour:
            raise rate_limited(self.max_per_hour, MATCHES)
        if at_once >= self.max_at_once:
            raise ConfigError(f"at most {self.max_at_once} concurrent matches per user")
        if held_seats + seats > self.max_holder_seats:
            raise RateLimited(
                f"the accounts signed up from your address hold {held_seats} live seats, at most "
                f"{self.max_holder_seats} at once (this {game} match needs {seats}); try again when one of "
                "their matches has ended")
