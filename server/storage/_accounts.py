"""Users and agents in SQLite: accounts, their tokens, agents and their versions.

Each function is the body of one storage call (see ``SqliteStorage``): it runs in the database
thread on the thread's connection, inside the transaction the caller frames, and raises the
arena's errors (``NameTaken``, ``UserNotFound``...) for the caller to pass on as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

from protocol.errors import AgentNotFound, ConfigError, NameTaken, UserNotFound

from ._rows import _AGENT_SELECT, _agent, _is_row_id
from .base import AgentRecord, UserRecord

__all__: list[str] = []

_USER_SELECT = "SELECT id, name, created_at, created_from FROM users"


def _load_agent(db: sqlite3.Connection, agent_id: int) -> AgentRecord:
    if not _is_row_id(agent_id):
        raise AgentNotFound(agent_id)
    row = db.execute(f"{_AGENT_SELECT} WHERE a.id = ?", (agent_id,)).fetchone()
    if row is None:
        raise AgentNotFound(agent_id)
    return _agent(row)


def create_user(db: sqlite3.Connection, name: str, token_hash: str, created_from: str | None,
                now: float) -> UserRecord:
    if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None:
        raise NameTaken(f"user name {name!r} is taken")
    cur = db.execute(
        "INSERT INTO users (name, token_hash, created_at, created_from) VALUES (?, ?, ?, ?)",
        (name, token_hash, now, created_from),
    )
    assert cur.lastrowid is not None
    return UserRecord(cur.lastrowid, name, now, created_from)


def user_by(db: sqlite3.Connection, column: Literal["name", "token_hash"], value: str) -> UserRecord | None:
    """The user whose ``column`` (both are unique) is ``value``."""
    row = db.execute(f"{_USER_SELECT} WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else UserRecord(*row)


def rotate_token(db: sqlite3.Connection, user_id: int, token_hash: str) -> None:
    if db.execute("UPDATE users SET token_hash = ? WHERE id = ?", (token_hash, user_id)).rowcount != 1:
        raise UserNotFound(user_id)


def save_agent(db: sqlite3.Connection, user_id: int, name: str, game: str, code: str | None,
               now: float) -> AgentRecord:
    row = db.execute("SELECT id, game, version FROM agents WHERE user_id = ? AND name = ?",
                     (user_id, name)).fetchone()
    if row is None:
        if db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
            raise UserNotFound(user_id)
        cur = db.execute(
            "INSERT INTO agents (user_id, name, game, remote, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 1, ?, ?)", (user_id, name, game, code is None, now, now),
        )
        assert cur.lastrowid is not None
        agent_id, version = cur.lastrowid, 1
    else:
        agent_id, existing_game, version = row[0], row[1], row[2] + 1
        if existing_game != game:
            raise ConfigError(f"agent {name!r} already exists for game {existing_game!r}, not {game!r}")
        db.execute("UPDATE agents SET version = ?, remote = ?, updated_at = ? WHERE id = ?",
                   (version, code is None, now, agent_id))
    db.execute("INSERT INTO agent_versions (agent_id, version, code, created_at) VALUES (?, ?, ?, ?)",
               (agent_id, version, code, now))
    return _load_agent(db, agent_id)


def update_agent(db: sqlite3.Connection, agent_id: int, name: str | None, disabled: bool | None,
                 now: float) -> AgentRecord:
    agent = _load_agent(db, agent_id)
    if name is not None and name != agent.name:
        if db.execute("SELECT 1 FROM agents WHERE user_id = ? AND name = ?",
                      (agent.user_id, name)).fetchone() is not None:
            raise NameTaken(f"you already have an agent named {name!r}")
        db.execute("UPDATE agents SET name = ?, updated_at = ? WHERE id = ?", (name, now, agent_id))
    if disabled is not None and disabled != agent.disabled:
        db.execute("UPDATE agents SET disabled = ?, updated_at = ? WHERE id = ?", (disabled, now, agent_id))
    return _load_agent(db, agent_id)


def get_agents(db: sqlite3.Connection, ids: Sequence[int]) -> dict[int, AgentRecord]:
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"{_AGENT_SELECT} WHERE a.id IN ({marks})", ids).fetchall()
    return {agent.id: agent for agent in map(_agent, rows)}


def get_agent_code(db: sqlite3.Connection, agent_id: int, version: int) -> str | None:
    # One statement when the version exists; the second, on a miss, only tells which of the two
    # is unknown, so this read needs no snapshot.
    row = db.execute("SELECT code FROM agent_versions WHERE agent_id = ? AND version = ?",
                     (agent_id, version)).fetchone()
    if row is None:
        _load_agent(db, agent_id)  # raises if the agent itself is unknown
        raise AgentNotFound((agent_id, version))
    code: str | None = row[0]
    return code


def list_agents(db: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[AgentRecord]:
    return [_agent(row) for row in db.execute(f"{_AGENT_SELECT} WHERE {where}", params).fetchall()]
