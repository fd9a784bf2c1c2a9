"""The storage interface: what the arena keeps, behind one small async protocol.

SQLite (``server/storage/sqlite.py``) and PostgreSQL (``server/storage/postgres.py``)
implement it alike: the same records, errors and guarantees, the same schema versions.
Records are frozen values; JSON columns come back as Python values. List calls page with an
opaque cursor: ``(items, next_cursor_or_None)``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from protocol.codec import encode
from protocol.messages import JSON, StepRecord

from .quotas import ChallengeQuota

__all__ = [
    "MAX_ROW_ID",
    "AgentRecord",
    "EncodedStep",
    "LadderMatch",
    "Lease",
    "MatchQueue",
    "MatchRecord",
    "MatchStatus",
    "NewSeat",
    "RatedMatch",
    "RatingChange",
    "RatingRecord",
    "SeatResult",
    "Storage",
    "UserRecord",
]

# The largest id (and integer) a row can hold: SQLite's INTEGER and PostgreSQL's BIGINT are 64-bit
# signed. A larger id names nothing, so lookups answer "not found" instead of overflowing the driver.
MAX_ROW_ID = (1 << 63) - 1


class MatchStatus(enum.StrEnum):
    PENDING = "pending"
    LIVE = "live"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user; ``created_from`` is the client address that signed it up (``None`` for users
    from before addresses were kept, and for the examples' owner)."""

    id: int
    name: str
    created_at: float
    created_from: str | None = None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A submitted agent; ``code`` is ``None`` for remote agents. A resubmission under the
    same (owner, name) gets the same id and the next ``version``."""

    id: int
    user_id: int
    owner: str
    name: str
    game: str
    version: int
    remote: bool
    code: str | None
    created_at: float
    updated_at: float
    disabled: bool = False  # by its owner: not scheduled, and new matches refuse it


@dataclass(frozen=True, slots=True)
class EncodedStep:
    """A step with its JSON text, encoded once: storage keeps ``text`` as the step's row and the
    hub builds the spectators' ``event`` frame around it."""

    record: StepRecord
    text: str

    @classmethod
    def of(cls, record: StepRecord) -> EncodedStep:
        return cls(record, encode(record).decode())


@dataclass(frozen=True, slots=True)
class NewSeat:
    agent_id: int
    version: int


@dataclass(frozen=True, slots=True)
class SeatResult:
    """One seat of a match: who played and, once finished, how it ended."""

    agent_id: int
    agent_name: str
    owner: str
    version: int
    status: str | None = None  # DONE, TIMEOUT, ERROR, INVALID once finished
    reward: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MatchRecord:
    id: int
    game: str
    rules_version: int
    status: MatchStatus
    reason: str | None
    config: dict[str, JSON]
    seed: int
    seats: list[SeatResult]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    steps: int = 0
    tags: dict[str, JSON] = field(default_factory=dict)
    rated: bool = False  # a ladder match between distinct agents: only these move ratings
    worker: str | None = None  # the worker that runs or ran it; None while pending
    attempt: int = 0  # how many times a worker has claimed it (1 unless a worker was lost)
    # The seats' rating changes, on the record ``finish_match`` returns for a rated match it
    # rated with the result (in seat order; empty on every other record: the rating history
    # keeps them). Not part of the match's value: records of one match compare equal with or
    # without them.
    rating_changes: tuple[RatingChange, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class LadderMatch:
    """A ladder match not ended yet (pending or live), as the scheduler counts its slots: its
    game, whether it is featured (paced for people to watch), and its agents in seat order."""

    id: int
    game: str
    featured: bool
    agent_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Lease:
    """Who runs a match, and for how long a claim holds unless renewed: a worker's name (unique
    per process) and the lease's length. On SQLite (one process) the name is kept and nothing
    expires."""

    worker: str
    lease_s: float


@dataclass(frozen=True, slots=True)
class RatingRecord:
    """An agent's ladder rating in its game (across its versions); an agent without a rated
    match has the model's default (``matches == 0``, ``updated_at`` and ``last_match_id`` None).
    ``rating`` is the displayed, conservative number (see ``server/ladder/rules.py``)."""

    agent_id: int
    game: str
    mu: float
    sigma: float
    rating: float
    matches: int = 0  # rated matches played
    updated_at: float | None = None
    last_match_id: int | None = None


@dataclass(frozen=True, slots=True)
class RatingChange:
    """One seat's rating before and after a rated match."""

    agent_id: int
    name: str
    owner: str
    before: RatingRecord
    after: RatingRecord


@dataclass(frozen=True, slots=True)
class RatedMatch:
    """A finished match the ladder has processed: its seats' changes, none when it was not
    rated (one agent in every seat)."""

    match_id: int
    game: str
    changes: list[RatingChange]


class Storage(Protocol):
    """Everything the arena persists. All methods are safe to call concurrently."""

    # users and tokens
    async def create_user(
        self, name: str, token_hash: str, created_from: str | None = None, *, max_per_hour: int | None = None,
    ) -> UserRecord:
        """A new user; with ``max_per_hour``, only if ``created_from`` made fewer within the hour,
        counted across every process (``quotas.py``). Raises: NameTaken, RateLimited."""
        ...

    async def user_by_token_hash(self, token_hash: str) -> UserRecord | None: ...
    async def get_user_by_name(self, name: str) -> UserRecord | None: ...

    async def rotate_token(self, user_id: int, token_hash: str) -> None:
        """Replace the user's token hash: the old token stops working at once. Raises: UserNotFound."""
        ...

    # agents
    async def save_agent(
        self, user_id: int, name: str, game: str, code: str | None, *, max_per_hour: int | None = None,
    ) -> AgentRecord:
        """Create an agent, or store a new version of the owner's agent of that name; with
        ``max_per_hour``, only if the owner stored fewer versions within the hour, counted across
        every process (``quotas.py``). Raises: UserNotFound, ConfigError, RateLimited."""
        ...

    async def get_agent(self, agent_id: int) -> AgentRecord:
        """Raises: AgentNotFound."""
        ...

    async def get_agents(self, agent_ids: Sequence[int]) -> dict[int, AgentRecord]:
        """These agents by id, in one query; unknown ids are left out."""
        ...

    async def update_agent(
        self, agent_id: int, *, name: str | None = None, disabled: bool | None = None
    ) -> AgentRecord:
        """Rename or (dis)able an agent. Raises: AgentNotFound, NameTaken (the owner has that name)."""
        ...

    async def get_agent_code(self, agent_id: int, version: int) -> str | None:
        """The code of one version (``None`` for a remote agent). Raises: AgentNotFound."""
        ...

    async def list_agents(
        self, *, game: str | None = None, user_id: int | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[AgentRecord], str | None]: ...

    # matches
    async def create_match(
        self, game: str, rules_version: int, config: dict[str, JSON], seed: int, seats: Sequence[NewSeat],
        tags: dict[str, JSON] | None = None, *, rated: bool = False, lease: Lease | None = None,
        quota: ChallengeQuota | None = None,
    ) -> MatchRecord:
        """Store a new match in status ``pending``; ``rated`` (a ladder match) holds only when its
        seats are distinct agents; ``lease``: already claimed by that worker; ``quota``: a user's
        challenge, stored only within its limits (``quotas.py``). Raises: AgentNotFound,
        RateLimited, ConfigError."""
        ...

    async def set_match_live(self, match_id: int, started_at: float) -> None: ...

    async def append_steps(self, match_id: int, steps: Sequence[StepRecord | EncodedStep]) -> None:
        """Append steps to the match's event log (append-only); an ``EncodedStep`` is stored as its text."""
        ...

    async def finish_match(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: Sequence[SeatResult],
        finished_at: float, *, logs: Sequence[str] = (),
    ) -> MatchRecord:
        """Record the end of a match; every step appended before is durable when this returns.
        ``logs`` (one per seat, or none) are stored with it, as ``save_log`` would. A rated match
        that finished is rated in the same transaction (exactly once; its record carries the
        ``rating_changes``)."""
        ...

    async def get_match(self, match_id: int) -> MatchRecord:
        """Raises: MatchNotFound."""
        ...

    async def list_matches(
        self, *, status: MatchStatus | None = None, agent_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[MatchRecord], str | None]:
        """Newest first."""
        ...

    async def get_steps(self, match_id: int) -> list[StepRecord]:
        """The stored event log, in step order. Raises: MatchNotFound."""
        ...

    async def get_step_texts(self, match_id: int, from_step: int, limit: int) -> list[tuple[int, str]]:
        """A page of the stored event log, in step order: up to ``limit`` steps from ``from_step``
        on, each as ``(step, text)``, the text being the ``StepRecord`` encoded (as an
        ``EncodedStep`` has it), so pages go out without decoding. Raises: MatchNotFound."""
        ...

    async def get_last_step_texts(self, match_id: int, count: int) -> list[tuple[int, str]]:
        """The last ``count`` stored steps, in step order, as ``get_step_texts`` gives them.
        Raises: MatchNotFound."""
        ...

    async def abort_unfinished(self, reason: str, *, worker: str | None = None) -> int:
        """Mark every pending or live match aborted (on start-up), or only those ``worker`` holds;
        returns how many."""
        ...

    async def standings(self, game: str) -> list[dict[str, JSON]]:
        """Per agent of ``game``: finished matches, wins, draws, losses and faults, best first."""
        ...

    # the rated ladder
    async def rate_finished(self, limit: int = 100) -> list[RatedMatch]:
        """The backfill of ``finish_match``'s rating: rate up to ``limit`` finished matches left
        unrated (from before ratings were stored with results), oldest end first, each exactly
        once (also across restarts); returns them in that order, ``[]`` when none is left."""
        ...

    async def get_ratings(self, agent_ids: Sequence[int]) -> dict[int, RatingRecord]:
        """The ratings of these agents (the default for an unrated one); unknown ids are left out."""
        ...

    async def leaderboard(self, game: str) -> list[dict[str, JSON]]:
        """Every agent of ``game``, best rating first: ``rank``, its rating and its standings."""
        ...

    async def ladder_matches_of_versions(self, versions: Mapping[int, int]) -> dict[int, int]:
        """For each ``agent id -> version``, the rated matches that version played or is playing
        (not aborted); an agent without any is left out."""
        ...

    async def ladder_ends_since(self, since: float) -> list[tuple[str, float, tuple[int, ...]]]:
        """``(game, finished_at, agent ids)`` of every rated match finished after ``since``, oldest first."""
        ...

    async def unfinished_ladder_matches(self) -> list[LadderMatch]:
        """Every rated match pending or live, wherever it runs, by id: one statement."""
        ...

    # seat logs (a bot's print output and its error), readable by the owner only
    async def save_log(self, match_id: int, seat: int, text: str) -> None: ...
    async def get_log(self, match_id: int, seat: int) -> str | None: ...

    async def ping(self) -> None:
        """A trivial read, for ``GET /api/health``; raises StorageError when storage cannot answer."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class MatchQueue(Protocol):
    """The match queue of a storage several processes share (PostgreSQL): workers claim matches
    under a lease and renew it; see ``_pg_queue.py``. ``isinstance(storage, MatchQueue)`` tells
    such a storage."""

    async def claim_match(self, lease: Lease, max_attempts: int) -> MatchRecord | None:
        """Claim the oldest pending match, or one whose lease ran out, under its next attempt;
        None when there is none. Its writes are fenced by that attempt from now on."""
        ...

    async def renew_leases(self, lease: Lease, match_ids: Sequence[int]) -> set[int]:
        """Extend the leases of these claimed matches; returns the ones lost to another worker."""
        ...
