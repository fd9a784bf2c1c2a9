"""What the HTTP and WebSocket handlers share about a request: its body, its caller, its integer
parameters, whether the caller owns a seat, and a JSON answer.

Errors are raised as ``ArenaError``; ``server/http/errors.py`` turns them into statuses and
close codes.
"""

from __future__ import annotations

import re
from typing import TypeVar

from starlette.requests import HTTPConnection, Request

from protocol import codec
from protocol.errors import Forbidden, ProtocolError, Unauthorized
from server.http.auth import hash_token, parse_bearer
from server.http.errors import json_response
from server.state import arena_state
from server.storage import MAX_ROW_ID, MatchRecord, Storage, UserRecord

__all__ = [
    "client_address",
    "int_param",
    "json_response",
    "optional_user",
    "read_body",
    "require_seat_owner",
    "require_user",
]

T = TypeVar("T")

_INTEGER_RE = re.compile(r"-?[0-9]{1,19}")  # wider than 64 bits cannot name a row: refused, not looked up


async def read_body(request: Request, cls: type[T]) -> T:
    """The request's JSON body decoded into the message ``cls``, read up to ``max_body_bytes``.

    Raises:
        ProtocolError: the body is too large, not JSON, or not a valid ``cls``.
    """
    limit = arena_state(request).settings.max_body_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ProtocolError(f"request body exceeds {limit} bytes", code="too_large")
    return codec.decode_body(body, cls)


async def require_user(request: Request) -> UserRecord:
    """The user whose token the ``Authorization: Bearer`` header carries.

    Raises:
        Unauthorized: no such header, or an unknown or revoked token.
    """
    token = parse_bearer(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("this call needs 'Authorization: Bearer TOKEN'")
    user = await arena_state(request).storage.user_by_token_hash(hash_token(token))
    if user is None:
        raise Unauthorized("unknown or revoked token")
    return user


async def optional_user(request: Request) -> UserRecord | None:
    """The caller, when the request carries a token at all.

    Raises:
        Unauthorized: a token that is malformed, unknown or revoked.
    """
    if request.headers.get("authorization") is None:
        return None
    return await require_user(request)


def client_address(request: Request) -> str:
    """The address the request came from: the ASGI client, which uvicorn takes from
    X-Forwarded-For only for the proxies in ``forwarded_allow_ips`` (none by default)."""
    return request.client.host if request.client is not None else "unknown"


def int_param(conn: HTTPConnection, name: str, *, default: int | None = None) -> int | None:
    """An integer query parameter (an id, a seat, a limit) that fits 64 bits, or ``default``.

    Raises:
        ProtocolError: not a decimal integer, or out of the 64-bit range (400).
    """
    raw = conn.query_params.get(name)
    if raw is None:
        return default
    if _INTEGER_RE.fullmatch(raw) is None or not -MAX_ROW_ID - 1 <= (value := int(raw)) <= MAX_ROW_ID:
        shown = raw if len(raw) <= 40 else f"{raw[:40]}..."
        raise ProtocolError(f"query parameter {name!r} must be a 64-bit integer, got {shown!r}", field=name)
    return value


async def require_seat_owner(storage: Storage, user: UserRecord, match_id: int, seat: int, what: str) -> MatchRecord:
    """The match, once ``user`` is shown to own the agent in its seat ``seat``; ``what`` names
    what only the owner may have (``"its repro bundle"``), for the refusal.

    Raises:
        ProtocolError: the match has no such seat.
        Forbidden: another user's agent plays the seat.
        MatchNotFound: no such match.
    """
    match = await storage.get_match(match_id)
    if not 0 <= seat < len(match.seats):
        raise ProtocolError(f"match {match_id} has no seat {seat}", field="seat")
    agent = await storage.get_agent(match.seats[seat].agent_id)
    if agent.user_id != user.id:
        raise Forbidden(f"seat {seat} of match {match_id} is not yours: {what} is its owner's only")
    return match
