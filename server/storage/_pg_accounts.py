"""Users and agents in PostgreSQL: accounts, their tokens, agents and their versions.

Each function is the body of one storage call (see ``PostgresStorage``), on a connection of
the pool inside the transaction the caller frames (READ COMMITTED), and raises the arena's
errors. Races between processes are settled by the database, not by reading first: a name
taken meanwhile fails the INSERT on its unique constraint, and a new version of an agent is
one ``INSERT ... ON CONFLICT DO UPDATE``, which holds the agent's row until the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import asyncpg

from protocol.errors import AgentNotFound, ConfigError, NameTaken, StorageError, UserNotFound

from ._pg_schema import Conn
from ._rows import _AGENT_SELECT, _agent, _is_row_id
from .base import AgentRecord, UserRecord

__all__: list[str] = []

_USER_SELECT = "SELECT id, name, created_at, created_from FROM users"

# A new agent, or the next version of the owner's agent of that name if it plays the same game
# (no row comes back when it plays another: the caller tells why).
_SAVE_AGENT = """
    INSERT INTO agents (user_id, name, game, remote, version, created_at, updated_at)
    VALUES ($1, $2, $3, $4, 1, $5, $5)
    ON CONFLICT (user_id, name) DO UPDATE
        SET version = agents.version + 1, remote = excluded.remote, updated_at = excluded.updated_at
        WHERE agents.game = excluded.game
    RETURNING id, version
"""


async def load_agent(conn: Conn, agent_id: int) -> AgentRecord:
    """Raises: AgentNotFound."""
    if not _is_row_id(agent_id):
        raise AgentNotFound(agent_id)
    row = await conn.fetchrow(f"{_AGENT_SELECT} WHERE a.id = $1", agent_id)
    if row is None:
        raise AgentNotFound(agent_id)
    return _agent(row)


async def create_user(conn: Conn, name: str, token_hash: str, created_from: str | None, now: float) -> UserRecord:
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (name, token_hash, created_at, created_from) VALUES ($1, $2, $3, $4) RETURNING id",
            name, token_hash, now, created_from,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "users_name_key":
            raise NameTaken(f"user name {name!r} is taken") from exc
        raise StorageError(f"cannot create user {name!r}: its token hash is taken") from exc
    return UserRecord(user_id, name, now, created_from)


async def user_by(conn: Conn, column: Literal["name", "token_hash"], value: str) -> UserRecord | None:
    """The user whose ``column`` (both are unique) is ``value``."""
    row = await conn.fetchrow(f"{_USER_SELECT} WHERE {column} = $1", value)
    return None if row is None else UserRecord(*row)


async def rotate_token(conn: Conn, user_id: int, token_hash: str) -> None:
    if await conn.fetchval("UPDATE users SET token_hash = $1 WHERE id = $2 RETURNING id", token_hash, user_id) is None:
        raise UserNotFound(user_id)


async def save_agent(conn: Conn, user_id: int, name: str, game: str, code: str | None, now: float) -> AgentRecord:
    try:
        row = await conn.fetchrow(_SAVE_AGENT, user_id, name, game, code is None, now)
    except asyncpg.ForeignKeyViolationError as exc:
        raise UserNotFound(user_id) from exc
    if row is None:
        existing = await conn.fetchval("SELECT game FROM agents WHERE user_id = $1 AND name = $2", user_id, name)
        raise ConfigError(f"agent {name!r} already exists for game {existing!r}, not {game!r}")
    await conn.execute("INSERT INTO agent_versions (agent_id, version, code, created_at) VALUES ($1, $2, $3, $4)",
                       row["id"], row["version"], code, now)
    return await load_agent(conn, row["id"])


async def update_agent(conn: Conn, agent_id: int, name: str | None, disabled: bool | None, now: float) -> AgentRecord:
    if not _is_row_id(agent_id):
        raise AgentNotFound(agent_id)
    # The row lock orders this against a concurrent update or new version of the same agent.
    if await conn.fetchval("SELECT id FROM agents WHERE id = $1 FOR UPDATE", agent_id) is None:
        raise AgentNotFound(agent_id)
    agent = await load_agent(conn, agent_id)
    if name is not None and name != agent.name:
        try:
            await conn.execute("UPDATE agents SET name = $1, updated_at = $2 WHERE id = $3", name, now, agent_id)
        except asyncpg.UniqueViolationError as exc:
            raise NameTaken(f"you already have an agent named {name!r}") from exc
    if disabled is not None and disabled != agent.disabled:
        await conn.execute("UPDATE agents SET disabled = $1, updated_at = $2 WHERE id = $3", disabled, now, agent_id)
    return await load_agent(conn, agent_id)


async def get_agents(conn: Conn, ids: Sequence[int]) -> dict[int, AgentRecord]:
    rows = await conn.fetch(f"{_AGENT_SELECT} WHERE a.id = ANY($1::bigint[])", list(ids))
    return {agent.id: agent for agent in map(_agent, rows)}


async def get_agent_code(conn: Conn, agent_id: int, version: int) -> str | None:
    row = await conn.fetchrow("SELECT code FROM agent_versions WHERE agent_id = $1 AND version = $2", agent_id, version)
    if row is None:
        await load_agent(conn, agent_id)  # raises if the agent itself is unknown
        raise AgentNotFound((agent_id, version))
    code: str | None = row[0]
    return code


async def list_agents(conn: Conn, where: str, params: Sequence[Any]) -> list[AgentRecord]:
    return [_agent(row) for row in await conn.fetch(f"{_AGENT_SELECT} WHERE {where}", *params)]
