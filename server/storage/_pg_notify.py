"""Wake-ups between the processes of one PostgreSQL database: what a notification says, and sending one.

Theory of operation
-------------------
In a cluster a match runs on a worker process and its spectators watch it on front processes;
the ``match_steps`` table is the replay log and the outbox between them. A notification is only
a wake-up: PostgreSQL drops those sent while a listener is disconnected, so a front reads what
is new from the tables (``_pg_listen.py``), and a lost notification costs latency (until the
front's next poll), never a step.

There is one channel, :data:`CHANNEL`, and a payload is one line of text:

- ``steps 12:40,13:7``: a batch of the step writer was committed, and with it the steps of
  match 12 up to step 40 and of match 13 up to step 7. The writer sends one per batch, in the
  batch's own transaction (so it is delivered at the commit, and only if there is one), not one
  per step: a transaction that notifies takes a database-wide lock at its commit, which a batch
  pays once for all its steps. A batch of matches too many to name within
  :data:`MAX_PAYLOAD_BYTES` (PostgreSQL refuses 8,000 bytes and more) says ``steps *``: any
  match may have new steps.
- ``started 12``: match 12 went live (its steps follow).
- ``ended 12``: the end of match 12 is committed, after every step of it; ``ended *``: matches
  ended, too many to name (every unfinished one aborted at once). A rated match's rating is
  committed with its end: its rating changes are in the rating history by then.
- ``rated 12,13``: the backfill rater rated matches 12 and 13, finished earlier but left
  unrated (``_pg_ratings.rate_finished``). A pass that rated more than one payload can name
  sends several.

A payload this code does not understand (a newer version's) reads as "anything may have
changed": :data:`EVERYTHING`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._pg_schema import Conn
from ._steps import StepRow

__all__ = ["CHANNEL", "EVERYTHING", "MAX_PAYLOAD_BYTES", "Notice", "notify_ended", "notify_rated", "notify_started",
           "notify_steps", "parse_notice", "rated_payloads", "steps_payload"]

CHANNEL = "arena_events"
# Well under PostgreSQL's 8,000 bytes: some 250 matches of one batch by name, 16 bytes each at most.
MAX_PAYLOAD_BYTES = 4000


@dataclass(frozen=True, slots=True)
class Notice:
    """What one notification says; ``None`` stands for "any match" (read all you follow)."""

    steps: Mapping[int, int] | None = field(default_factory=dict)  # match id -> its newest committed step
    started: tuple[int, ...] = ()
    ended: tuple[int, ...] | None = ()
    rated: tuple[int, ...] = ()  # rated after their end, by the backfill


EVERYTHING = Notice(steps=None, ended=None)


def steps_payload(rows: Sequence[StepRow]) -> str:
    """The payload announcing a committed batch of step rows."""
    newest: dict[int, int] = {}
    for match_id, step, _ in rows:
        if step > newest.get(match_id, -1):
            newest[match_id] = step
    text = "steps " + ",".join(f"{match_id}:{step}" for match_id, step in newest.items())
    return text if len(text) <= MAX_PAYLOAD_BYTES else "steps *"


def parse_notice(payload: str) -> Notice:
    """What a payload says (:data:`EVERYTHING` for one this code does not understand)."""
    kind, _, rest = payload.partition(" ")
    try:
        if kind == "steps":
            if rest == "*":
                return Notice(steps=None)
            pairs = (item.split(":") for item in rest.split(","))
            return Notice(steps={int(match_id): int(step) for match_id, step in pairs})
        if kind == "started":
            return Notice(started=(int(rest),))
        if kind == "ended":
            return Notice(ended=None if rest == "*" else (int(rest),))
        if kind == "rated":
            return Notice(rated=tuple(int(item) for item in rest.split(",")))
    except ValueError:
        pass
    return EVERYTHING


async def notify_steps(conn: Conn, rows: Sequence[StepRow]) -> None:
    """Inside the transaction that stores ``rows``: wake the listeners when it commits."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, steps_payload(rows))


async def notify_started(conn: Conn, match_id: int) -> None:
    """Inside the transaction that sets the match live."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"started {match_id}")


async def notify_ended(conn: Conn, match_id: int | None) -> None:
    """Inside the transaction that stores the end of the match (``None``: of several matches)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"ended {'*' if match_id is None else match_id}")


def rated_payloads(match_ids: Sequence[int]) -> list[str]:
    """The payloads announcing that the backfill rated these matches, each within the limit."""
    payloads: list[str] = []
    text = ""
    for match_id in match_ids:
        if text and len(text) + 1 + len(str(match_id)) > MAX_PAYLOAD_BYTES:
            payloads.append(text)
            text = ""
        text = f"{text},{match_id}" if text else f"rated {match_id}"
    return [*payloads, text] if text else payloads


async def notify_rated(conn: Conn, match_ids: Sequence[int]) -> None:
    """Inside the transaction of a backfill pass that rates these matches."""
    for payload in rated_payloads(match_ids):
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
