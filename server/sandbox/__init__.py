"""The sandbox: static validation, the bot runtime, process isolation and limits."""

from .limits import Limits
from .process import SeatProcess, bot_python, open_seat_process

__all__ = ["Limits", "SeatProcess", "bot_python", "open_seat_process"]
