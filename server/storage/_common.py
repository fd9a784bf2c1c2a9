"""What both storages do alike: the frame of the calls whose checks, step barriers and
docstrings do not depend on the backend. Each backend supplies the SQL and the trip (its
``_insert_match``, ``_store_end``, ``_load_match`` and ``_read_steps``); see ``sqlite.py`` and
``postgres.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.codec import encode_json
from protocol.errors import MatchNotFound
from protocol.messages import JSON, StepRecord
from server.ladder.rules import is_rated_match

from ._rows import _clamp, _decode_step, _is_row_id, _page, _parse_cursor, _step_text
from ._steps import StepWriter
from .base import AgentRecord, EncodedStep, Lease, MatchRecord, MatchStatus, NewSeat, SeatResult
from .quotas import ChallengeQuota

__all__ = ["StorageBase"]


class StorageBase:
    """The backend-independent half of a storage; subclasses set ``_steps`` and the SQL of
    their step reads (``_STEPS_SQL``, ``_STEP_PAGE_SQL``, ``_LAST_STEPS_SQL``)."""

    _steps: StepWriter
    _STEPS_SQL: str  # record of every step of a match, in step order
    _STEP_PAGE_SQL: str  # (step, record) from a step on, in step order, a limit
    _LAST_STEPS_SQL: str  # (step, record) of the last steps, newest first, a limit

    # -- what each backend supplies ----------------------------------------------------------------

    async def _insert_match(
        self, game: str, rules_version: int, config_json: str, seed: int, tags_json: str, seats: tuple[NewSeat, ...],
        is_rated: bool, lease: Lease | None, quota: ChallengeQuota | None,
    ) -> MatchRecord:
        raise NotImplementedError

    async def _store_end(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: tuple[SeatResult, ...],
        logs: tuple[str, ...], finished_at: float,
    ) -> MatchRecord:
        raise NotImplementedError

    async def _load_match(self, match_id: int) -> list[MatchRecord]:
        raise NotImplementedError

    async def _read_steps(self, match_id: int, sql: str, params: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError

    def _mark(self, n: int) -> str:
        """The placeholder of the ``n``-th (from 1) parameter of a statement."""
        raise NotImplementedError

    async def _select_agents(self, tail: str, params: tuple[Any, ...]) -> list[AgentRecord]:
        """Agents selected by ``tail`` (WHERE/ORDER/LIMIT of ``agents a``)."""
        raise NotImplementedError

    async def _select_matches(self, tail: str, params: tuple[Any, ...]) -> list[MatchRecord]:
        """Matches selected by ``tail`` (WHERE/ORDER/LIMIT), newest first, in one snapshot."""
        raise NotImplementedError

    # -- the calls ---------------------------------------------------------------------------------

    async def list_agents(
        self, *, game: str | None = None, user_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AgentRecord], str | None]:
        """Agents in id order, a page at a time.

        Raises:
            ProtocolError: ``cursor`` is not one this method returned.
        """
        if user_id is not None and not _is_row_id(user_id):
            return [], None  # no user has that id
        params: list[Any] = [_parse_cursor(cursor, default=0)]
        where: list[str] = [f"a.id > {self._mark(1)}"]
        if game is not None:
            params.append(game)
            where.append(f"a.game = {self._mark(len(params))}")
        if user_id is not None:
            params.append(user_id)
            where.append(f"a.user_id = {self._mark(len(params))}")
        limit = _clamp(limit)
        params.append(limit + 1)
        agents = await self._select_agents(f"{' AND '.join(where)} ORDER BY a.id LIMIT {self._mark(len(params))}",
                                           tuple(params))
        return _page(agents, limit)

    async def list_matches(
        self, *, status: MatchStatus | None = None, agent_id: int | None = None, cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[MatchRecord], str | None]:
        """Newest first, a page at a time.

        Raises:
            ProtocolError: ``cursor`` is not one this method returned.
        """
        where: list[str] = []
        params: list[Any] = []
        if cursor is not None:
            params.append(_parse_cursor(cursor, default=0))
            where.append(f"id < {self._mark(len(params))}")
        if status is not None:
            params.append(MatchStatus(status).value)
            where.append(f"status = {self._mark(len(params))}")
        if agent_id is not None:
            if not _is_row_id(agent_id):
                return [], None  # no agent has that id
            params.append(agent_id)
            where.append(f"id IN (SELECT match_id FROM match_seats WHERE agent_id = {self._mark(len(params))})")
        limit = _clamp(limit)
        params.append(limit + 1)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        matches = await self._select_matches(f"{clause}ORDER BY id DESC LIMIT {self._mark(len(params))}",
                                             tuple(params))
        return _page(matches, limit)

    async def create_match(
        self, game: str, rules_version: int, config: dict[str, JSON], seed: int, seats: Sequence[NewSeat],
        tags: dict[str, JSON] | None = None, *, rated: bool = False, lease: Lease | None = None,
        quota: ChallengeQuota | None = None,
    ) -> MatchRecord:
        """Store a new match in status ``pending``. ``rated`` asks for a ladder match; it is
        stored rated only when its seats are distinct agents (an agent playing itself is never
        rated), and an unrated match is marked done for the rater at once. ``lease`` stores it
        already claimed by that worker (attempt 1), which runs it at once. ``quota`` stores it
        as a user's challenge, only if the user's and the holder's limits leave room for it,
        counted across every process (``quotas.py``).

        Raises:
            AgentNotFound: a seat names an unknown agent or version.
            RateLimited, ConfigError: ``quota`` leaves no room for it.
        """
        config_json, tags_json = encode_json(config).decode(), encode_json(tags or {}).decode()
        is_rated = rated and is_rated_match([seat.agent_id for seat in seats])
        return await self._insert_match(game, rules_version, config_json, seed, tags_json, tuple(seats), is_rated,
                                        lease, quota)

    async def append_steps(self, match_id: int, steps: Sequence[StepRecord | EncodedStep]) -> None:
        """Queue steps for the match's event log (append-only); the writer commits them shortly.
        An ``EncodedStep`` is stored as its text, as encoded by the caller.

        A step that cannot be stored is reported by the next :meth:`finish_match` of this
        match (and the next :meth:`flush`), not here.

        Raises:
            StorageError: the storage is closed.
        """
        await self._steps.append(match_id, steps)

    async def flush(self) -> None:
        """Wait until every step queued so far is committed.

        Raises:
            StorageError: steps of some match could not be stored (reported once here, and
                again by that match's ``finish_match``).
        """
        await self._steps.flush()

    async def finish_match(
        self, match_id: int, status: MatchStatus, reason: str | None, seats: Sequence[SeatResult],
        finished_at: float, *, logs: Sequence[str] = (),
    ) -> MatchRecord:
        """Record the end of a match; every step appended before is durable when this returns.

        ``logs``, one per seat (or none), are stored with the end in the same transaction, as
        :meth:`save_log` would store them; an empty one is not stored. Of two ends of one match
        stored at once, by this process or another, one is recorded and the other refused.

        A rated match that finished is rated in that transaction too: its agents' new ratings
        and their rows in the rating history are stored with the result, or nothing is, and
        the returned record carries the changes (``rating_changes``, in seat order).

        Raises:
            LeaseLost: this process ran the match under a lease another worker has taken over.
            StorageError: some of the match's steps could not be stored (the end is not
                recorded; finishing it again, e.g. as aborted, then succeeds), the match
                has already ended, or it cannot be rated (an agent of it is gone).
            MatchNotFound: no match ``match_id``.
            ValueError: ``status`` is not an end status, or ``seats`` (or ``logs``) has the
                wrong length.
        """
        if status not in (MatchStatus.FINISHED, MatchStatus.ABORTED):
            raise ValueError(f"finish_match needs an end status, not {status.value!r}")
        if logs and len(logs) != len(seats):
            raise ValueError(f"match {match_id}: {len(logs)} logs for {len(seats)} seats")
        await self._steps.wait_match(match_id)
        self._steps.raise_failure(match_id)
        return await self._store_end(match_id, status, reason, tuple(seats), tuple(logs), finished_at)

    async def get_match(self, match_id: int) -> MatchRecord:
        """The match with its seats; ``steps`` counts the steps stored so far.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        if not _is_row_id(match_id):
            raise MatchNotFound(match_id)
        await self._steps.wait_match(match_id)
        matches = await self._load_match(match_id)
        if not matches:
            raise MatchNotFound(match_id)
        return matches[0]

    async def get_steps(self, match_id: int) -> list[StepRecord]:
        """The stored event log, in step order, including steps queued before this call.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._read_steps(match_id, self._STEPS_SQL, (match_id,))
        return [_decode_step(match_id, row[0]) for row in rows]

    async def get_step_texts(self, match_id: int, from_step: int, limit: int) -> list[tuple[int, str]]:
        """A page of the stored event log as ``(step, text)``, in step order, including steps
        queued before this call: up to ``limit`` steps from ``from_step`` on (an index range,
        so a page costs the same wherever it starts).

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._read_steps(match_id, self._STEP_PAGE_SQL, (match_id, max(0, from_step), max(0, limit)))
        return [(row[0], _step_text(match_id, row[1])) for row in rows]

    async def get_last_step_texts(self, match_id: int, count: int) -> list[tuple[int, str]]:
        """The last ``count`` stored steps as ``(step, text)``, in step order.

        Raises:
            MatchNotFound: no match ``match_id``.
        """
        await self._steps.wait_match(match_id)
        rows = await self._read_steps(match_id, self._LAST_STEPS_SQL, (match_id, max(0, count)))
        return [(row[0], _step_text(match_id, row[1])) for row in reversed(rows)]
