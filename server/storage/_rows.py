"""Rows to records, whatever the backend: the decoders that build records from rows (a row is
a tuple, or an asyncpg ``Record``, read by position), the columns both backends select for
them, and the cursor paging of the list methods. No I/O here: each backend runs its own
queries (SQLite in ``_accounts.py``, ``_matches.py``, ``_ratings.py``; PostgreSQL in the
``_pg_*.py`` modules) and hands the rows to these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from protocol.codec import decode_json, encode
from protocol.errors import ProtocolError, StorageError
from protocol.messages import SeatTiming, StepRecord

from .base import MAX_ROW_ID, AgentRecord, MatchRecord, MatchStatus, SeatResult

__all__ = ["MAX_PAGE"]

MAX_PAGE = 500
_MAX_STORED_BYTES = 1 << 30  # stored JSON is our own; the wire's 1 MiB frame limit does not apply

_R = TypeVar("_R", AgentRecord, MatchRecord)

_AGENT_SELECT = """
    SELECT a.id, a.user_id, u.name, a.name, a.game, a.version, a.remote, v.code, a.created_at, a.updated_at,
           a.disabled
    FROM agents a JOIN users u ON u.id = a.user_id
    JOIN agent_versions v ON v.agent_id = a.id AND v.version = a.version
"""
# The columns of a match record, in the order _match reads them; both backends select these.
_MATCH_COLUMNS = ("id, game, rules_version, status, reason, config, seed, tags, created_at, started_at, finished_at,"
                  " steps, rated, worker, attempt")
# The keys of a standings row, in the order both backends' standings queries select them.
_STANDINGS_KEYS = ("agent_id", "name", "owner", "version", "matches", "wins", "draws", "losses", "faults",
                   "rated_wins", "rated_draws", "rated_losses")


def _standings_table(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Standings rows (see SqliteStorage.standings) as documents, with their ``points``."""
    table: list[dict[str, Any]] = []
    for row in rows:
        doc: dict[str, Any] = dict(zip(_STANDINGS_KEYS, row, strict=True))
        doc["points"] = doc["wins"] + 0.5 * doc["draws"]
        table.append(doc)
    return table


def _agent(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row[0], user_id=row[1], owner=row[2], name=row[3], game=row[4], version=row[5],
        remote=bool(row[6]), code=row[7], created_at=row[8], updated_at=row[9], disabled=bool(row[10]),
    )


def _is_row_id(value: int) -> bool:
    """Whether ``value`` fits a 64-bit id (SQLite's INTEGER, PostgreSQL's BIGINT); one that does not names no row."""
    return -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID


def _match(row: Any, seats: list[SeatResult]) -> MatchRecord:
    """A match record from a row of ``_MATCH_COLUMNS`` and its seats, in seat order."""
    return MatchRecord(
        id=row[0], game=row[1], rules_version=row[2], status=MatchStatus(row[3]), reason=row[4],
        config=_decode_json(row[5]), seed=row[6], seats=seats, tags=_decode_json(row[7]),
        created_at=row[8], started_at=row[9], finished_at=row[10], steps=row[11], rated=bool(row[12]),
        worker=row[13], attempt=row[14],
    )


def _decode_json(text: str) -> Any:
    return decode_json(text, max_bytes=_MAX_STORED_BYTES)


def _decode_step(match_id: int, text: str) -> StepRecord:
    """Rebuild a stored step, ``SeatTiming`` entries included.

    Raises:
        StorageError: the stored record is not a step (a corrupt or foreign row).
    """
    try:
        raw = _decode_json(text)
        timing = [
            None if t is None
            # allowance_s and wait_s are newer than some stored steps: absent means none.
            else SeatTiming(wall_s=t["wall_s"], cpu_s=t["cpu_s"], bank_s=t["bank_s"], allowance_s=t.get("allowance_s"),
                            wait_s=t.get("wait_s"))
            for t in raw.get("timing", [])
        ]
        # faults are newer than some stored steps: absent means no seat faulted in the step.
        return StepRecord(step=raw["step"], actions=raw["actions"], statuses=raw["statuses"],
                          rewards=raw["rewards"], state=raw["state"], timing=timing, time=raw.get("time"),
                          faults=raw.get("faults", []))
    except (ProtocolError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(f"a stored step of match {match_id} is malformed: {exc!r}") from exc


def _step_text(match_id: int, text: str) -> str:
    """A stored step's text as this version encodes a ``StepRecord``: rows stored before
    ``SeatTiming.wait_s`` existed are decoded and encoded again (the rest, nearly all, go out as
    stored). A step without ``faults`` is one where no seat faulted, then as now.

    Raises:
        StorageError: an old row that is not a step.
    """
    if '"wall_s"' in text and '"wait_s"' not in text:
        return encode(_decode_step(match_id, text)).decode()
    return text


# -- paging -----------------------------------------------------------------------------------------


def _clamp(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def _parse_cursor(cursor: str | None, *, default: int) -> int:
    if cursor is None:
        return default
    try:
        value = int(cursor)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ROW_ID:
        raise ProtocolError(f"bad page cursor {cursor!r}", code="bad_cursor", field="cursor")
    return value


def _page(items: list[_R], limit: int) -> tuple[list[_R], str | None]:
    """Cut a page fetched with ``limit + 1`` rows; the extra row only says there is a next page."""
    if len(items) > limit:
        items = items[:limit]
        return items, str(items[-1].id)
    return items, None
