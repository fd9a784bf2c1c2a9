"""Server settings, with generous defaults; every limit is configurable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server.sandbox import Limits

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    db: Path = Path("arena.db")
    ladder: bool = True  # keep matches between seeded agents running
    seed_examples: bool = True  # store the built-in example bots on start
    ladder_matches: int = 4  # matches the scheduler keeps live at once
    ladder_pace_s: float = 0.3  # least time per step of scheduled matches, so people can watch them
    limits: Limits = field(default_factory=Limits)
    spectator_queue_frames: int = 256  # a spectator this far behind is dropped
    max_code_bytes: int = 256 << 10
    max_body_bytes: int = 1 << 20
    matches_per_user_hour: int = 600
    submissions_per_user_hour: int = 60
    concurrent_matches_per_user: int = 64
