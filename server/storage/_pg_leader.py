"""The cluster's leader lock: a session-level advisory lock on a connection of its own.

One process of a cluster leads (runs the ladder's scheduler and the rater; see
``server/cluster/leader.py``): the one whose session holds the advisory lock ``_LEADER_LOCK``.
A session-level lock, unlike the transaction-level ones of migrations and rating passes, lives
as long as the session: taken with ``pg_try_advisory_lock`` (which never waits), it is held
until the holder unlocks it or its session ends, whatever the session does meanwhile. So the
lock is on a connection of its own (``listen`` with no channel: the pool's connections are
shared and reset), and PostgreSQL itself hands it over: when the leader's session ends (the
process died and its kernel closed the socket, the connection was terminated, the network
dropped it) the lock is free, and the next process that tries takes it.

The session is named ``agent-arena-leader NAME`` in ``pg_stat_activity`` (NAME: the process's,
e.g. its host and port), which is how any process (or an operator, or a test) learns who
leads: the holder of the lock, as ``pg_locks`` shows it, named by its session.

A peer that vanishes without closing its socket (a machine switched off, a network cut) is
noticed by the server only through TCP: keepalives, which by default start after two hours of
silence, or the retransmissions of an answer never acknowledged, which by default go on for
about fifteen minutes. The session asks for keepalives after ``KEEPALIVE_IDLE_S``, giving up
after ``KEEPALIVE_COUNT`` probes ``KEEPALIVE_INTERVAL_S`` apart, and for an answer to be
acknowledged within ``SILENCE_S`` (``tcp_user_timeout``), so such a lock is free again about
``SILENCE_S`` (11 s) after the last word from its holder. A process that is only paused
(SIGSTOP) answers both from its kernel and keeps the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ._pg_listen import Session, listen

__all__ = ["LEADER_APPLICATION_NAME", "LeaderSession", "leader_application_name", "open_leader_session"]

# The leader's connection's name in pg_stat_activity, followed by a space and the process's name.
LEADER_APPLICATION_NAME = "agent-arena-leader"
_MAX_NAME_BYTES = 63  # PostgreSQL keeps this much of an application_name (NAMEDATALEN - 1)

# pg_try_advisory_lock key: the cluster's leader ("arena" + 3, as an int64).
_LEADER_LOCK = 0x6172656E6103

KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3
SILENCE_S = KEEPALIVE_IDLE_S + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL_S

# Who holds the lock: a bigint key is held as classid (its high 32 bits), objid (its low ones)
# and objsubid 1, in the current database.
_HOLDER = """
    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295)
"""


class LeaderSession(Session):
    """A connection that competes for the leader lock; open one with :func:`open_leader_session`."""

    async def try_lead(self) -> bool:
        """Take the leader lock if nobody holds it (never waits); whether this session holds it now."""
        return bool(await self._call("try the leader lock",
                                     self._conn.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK)))

    async def leader(self) -> str | None:
        """The name of the process that holds the leader lock, or None when nobody does."""
        name = await self._call("read who leads", self._conn.fetchval(_HOLDER, _LEADER_LOCK))
        if name is None:
            return None
        return str(name).removeprefix(LEADER_APPLICATION_NAME).strip() or None


def leader_application_name(name: str) -> str:
    """The ``application_name`` of the leader session of the process named ``name``, as
    PostgreSQL keeps it (its first 63 bytes)."""
    full = f"{LEADER_APPLICATION_NAME} {name}".encode()[:_MAX_NAME_BYTES]
    return full.decode(errors="ignore")


@asynccontextmanager
async def open_leader_session(url: str, name: str, on_lost: Callable[[], None]) -> AsyncIterator[LeaderSession]:
    """Connect to the database at ``url`` for the process named ``name``, with short TCP
    keepalives; ``on_lost`` is called if the connection closes before the block exits. On exit
    the connection is dropped, and the lock with it if this session held it.

    Raises:
        StorageError: the server cannot be reached or refuses the login.
    """
    async with listen(url, {}, on_lost, leader_application_name(name)) as conn:
        session = LeaderSession(conn)
        # Settings of this session only; on a Unix socket they do nothing, and need not.
        await session._call("set keepalives", conn.execute(
            f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S}; SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S};"
            f" SET tcp_keepalives_count = {KEEPALIVE_COUNT}; SET tcp_user_timeout = {SILENCE_S * 1000}"))
        yield session
