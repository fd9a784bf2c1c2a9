"""Server settings, with generous defaults; every limit is configurable (in code or a TOML file)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError
from server.sandbox import Limits

__all__ = ["Settings", "load_settings"]


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
    require_layers: tuple[str, ...] = ()  # sandbox layers that must be active, or the server refuses to start
    # How seats start: "auto" (the fork server when every isolation layer works here, else a fresh
    # process per seat), "fork" (the fork server or refuse to start), "fresh"; see sandbox/forkserver.py.
    seat_mode: str = "auto"
    seat_pool_size: int = 8  # seats the fork server keeps forked ahead of need, for ``limits``
    spectator_queue_frames: int = 256  # a spectator this far behind is dropped
    max_code_bytes: int = 256 << 10
    max_body_bytes: int = 1 << 20
    matches_per_user_hour: int = 600
    submissions_per_user_hour: int = 60
    concurrent_matches_per_user: int = 64
    # Remote agents (/ws/agent): the server pings each connection to measure its round trip and
    # credits up to the cap per move; frames beyond the rate get an error frame.
    remote_ping_interval_s: float = 2.0
    remote_allowance_cap_s: float = 0.25
    remote_frames_per_s: int = 200
    remote_hello_timeout_s: float = 10.0
    remote_connections_per_user: int = 16
    # Test-only: False stores submitted code unchecked (layer 1 off), so that tests can show the
    # layers under it hold on their own. Never turn it off in production.
    validate_submissions: bool = True


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from a TOML file if given (top-level keys as in ``Settings``, a ``[limits]``
    table as in ``Limits``; ``require_layers = "all"`` or a list), then ``overrides`` on top.

    Raises:
        ConfigError: unreadable file, unknown key or wrong type.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    limits = _build(Limits, raw.pop("limits", {}), "limits")
    values = {**raw, **overrides}
    if "db" in values:
        values["db"] = Path(values["db"])
    if "require_layers" in values:
        values["require_layers"] = _layer_names(values["require_layers"])
    if values.get("seat_mode", "auto") not in ("auto", "fork", "fresh"):
        raise ConfigError(f"settings key 'seat_mode' must be 'auto', 'fork' or 'fresh', got {values['seat_mode']!r}")
    settings: Settings = _build(Settings, values, "settings")
    return dataclasses.replace(settings, limits=limits)


def _layer_names(value: Any) -> tuple[str, ...]:
    from server.sandbox.layers import LAYER_NAMES

    names = list(LAYER_NAMES) if value == "all" else value
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LAYER_NAMES))
    if unknown:
        raise ConfigError(f"unknown sandbox layer {', '.join(unknown)}; known layers: {', '.join(LAYER_NAMES)}")
    return tuple(names)


def _build(cls: Any, values: dict[str, Any], what: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    defaults = cls()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected) and not (expected is tuple and isinstance(value, tuple)):
            raise ConfigError(f"{what} key {key!r} must be {expected.__name__}, got {value!r}")
    return cls(**values)
