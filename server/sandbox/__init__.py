"""The sandbox: static validation, launching seats (fresh or forked), isolation and limits.

What runs inside a seat lives in ``seat/`` (copied into its filesystem view, standard library
only); everything else here is the server's side.
"""

from .launch import SeatLauncher, SeatMode, SeatModeStatus, serve_seats
from .limits import Limits
from .process import SeatProcess, bot_python

__all__ = [
    "Limits", "SeatLauncher", "SeatMode", "SeatModeStatus", "SeatProcess", "bot_python", "serve_seats",
]  # fmt: skip
