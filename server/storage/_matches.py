"""Matches in SQLite: creating, starting and finishing them, their event logs and seat logs.

Each function is the body of one storage call (see ``SqliteStorage``): it runs in the database
thread on the thread's connection, inside the transaction the caller frames (a write, or a
snapshot when it reads several statements). Steps are queued by the batching step writer
(``_steps.py``), which hands each batch to :func:`insert_steps` here, one job on the writer
thread.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import AgentNotFound, MatchNotFound, StorageError, short_reason

from . import _ratings
from ._accounts import _load_agent
from ._rows import _MATCH_COLUMNS, _is_row_id, _match
from ._schema import write_transaction
from ._steps import StepRow, rows_by_match
from .base import LadderMatch, MatchRecord, MatchStatus, NewSeat, SeatResult

__all__: list[str] = []

_UPSERT_LOG = (
    "INSERT INTO seat_logs (match_id, seat, text) VALUES (?, ?, ?)"
    " ON CONFLICT (match_id, seat) DO UPDATE SET text = excluded.text"
)


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
    rows = db.execute(f"SELECT {_MATCH_COLUMNS} FROM matches {tail}", params).fetchall()
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
    return [_match(row, seats[row[0]]) for row in rows]


def _short(reason: str | None) -> str | None:
    # Every reason that is stored quotes a short prefix at most (whoever built it): it goes into
    # every list of matches, lobby frame and result that names the match.
    return None if reason is None else short_reason(reason)


def create_match(
    db: sqlite3.Connection, game: str, rules_version: int, config_json: str, seed: int, tags_json: str,
    seats: Sequence[NewSeat], is_rated: bool, worker: str | None, now: float,
) -> MatchRecord:
    """A new pending match; with ``worker``, held by it (attempt 1; one process: no lease time)."""
    for seat in seats:
        if not _is_row_id(seat.agent_id):
            raise AgentNotFound(seat.agent_id)
        if db.execute("SELECT 1 FROM agent_versions WHERE agent_id = ? AND version = ?",
                      (seat.agent_id, seat.version)).fetchone() is None:
            _load_agent(db, seat.agent_id)  # raises if the agent itself is unknown
            raise AgentNotFound((seat.agent_id, seat.version))
    cur = db.execute(
        "INSERT INTO matches (game, rules_version, status, config, seed, tags, created_at, rated, rating_done,"
        " worker, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (game, rules_version, MatchStatus.PENDING.value, config_json, seed, tags_json, now, is_rated, not is_rated,
         worker, 0 if worker is None else 1),
    )
    assert cur.lastrowid is not None
    match_id = cur.lastrowid
    db.executemany("INSERT INTO match_seats (match_id, seat, agent_id, version) VALUES (?, ?, ?, ?)",
                   [(match_id, i, s.agent_id, s.version) for i, s in enumerate(seats)])
    return _load_matches(db, "WHERE id = ?", (match_id,))[0]


def set_match_live(db: sqlite3.Connection, match_id: int, started_at: float) -> None:
    status = _match_status(db, match_id)
    if status not in (MatchStatus.PENDING, MatchStatus.LIVE):
        raise StorageError(f"match {match_id} is {status.value}; it cannot go live")
    db.execute("UPDATE matches SET status = ?, started_at = ? WHERE id = ?",
               (MatchStatus.LIVE.value, started_at, match_id))


def finish_match(
    db: sqlite3.Connection, match_id: int, status: MatchStatus, reason: str | None, seats: Sequence[SeatResult],
    logs: Sequence[str], finished_at: float, now: float,
) -> MatchRecord:
    """The end of a match, with the seats' non-empty ``logs`` (one per seat, or none at all); a
    rated match that finished is rated with it (at ``now``), its record carrying the changes.

    Raises:
        StorageError: the match has ended already, or cannot be rated (an agent is gone).
    """
    current = _match_status(db, match_id)
    if current not in (MatchStatus.PENDING, MatchStatus.LIVE):
        raise StorageError(f"match {match_id} has already ended ({current.value})")
    n_seats = int(db.execute("SELECT count(*) FROM match_seats WHERE match_id = ?", (match_id,)).fetchone()[0])
    if n_seats != len(seats):
        raise ValueError(f"match {match_id} has {n_seats} seats, got {len(seats)} results")
    db.executemany("UPDATE match_seats SET status = ?, reward = ?, reason = ? WHERE match_id = ? AND seat = ?",
                   [(s.status, s.reward, _short(s.reason), match_id, i) for i, s in enumerate(seats)])
    db.executemany(_UPSERT_LOG, [(match_id, seat, text) for seat, text in enumerate(logs) if text])
    # A rated match that finished is rated with its result (see _ratings.py): marked here, rated below.
    db.execute(
        "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
        " steps = (SELECT count(*) FROM match_steps WHERE match_id = ?),"
        " rating_done = rating_done OR (rated AND ? = 'finished') WHERE id = ?",
        (status.value, _short(reason), finished_at, match_id, status.value, match_id),
    )
    record = _load_matches(db, "WHERE id = ?", (match_id,))[0]
    if not (record.rated and status is MatchStatus.FINISHED):
        return record
    rated = _ratings.rate_match(db, record, now)
    return dataclasses.replace(record, rating_changes=tuple(rated.changes))


def abort_unfinished(db: sqlite3.Connection, reason: str, worker: str | None, now: float) -> int:
    cur = db.execute(
        "UPDATE matches SET status = ?, reason = ?, finished_at = ?,"
        " steps = (SELECT count(*) FROM match_steps WHERE match_id = matches.id)"
        " WHERE status IN (?, ?) AND (? IS NULL OR worker = ?)",
        (MatchStatus.ABORTED.value, _short(reason), now, MatchStatus.PENDING.value, MatchStatus.LIVE.value,
         worker, worker),
    )
    return cur.rowcount


def unfinished_ladder_matches(db: sqlite3.Connection) -> list[LadderMatch]:
    """Every rated match pending or live, by id, with its agents in seat order: one statement
    (``matches_by_status`` finds them)."""
    rows = db.execute(
        "SELECT m.id, m.game, coalesce(json_extract(m.tags, '$.featured'), 0), s.agent_id"
        " FROM matches m JOIN match_seats s ON s.match_id = m.id"
        " WHERE m.status IN (?, ?) AND m.rated = 1 ORDER BY m.id, s.seat",
        (MatchStatus.PENDING.value, MatchStatus.LIVE.value),
    ).fetchall()
    matches: dict[int, LadderMatch] = {}
    for match_id, game, featured, agent_id in rows:
        known = matches.get(match_id)
        agents = (agent_id,) if known is None else (*known.agent_ids, agent_id)
        matches[match_id] = LadderMatch(match_id, game, bool(featured), agents)
    return list(matches.values())


def step_rows(db: sqlite3.Connection, match_id: int, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of ``sql`` (a SELECT of ``match_steps``), once the match is known to exist.

    Raises:
        MatchNotFound: no match ``match_id``.
    """
    _match_status(db, match_id)
    return db.execute(sql, params).fetchall()


def save_log(db: sqlite3.Connection, match_id: int, seat: int, text: str) -> None:
    _match_status(db, match_id)
    if db.execute("SELECT 1 FROM match_seats WHERE match_id = ? AND seat = ?", (match_id, seat)).fetchone() is None:
        raise StorageError(f"match {match_id} has no seat {seat}")
    db.execute(_UPSERT_LOG, (match_id, seat, text))


def get_log(db: sqlite3.Connection, match_id: int, seat: int) -> str | None:
    row = db.execute("SELECT text FROM seat_logs WHERE match_id = ? AND seat = ?", (match_id, seat)).fetchone()
    return None if row is None else str(row[0])


def _insert_rows(db: sqlite3.Connection, rows: Sequence[StepRow], counts: Mapping[int, int]) -> None:
    db.executemany("INSERT INTO match_steps (match_id, step, record) VALUES (?, ?, ?)", rows)
    db.executemany("UPDATE matches SET steps = steps + ? WHERE id = ?", [(n, m) for m, n in counts.items()])


def insert_steps(db: sqlite3.Connection, batch: Sequence[StepRow]) -> list[tuple[list[StepRow], Exception]]:
    """A batch of the step writer in one job on the writer thread: one transaction for every
    match in it, or, if that fails, one per match (see ``_steps.BatchWrite``). A job of the
    writer thread runs alone, so a batch never interleaves with another write transaction."""
    counts = Counter(match_id for match_id, _, _ in batch)
    try:
        write_transaction(db, _insert_rows, batch, counts)
        return []
    except sqlite3.Error as exc:
        if len(counts) == 1:
            return [(list(batch), exc)]
    failed: list[tuple[list[StepRow], Exception]] = []
    for match_id, rows in rows_by_match(batch).items():
        try:
            write_transaction(db, _insert_rows, rows, {match_id: len(rows)})
        except sqlite3.Error as exc:
            failed.append((rows, exc))
    return failed
