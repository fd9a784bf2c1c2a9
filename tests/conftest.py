"""Fixtures every test directory shares: the seat launchers that tests open seats with.

Seats are opened through a launcher passed down explicitly, as the server's match manager gets
the app's (``server/sandbox/launch.py``). The session owns one in the default mode, ``auto``: its
fork server starts with the first test that asks for it and stops when the session ends, and
serves every test that opens default seats. Its processes are children of this one while it
runs (``tests/matches/test_runner.py`` accounts for them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.sandbox import SeatLauncher


@pytest.fixture(scope="session")
def launcher() -> Iterator[SeatLauncher]:
    """The session's seat launcher, in the default mode ("auto"), and its fork server if it runs here."""
    seats = SeatLauncher.launch()
    try:
        yield seats
    finally:
        seats.close()


@pytest.fixture
def fork_launcher(launcher: SeatLauncher) -> SeatLauncher:
    """Seats that must be forked ("fork" mode): the session's fork server, or a refusal without it."""
    return SeatLauncher("fork", launcher.server, reason=launcher.reason)
