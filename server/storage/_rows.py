"""Rows to records for the SQLite storage: the SELECTs and decoders that build records from
rows, and the cursor paging of the list methods. The queries run in the database thread
(synchronous, on the thread's connection), inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, TypeVar

from protocol.codec import decode_json, encode
from protocol.errors import AgentNotFound, MatchNotFound, ProtocolError, StorageError
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
_MATCH_SELECT = """
    SELECT id, game, rules_version, status, reason, config, seed, tags, created_at, started_at,
           finished_at, steps, rated
    FROM matches
"""
# Per agent of a game: its results in finished matches, best first (see SqliteStorage.standings).
# One match counts once per agent, however many of its seats the agent holds: ``mine`` folds an
# agent's seats of a match into its best reward and whether any of them faulted; ``others``
# counts the seats of other agents (none: a match against itself, which is a draw).
_STANDINGS = """
    WITH mine AS (
        SELECT s.match_id, s.agent_id, m.rated, max(s.reward) AS reward,
               max(s.status IN ('TIMEOUT', 'ERROR', 'INVALID')) AS faulted
        FROM match_seats s JOIN matches m ON m.id = s.match_id
        WHERE m.status = ? AND m.game = ?
        GROUP BY s.match_id, s.agent_id
    ), against AS (
        SELECT r.agent_id, r.rated, r.faulted, r.reward,
               (SELECT max(s.reward) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id != r.agent_id) AS best_other,
               (SELECT count(*) FROM match_seats s
                WHERE s.match_id = r.match_id AND s.agent_id != r.agent_id) AS others
        FROM mine r
    ), results AS (
        SELECT agent_id, rated, faulted,
               others > 0 AND reward > coalesce(best_other, -1e308) AS won,
               others = 0 OR reward = best_other AS drew
        FROM against
    ), tally AS (
        SELECT a.id, a.name, u.name AS owner, a.version,
               count(r.agent_id) AS matches,
               coalesce(sum(r.won), 0) AS wins,
               coalesce(sum(r.drew), 0) AS draws,
               coalesce(sum(r.faulted), 0) AS faults,
               coalesce(sum(r.rated), 0) AS rated,
               coalesce(sum(r.rated AND r.won), 0) AS rated_wins,
               coalesce(sum(r.rated AND r.drew), 0) AS rated_draws
        FROM agents a JOIN users u ON u.id = a.user_id LEFT JOIN results r ON r.agent_id = a.id
        WHERE a.game = ?
        GROUP BY a.id
    )
    SELECT id, name, owner, version, matches, wins, draws, matches - wins - draws, faults,
           rated_wins, rated_draws, rated - rated_wins - rated_draws
    FROM tally
    ORDER BY matches = 0, wins + 0.5 * draws DESC, wins DESC, matches, id
"""


def _standings(db: sqlite3.Connection, game: str) -> list[dict[str, Any]]:
    """The standings of ``game`` (see SqliteStorage.standings), best first."""
    rows = db.execute(_STANDINGS, (MatchStatus.FINISHED.value, game, game)).fetchall()
    keys = ("agent_id", "name", "owner", "version", "matches", "wins", "draws", "losses", "faults",
            "rated_wins", "rated_draws", "rated_losses")
    table: list[dict[str, Any]] = []
    for row in rows:
        doc: dict[str, Any] = dict(zip(keys, row, strict=True))
        doc["points"] = doc["wins"] + 0.5 * doc["draws"]
        table.append(doc)
    return table


def _agent(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row[0], user_id=row[1], owner=row[2], name=row[3], game=row[4], version=row[5],
        remote=bool(row[6]), code=row[7], created_at=row[8], updated_at=row[9], disabled=bool(row[10]),
    )


def _is_row_id(value: int) -> bool:
    """Whether ``value`` fits an SQLite INTEGER; one that does not names no row."""
    return -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID


def _load_agent(db: sqlite3.Connection, agent_id: int) -> AgentRecord:
    if not _is_row_id(agent_id):
        raise AgentNotFound(agent_id)
    row = db.execute(f"{_AGENT_SELECT} WHERE a.id = ?", (agent_id,)).fetchone()
    if row is None:
        raise AgentNotFound(agent_id)
    return _agent(row)


def _match_status(db: sqlite3.Connection, match_id: int) -> MatchStatus:
    if not _is_row_id(match_id):
        raise MatchNotFound(match_id)
    row = db.execute("SELECT status FROM matches WHERE id = ?", (match_id,)).fetchone()
    if row is None:
        raise MatchNotFound(match_id)
    return MatchStatus(row[0])


def _load_matches(db: sqlite3.Connection, tail: str, params: Sequence[Any]) -> list[MatchRecord]:
    """Matches selected by ``tail`` (WHERE/ORDER/LIMIT), with their seats, in that order: two
    statements, so the caller reads them in one snapshot."""
    rows = db.execute(f"{_MATCH_SELECT} {tail}", params).fetchall()
    if not rows:
        return []
    seats: dict[int, list[SeatResult]] = {row[0]: [] for row in rows}
    marks = ", ".join("?" * len(seats))
    seat_rows = db.execute(
        "SELECT s.match_id, s.agent_id, a.name, u.name, s.version, s.status, s.reward, s.reason"
        " FROM match_seats s JOIN agents a ON a.id = s.agent_id JOIN users u ON u.id = a.user_id"
        f" WHERE s.match_id IN ({marks}) ORDER BY s.match_id, s.seat", tuple(seats),
    ).fetchall()
    for s in seat_rows:
        seats[s[0]].append(SeatResult(*s[1:]))
    return [
        MatchRecord(
            id=row[0], game=row[1], rules_version=row[2], status=MatchStatus(row[3]), reason=row[4],
            config=_decode_json(row[5]), seed=row[6], seats=seats[row[0]], tags=_decode_json(row[7]),
            created_at=row[8], started_at=row[9], finished_at=row[10], steps=row[11], rated=bool(row[12]),
        )
        for row in rows
    ]


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
            # allowance_s is newer than some stored steps: absent means none was credited.
            else SeatTiming(wall_s=t["wall_s"], cpu_s=t["cpu_s"], bank_s=t["bank_s"], allowance_s=t.get("allowance_s"))
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
    ``SeatTiming.allowance_s`` existed are decoded and encoded again (the rest, nearly all, go
    out as stored). A step without ``faults`` is one where no seat faulted, then as now.

    Raises:
        StorageError: an old row that is not a step.
    """
    if '"wall_s"' in text and '"allowance_s"' not in text:
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
