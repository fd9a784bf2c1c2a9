"""The one place where errors become HTTP statuses and WebSocket close codes.

An ``ArenaError`` raised by an HTTP handler is answered with the status of ``HTTP_STATUS`` and
a JSON ``{"error": {"code", "message", ...}}`` body (``exception_handlers``, installed on the
app); one raised by a WebSocket handler (every one is ``guarded`` in the route table) ends the
socket with an ``error`` frame and the close code of ``CLOSE_CODE``. The close codes of a
socket that ends without an error are here too. An error no table names is our own bug: it is
logged and answered 500, or closed with 1011. A client that hangs up in the middle of sending
its request is no error of anyone's: it is not logged as one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from protocol import codec
from protocol.errors import (
    ArenaError,
    ConfigError,
    ConfigOutOfRange,
    Conflict,
    Forbidden,
    Full,
    GameError,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerDraining,
    StorageError,
    Unauthorized,
    ValidationFailed,
)
from protocol.messages import JSON, ErrorFrame

__all__ = [
    "CLOSE_CODE",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_TOO_SLOW",
    "HTTP_STATUS",
    "close_code_for",
    "close_socket",
    "error_body",
    "error_text",
    "exception_handlers",
    "guarded",
    "json_response",
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
    (Full, 503),
    (ServerDraining, 503),  # a load balancer sends the request to another server
    (ConfigOutOfRange, 422),  # DESIGN.md: a value outside its range, or not a finite number
    (ConfigError, 400),
    (GameError, 400),
    (ProtocolError, 400),
    (Conflict, 409),
    (StorageError, 409),
)


def status_for(exc: ArenaError) -> int:
    """The HTTP status of an error: that of the first class of ``HTTP_STATUS`` it is one of, else 500."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    """The JSON body of an error answer."""
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
    response = json_response(error_body(exc.code, str(exc), **extra), status)
    if headers:
        response.headers.update(headers)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response(error_body(code, str(exc.detail)), exc.status_code)


def json_response(data: JSON, status: int = 200) -> Response:
    """``data`` encoded as a JSON response (here, below everything that reads the app's state:
    every handler answers with it, the error handlers too)."""
    return Response(codec.encode_json(data), status_code=status, media_type="application/json")


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its request was read (``ClientDisconnect``): not our error, and
    nobody reads the answer."""
    log.debug("client left during a request to %s", request.url.path)
    return Response(status_code=400)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path, exc_info=exc)
    return json_response(error_body("internal", "internal server error"), 500)


exception_handlers = {
    ArenaError: arena_error, HTTPException: http_error, ClientDisconnect: client_gone, Exception: server_error,
}

# WebSocket close codes: an error that ends a socket is sent as an ``error`` frame, then this code.
CLOSE_CODE: tuple[tuple[type[ArenaError], int], ...] = (
    (NotFound, 4404),
    (Unauthorized, 4401),
    (Forbidden, 4403),
    (RateLimited, 4429),
    (Full, 1013),  # try again later
    (ServerDraining, 1001),
    (ProtocolError, 4400),
    (GameError, 4400),
)
CLOSE_INTERNAL = 1011  # our own bug, or an error the table does not name
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is draining before it stops (server/http/sockets.py)
CLOSE_TOO_SLOW = 4008  # the peer fell too far behind (or its socket stalled) and was dropped


def close_code_for(exc: ArenaError) -> int:
    """The close code of an error that ends a socket: that of ``CLOSE_CODE``, else ``CLOSE_INTERNAL``."""
    for cls, code in CLOSE_CODE:
        if isinstance(exc, cls):
            return code
    return CLOSE_INTERNAL


def error_text(code: str, message: str) -> str:
    """The text of an ``error`` frame."""
    return codec.encode(ErrorFrame(code=code, message=message)).decode()


async def close_socket(ws: WebSocket, code: int) -> None:
    """Close with ``code``, giving up after a second (also on any WebSocket of the app)."""
    with anyio.move_on_after(1.0):
        try:
            await ws.close(code)
        except (RuntimeError, WebSocketDisconnect):
            pass  # already closed by the peer


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
            await socket.send_text(error_text(error_code, message))
            await socket.close(close_code, reason=message.encode()[:120].decode(errors="ignore"))
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass  # the peer is gone already
