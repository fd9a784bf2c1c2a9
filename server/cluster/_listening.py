"""A listening connection kept open for as long as its task runs: connected again after a loss,
and watched, since asyncpg notices a connection the server closed but not one that stopped answering."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anyio
from anyio.abc import TaskStatus

from protocol.errors import StorageError, describe_error
from server.storage import Session, listen

__all__ = ["keep_listening"]

log = logging.getLogger(__name__)

PING_INTERVAL_S = 2.0  # the connection is checked this often
TIMEOUT_S = 10.0  # a check that takes longer means the connection is dead
RECONNECT_MIN_S = 0.05  # the first back-off after losing the connection, doubled up to the max
RECONNECT_MAX_S = 5.0


async def keep_listening(
    url: str, channels: Mapping[str, Callable[[str], None]], application_name: str,
    on_connected: Callable[[], None], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """LISTEN on ``channels`` (each payload to its callable) until cancelled, on a connection
    named ``application_name``; ``on_connected`` is called after each (re)connection, since
    notifications sent meanwhile were lost. Started once the first connection listens.

    Raises:
        StorageError: the first connection failed (later ones are tried again until one works).
    """
    delay = RECONNECT_MIN_S
    is_started = False
    while True:
        lost = anyio.Event()
        try:
            async with listen(url, channels, lost.set, application_name) as conn:
                session = Session(conn)
                on_connected()
                if not is_started:
                    task_status.started()
                    is_started = True
                delay = RECONNECT_MIN_S
                while True:
                    with anyio.move_on_after(PING_INTERVAL_S):
                        await lost.wait()
                    if lost.is_set() or session.is_closed():
                        raise StorageError("the server closed the listening connection")
                    try:
                        with anyio.fail_after(TIMEOUT_S):
                            await session.ping()
                    except TimeoutError:
                        raise StorageError(f"the listening connection did not answer in {TIMEOUT_S:g} s") from None
        except StorageError as exc:
            if not is_started:
                raise
            log.warning("%s: %s; connecting again in %.2f s", application_name, describe_error(exc), delay)
        await anyio.sleep(delay)
        delay = min(2 * delay, RECONNECT_MAX_S)
