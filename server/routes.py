"""The route table, and the one place where errors become HTTP statuses and close codes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from protocol.errors import (
    ArenaError,
    ConfigError,
    Forbidden,
    GameError,
    NotFound,
    ProtocolError,
    RateLimited,
    StorageError,
    Unauthorized,
    ValidationFailed,
)

from . import agent_ws, api, api_owner, web, ws

__all__ = ["CLOSE_CODE", "HTTP_STATUS", "close_code_for", "exception_handlers", "guarded", "routes", "status_for"]

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
HTTP_STATUS: tuple[tuple[type[ArenaError], int], ...] = (
    (ValidationFailed, 422),
    (NotFound, 404),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (ConfigError, 400),
    (GameError, 400),
    (ProtocolError, 400),
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
            with anyio.move_on_after(1.0):
                try:
                    if socket.application_state is WebSocketState.CONNECTING:
                        await socket.accept()
                    await socket.send_text(ws.error_text(exc.code, str(exc)))
                    await socket.close(code, reason=str(exc).encode()[:120].decode(errors="ignore"))
                except (RuntimeError, WebSocketDisconnect, OSError):
                    pass  # the peer is gone already

    return endpoint


routes = [
    Route("/api/health", api.health),
    Route("/api/games", api.list_games),
    Route("/api/leaderboard", api.leaderboard),
    Route("/api/users", api.create_user, methods=["POST"]),
    Route("/api/agents", api.list_agents, methods=["GET"]),
    Route("/api/agents", api.create_agent, methods=["POST"]),
    Route("/api/agents/{agent_id:int}", api.get_agent),
    Route("/api/agents/{agent_id:int}/logs", api.get_agent_logs),
    Route("/api/matches", api.list_matches, methods=["GET"]),
    Route("/api/matches", api.create_match, methods=["POST"]),
    Route("/api/matches/{match_id:int}", api.get_match),
    Route("/api/matches/{match_id:int}/replay", api.get_replay),
    Route("/api/users/me", api_owner.current_user),
    Route("/api/users/me/tokens/rotate", api_owner.rotate_token, methods=["POST"]),
    Route("/api/agents/{agent_id:int}", api_owner.update_agent, methods=["PATCH"]),
    Route("/api/matches/{match_id:int}/repro", api_owner.get_repro),
    WebSocketRoute("/ws/matches/{match_id:int}", guarded(ws.spectate)),
    WebSocketRoute("/ws/agent", guarded(agent_ws.serve_agent)),
    WebSocketRoute("/ws/lobby", ws.lobby),
    # The web app: pages read their id from the path; their scripts and styles live under /static.
    Route("/", web.index_page),
    Route("/matches/{match_id:int}", web.match_page),
    Route("/agents/{agent_id:int}", web.agent_page),
    Mount("/static", app=web.static_files(), name="static"),
]
