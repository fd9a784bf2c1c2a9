"""Server settings, with generous defaults; every limit is configurable (in code or a TOML file)."""

from __future__ import annotations

import dataclasses
import math
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.codec import MAX_FRAME_BYTES
from protocol.errors import ConfigError
from server.matches.games import GAMES, ConfigRanges
from server.matches.runner import DEFAULT_MAX_ACTION_BYTES
from server.sandbox import Limits
from server.sandbox.layers import LAYER_NAMES
from server.sandbox.limits import seat_cpu_s
from server.storage import is_postgres_url

__all__ = ["ROLES", "Settings", "load_settings"]

ROLES = ("all", "front", "worker")

# Limits on input that must allow at least one of what they count.
_POSITIVE_LIMITS = (
    "max_action_bytes", "max_code_bytes", "max_body_bytes", "max_frame_bytes", "sockets_per_address",
    "spectators_per_match", "read_only_frames_per_s", "requests_per_client", "requests_per_client_s",
    "matches_per_user_hour",
    "submissions_per_user_hour", "concurrent_matches_per_user", "signups_per_address_hour",
    "live_seats_per_address", "remote_frames_per_s", "remote_connections_per_user", "spectator_queue_frames",
)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # The database: an SQLite file (a path, or sqlite:///path) or postgresql://USER:PASSWORD@HOST:PORT/DB.
    db: str = "arena.db"
    # What this process does (DESIGN.md, "Scale beyond one machine"): "all" (the default, one
    # process does everything), "front" (HTTP, pages, sockets; stores matches for workers) or
    # "worker" (runs the matches it claims; serves only GET /api/health). front and worker
    # need PostgreSQL.
    role: str = "all"
    # SIGTERM (or a first Ctrl-C) drains the process before it stops (server/drain.py): no new
    # match starts, and those live may run on this long before they are stopped, stored aborted.
    drain_timeout_s: float = 30.0
    # The match queue (PostgreSQL): a worker's claim on a match holds lease_s unless renewed
    # (renewed every third of it); a match whose worker was lost this many times is aborted.
    # worker_name identifies the process in the matches it runs ("": the host's name, with the
    # port for a worker); a process started again under its name aborts what it left live, so
    # two processes that run matches on one machine (role all) need names of their own.
    lease_s: float = 10.0
    max_attempts: int = 3
    worker_name: str = ""
    worker_matches: int = 0  # matches a worker runs at once (0: four per CPU)
    claim_poll_s: float = 0.25  # how often an idle worker looks for a match to claim
    # One process of a cluster runs the ladder's scheduler and the rater: the one holding the
    # leader lock (server/cluster/leader.py); each other process with the ladder on tries to take
    # it this often, so a dead leader is replaced within about this long.
    leader_retry_s: float = 2.0
    ladder: bool = True  # keep matches between seeded agents running
    seed_examples: bool = True  # store the built-in example bots on start
    # Fair time under load (server/matches/cores.py): at most this many sandboxed seats think at
    # once; a turn waits for a place before its clock starts (0: one per CPU this process may use).
    thinking_seats: int = 0
    # The ladder (server/ladder/scheduler.py): rated matches run unpaced, ladder_slots at once (0: as many
    # as the CPUs this process may use); a few featured ones are paced for people to watch.
    ladder_slots: int = 0
    ladder_featured: int = 2
    ladder_pace_s: float = 0.3  # least time per step of featured matches
    # The seat's limits. limits.cpu_s is not set by hand: it follows from the time controls'
    # ranges (see __post_init__), so that a bot that keeps its time never hits it first.
    limits: Limits = field(default_factory=Limits)
    # Ranges of match configuration values, the settings file's [config_ranges] table (see
    # server/matches/games/ranges.py); a request outside them gets 422.
    config_ranges: ConfigRanges = field(default_factory=ConfigRanges)
    # Users who may stop any match (POST /api/matches/{id}/abort), by id: anyone can register a name.
    operators: tuple[int, ...] = ()
    require_layers: tuple[str, ...] = ()  # sandbox layers that must be active, or the server refuses to start
    # How seats start: "auto" (the fork server when every isolation layer works here, else a fresh
    # process per seat), "fork" (the fork server or refuse to start), "fresh"; see sandbox/launch.py.
    seat_mode: str = "auto"
    seat_pool_size: int = 8  # seats the fork server keeps forked ahead of need, for ``limits``
    spectator_queue_frames: int = 256  # a spectator this far behind is dropped
    # A live match keeps only its latest events in memory (at least the two bounds around it);
    # a snapshot carries the latest of them, no more than this many and about this many bytes.
    # Older events are in storage: GET /api/matches/{id}/events pages them.
    spectator_window_events: int = 512
    spectator_snapshot_events: int = 256
    spectator_snapshot_bytes: int = 1 << 20
    max_action_bytes: int = DEFAULT_MAX_ACTION_BYTES  # one action, as JSON: a larger one is INVALID, not stored
    max_code_bytes: int = 256 << 10
    max_body_bytes: int = 1 << 20
    # A WebSocket frame of this size or more gets an error frame and is ignored (at most the
    # protocol's 1 MiB); the transport cuts a socket whose frame passes a few times it (close
    # code 1009) rather than buffer it (server/http/transport.py).
    max_frame_bytes: int = MAX_FRAME_BYTES
    # Open WebSockets per client address and spectators per match, on each process that serves
    # them: beyond them a new socket is refused (4429, and 1013 for a full match).
    sockets_per_address: int = 2048
    spectators_per_match: int = 2000
    # HTTP requests of one client (its token, or without one its address) in the app at a time,
    # and a second on average (in bursts of twice as many): its others wait their turn, delayed
    # rather than refused (server/http/fair.py).
    requests_per_client: int = 4
    requests_per_client_s: int = 100
    # Frames per second a read-only socket (a spectator, the lobby) may send: each gets an error
    # frame; beyond this rate the socket is closed (4429).
    read_only_frames_per_s: int = 100
    matches_per_user_hour: int = 600
    submissions_per_user_hour: int = 60
    concurrent_matches_per_user: int = 64
    # Per client address: accounts are free, so limits per user alone multiply with throwaway
    # accounts. The address is the socket's peer (the ASGI client); behind a reverse proxy, list
    # the proxy in forwarded_allow_ips (comma-separated; empty, the default, trusts no
    # X-Forwarded-For) or every client shares the proxy's address.
    signups_per_address_hour: int = 20
    live_seats_per_address: int = 128  # seats of challenges started by every account of one address
    forwarded_allow_ips: str = ""
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

    @property
    def runs_matches(self) -> bool:
        return self.role != "front"

    @property
    def serves_http(self) -> bool:
        return self.role != "worker"

    def default_worker_name(self) -> str:
        """``worker_name``, or the host's name (with the port for a worker: one per port)."""
        if self.worker_name:
            return self.worker_name
        host = socket.gethostname()
        return f"{host}:{self.port}" if self.role == "worker" else host

    def __post_init__(self) -> None:
        """Check the role against the database and the config ranges against the games, and
        derive the seats' CPU limit from them.

        The fork server prepares seats before their match is known (server/sandbox/forkserver.py),
        so one CPU limit must hold for every match the ranges allow: the largest agentTimeout
        plus the largest runTimeout, as ``seat_cpu_s`` explains.

        Raises:
            ConfigError: a config range that is unknown, too wide or leaves out a default; a
                role other than ``all`` on SQLite.
        """
        if self.role not in ROLES:
            raise ConfigError(f"settings key 'role' must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role != "all" and not is_postgres_url(self.db):
            raise ConfigError(f"--role {self.role} needs a PostgreSQL database (--db postgresql://...); "
                              f"{self.db!r} is SQLite, which one process alone uses (--role all)")
        if not (self.lease_s > 0 and self.max_attempts >= 1 and self.claim_poll_s > 0):
            raise ConfigError("settings keys 'lease_s' and 'claim_poll_s' must be positive and 'max_attempts' "
                              "at least 1")
        if self.thinking_seats < 0:
            raise ConfigError(f"settings key 'thinking_seats' must be 0 (one per CPU) or more, "
                              f"got {self.thinking_seats}")
        for name in _POSITIVE_LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"settings key {name!r} must be a positive integer, got {value!r}")
        if self.max_frame_bytes > MAX_FRAME_BYTES:
            raise ConfigError(f"settings key 'max_frame_bytes' must be at most the protocol's {MAX_FRAME_BYTES} bytes, "
                              f"got {self.max_frame_bytes}")
        if not 0 <= self.drain_timeout_s < math.inf:
            raise ConfigError(f"settings key 'drain_timeout_s' must be 0 or more seconds, got {self.drain_timeout_s!r}")
        if not self.leader_retry_s > 0:
            raise ConfigError(f"settings key 'leader_retry_s' must be positive, got {self.leader_retry_s!r}")
        self.config_ranges.check(GAMES)
        ranges = [self.config_ranges.for_game(game) for game in GAMES.values()]
        cpu_s = max(seat_cpu_s(r["agentTimeout"].high, r["runTimeout"].high, self.limits.grace_s) for r in ranges)
        if cpu_s != self.limits.cpu_s:
            object.__setattr__(self, "limits", dataclasses.replace(self.limits, cpu_s=cpu_s))  # frozen: once, here


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from a TOML file if given (top-level keys as in ``Settings``, a ``[limits]``
    table as in ``Limits`` but for ``cpu_s``, which follows from the time controls; a
    ``[config_ranges]`` table as in ``ConfigRanges.from_table``; ``require_layers = "all"`` or a
    list; ``operators``, a list of user ids), then ``overrides`` on top.

    Raises:
        ConfigError: unreadable file, unknown key or wrong type.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    limits_table = raw.pop("limits", {})
    if isinstance(limits_table, dict) and "cpu_s" in limits_table:
        raise ConfigError("settings key 'limits.cpu_s' is not set by hand: it follows from the time controls "
                          "(the largest agentTimeout + runTimeout of [config_ranges]); set those instead")
    limits = _build(Limits, limits_table, "limits")
    values = {**raw, **overrides}
    if isinstance(values.get("config_ranges"), dict):
        values["config_ranges"] = ConfigRanges.from_table(values["config_ranges"])
    if isinstance(values.get("operators"), list):
        values["operators"] = _user_ids(values["operators"])
    if isinstance(values.get("db"), Path):
        values["db"] = str(values["db"])
    if "require_layers" in values:
        values["require_layers"] = _layer_names(values["require_layers"])
    if values.get("seat_mode", "auto") not in ("auto", "fork", "fresh"):
        raise ConfigError(f"settings key 'seat_mode' must be 'auto', 'fork' or 'fresh', got {values['seat_mode']!r}")
    settings: Settings = _build(Settings, values, "settings")
    return dataclasses.replace(settings, limits=limits)


def _user_ids(value: list[Any]) -> tuple[int, ...]:
    if not all(type(v) is int for v in value):
        raise ConfigError(f"settings key 'operators' must be a list of user ids (integers), got {value!r}")
    return tuple(value)


def _layer_names(value: Any) -> tuple[str, ...]:
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
