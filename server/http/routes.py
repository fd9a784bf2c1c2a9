"""The route table, and the one place where errors become HTTP statuses and close codes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from protocol.errors import (
    ArenaError,
    ConfigError,
    ConfigOutOfRange,
    Conflict,
    Forbidden,
    GameError,
    NotFound,
    ProtocolError,
    RateLimited,
    StorageError,
    Unauthorized,
    ValidationFailed,
)

from . import agent_ws, api, api_owner, api_replay, web, ws
from .storage import MAX_ROW_ID

__all__ = [
    "CLOSE_CODE",
    "HTTP_STATUS",
    "IdConvertor",
    "close_code_for",
    "exception_handlers",
    "guarded",
    "routes",
    "status_for",
]

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
HTTP_STATUS: tuple[tuple[type[ArenaError], int], ...] = (
    (ValidationFailed, 422),
    (NotFound, 404),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (ConfigOutOfRange, 422),  # DESIGN.md: a value outside its range, or not a finite number
    (ConfigError, 400),
    (GameError, 400),
    (ProtocolError, 400),
    (Conflict, 409),
    (StorageError, 409),
)


def status_for(exc: ArenaError) -> int:
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


async def arena_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ArenaError)
    extra: dict[str, object] = {}
    if isinstance(exc, ValidationFailed):
        extra["findings"] = [
            {"line": f.line, "col": f.col, "rule": f.rule, "message": f.message} for f in exc.findings
        ]
    if isinstance(exc, ProtocolError) and exc.field:
        extra["field"] = exc.field
    if isinstance(exc, ConfigOutOfRange):
        extra.update(field=f"config.{exc.key}", range=[exc.low, exc.high])
    status = status_for(exc)
    if status == 500:
        log.error("unmapped error on %s: %r", request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    response = api.json_response(error_body(exc.code, str(exc), **extra), status)
    if headers:
        response.headers.update(headers)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return api.json_response(error_body(code, str(exc.detail)), exc.status_code)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path, exc_info=exc)
    return api.json_response(error_body("internal", "internal server error"), 500)


exception_handlers = {ArenaError: arena_error, HTTPException: http_error, Exception: server_error}

# WebSocket close codes: an error that ends a socket is sent as an ``error`` frame, then this code.
CLOSE_CODE: tuple[tuple[type[ArenaError], int], ...] = (
    (NotFound, 4404),
    (Unauthorized, 4401),
    (Forbidden, 4403),
    (RateLimited, 4429),
    (ProtocolError, 4400),
    (GameError, 4400),
)
CLOSE_INTERNAL = 1011


def close_code_for(exc: ArenaError) -> int:
    for cls, code in CLOSE_CODE:
        if isinstance(exc, cls):
            return code
    return CLOSE_INTERNAL


def guarded(handler: Callable[[WebSocket], Awaitable[None]]) -> Callable[[WebSocket], Awaitable[None]]:
    """A WebSocket endpoint whose ``ArenaError`` ends the socket with an error frame and its close code."""

    async def endpoint(socket: WebSocket) -> None:
        try:
            await handler(socket)
        except ArenaError as exc:
            code = close_code_for(exc)
            if code == CLOSE_INTERNAL:
                log.error("unmapped error on %s: %r", socket.url.path, exc)
            await _close_with(socket, code, exc.code, str(exc))
        except Exception:  # our own bug: logged, and the peer still gets a close frame, not a dropped socket
            log.exception("internal error on %s", socket.url.path)
            await _close_with(socket, CLOSE_INTERNAL, "internal", "internal server error")

    return endpoint


async def _close_with(socket: WebSocket, close_code: int, error_code: str, message: str) -> None:
    """An ``error`` frame, then the close code; gives up after a second (the peer may be gone)."""
    with anyio.move_on_after(1.0):
        try:
            if socket.application_state is WebSocketState.CONNECTING:
                await socket.accept()
            await socket.send_text(ws.error_text(error_code, message))
            await socket.close(close_code, reason=message.encode()[:120].decode(errors="ignore"))
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass  # the peer is gone already


class IdConvertor(IntegerConvertor):
    """``{name:id}``: a row id in a path. Any run of digits matches, so that every id reaches its
    handler and is answered as that route answers (404 with the JSON error, or an ``error``
    frame and close code 4404 on a socket); storage finds nothing beyond 64 bits. A run too
    long for ``int()`` (Python refuses more than 4,300 digits: a 500) stands for the first id
    beyond 64 bits, which names nothing either."""

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 4_000 else MAX_ROW_ID + 1


# Starlette's documented way to add a path convertor; "id" is ours alone.
register_url_convertor("id", IdConvertor())

routes = [
    Route("/api/health", api.health),
    Route("/api/games", api.list_games),
    Route("/api/leaderboard", api.leaderboard),
    Route("/api/ladder", api.ladder),
    Route("/api/users", api.create_user, methods=["POST"]),
    Route("/api/agents", api.list_agents, methods=["GET"]),
    Route("/api/agents", api.create_agent, methods=["POST"]),
    Route("/api/agents/{agent_id:id}", api.get_agent),
    Route("/api/agents/{agent_id:id}/logs", api.get_agent_logs),
    Route("/api/matches", api.list_matches, methods=["GET"]),
    Route("/api/matches", api.create_match, methods=["POST"]),
    Route("/api/matches/{match_id:id}", api.get_match),
    Route("/api/matches/{match_id:id}/replay", api_replay.get_replay),
    Route("/api/matches/{match_id:id}/events", api_replay.get_events),
    Route("/api/matches/{match_id:id}/abort", api_owner.abort_match, methods=["POST"]),
    Route("/api/users/me", api_owner.current_user),
    Route("/api/users/me/tokens/rotate", api_owner.rotate_token, methods=["POST"]),
    Route("/api/agents/{agent_id:id}", api_owner.update_agent, methods=["PATCH"]),
    Route("/api/matches/{match_id:id}/repro", api_owner.get_repro),
    WebSocketRoute("/ws/matches/{match_id:id}", guarded(ws.spectate)),
    WebSocketRoute("/ws/agent", guarded(agent_ws.serve_agent)),
    WebSocketRoute("/ws/lobby", ws.lobby),
    # The web app: pages read their id from the path; their scripts and styles live under /static.
    Route("/", web.index_page),
    Route("/matches/{match_id:id}", web.match_page),
    Route("/agents/{agent_id:id}", web.agent_page),
    Mount("/static", app=web.static_files(), name="static"),
]
