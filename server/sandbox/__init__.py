"""The sandbox: static validation, the bot runtime, process isolation and limits."""

from .forkserver import SeatMode, SeatModeStatus, seat_mode_status, serve_seats
from .limits import Limits
from .process import SeatProcess, bot_python, open_seat_process

__all__ = [
    "Limits", "SeatMode", "SeatModeStatus", "SeatProcess", "bot_python", "open_seat_process", "seat_mode_status",
    "serve_seats",
]  # fmt: skip
