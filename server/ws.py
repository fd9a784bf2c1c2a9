"""WebSocket handlers: spectators of one match, and the lobby.

A spectator gets ``snapshot``, then ``event`` frames, then ``end``; a finished match is
served the same way from storage. Spectator sockets are read-only: anything a spectator
sends gets an ``error`` frame. A spectator whose queue overflows is closed with
``CLOSE_TOO_SLOW``.
"""

from __future__ import annotations

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import ArenaError
from protocol.messages import ErrorFrame, Event
from server.matches.hub import Subscription, snapshot_frame
from server.matches.manager import match_document, result_document
from server.state import ArenaState
from server.storage import MatchStatus

__all__ = ["CLOSE_NOT_FOUND", "CLOSE_TOO_SLOW", "lobby", "spectate"]

CLOSE_NORMAL = 1000
CLOSE_TOO_SLOW = 4008  # the spectator fell behind its queue and was dropped
CLOSE_NOT_FOUND = 4404
_SEND_TIMEOUT_S = 5.0  # a socket that cannot take one frame in this long is dropped
_FEED_WAIT_S = 2.0  # a just-created match opens its feed within moments


def _state(ws: WebSocket) -> ArenaState:
    state: ArenaState = ws.app.state.arena
    return state


def error_text(code: str, message: str) -> str:
    return codec.encode(ErrorFrame(code=code, message=message)).decode()


async def spectate(ws: WebSocket) -> None:
    state = _state(ws)
    match_id: int = ws.path_params["match_id"]
    await ws.accept()
    deadline = anyio.current_time() + _FEED_WAIT_S
    while True:
        feed = state.hub.feed(match_id)
        if feed is not None:
            snapshot, sub = feed.subscribe()
            await _stream(ws, snapshot, sub)
            return
        try:
            match = await state.storage.get_match(match_id)
        except ArenaError as exc:
            await ws.send_text(error_text(exc.code, str(exc)))
            await ws.close(CLOSE_NOT_FOUND)
            return
        if match.status in (MatchStatus.FINISHED, MatchStatus.ABORTED) or anyio.current_time() > deadline:
            break
        await anyio.sleep(0.02)  # pending: its feed opens as soon as its task runs
    steps = await state.storage.get_steps(match_id)
    events = [
        codec.encode(Event(seq=i + 1, step=s.step, actions=s.actions, statuses=s.statuses, rewards=s.rewards,
                           state=s.state, timing=s.timing)).decode()
        for i, s in enumerate(steps)
    ]
    last_state = steps[-1].state if steps else None
    end = {"type": "end", "seq": len(events) + 1, "result": result_document(match)}
    for frame in (snapshot_frame(len(events), match_document(match), last_state, events), codec.encode(end).decode()):
        with anyio.move_on_after(_SEND_TIMEOUT_S) as scope:
            await ws.send_text(frame)
        if scope.cancelled_caught:  # a spectator that does not read is not kept forever
            await _close(ws, CLOSE_TOO_SLOW)
            return
    await _close(ws, CLOSE_NORMAL)


async def _stream(ws: WebSocket, first: str, sub: Subscription) -> None:
    """Send ``first`` and then every queued frame; answer anything received with an error."""
    dropped = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(_refuse_input, ws, tg.cancel_scope)
        with anyio.move_on_after(_SEND_TIMEOUT_S) as scope:
            await ws.send_text(first)
        dropped = scope.cancelled_caught
        async with sub.receive:
            async for frame in sub.receive:
                if dropped:
                    break
                with anyio.move_on_after(_SEND_TIMEOUT_S) as scope:
                    await ws.send_text(frame)
                dropped = scope.cancelled_caught
        tg.cancel_scope.cancel()
    await _close(ws, CLOSE_TOO_SLOW if dropped or sub.dropped else CLOSE_NORMAL)


async def _refuse_input(ws: WebSocket, scope: anyio.CancelScope) -> None:
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            await ws.send_text(error_text("read_only", "this socket only streams; it takes no frames"))
    except (WebSocketDisconnect, RuntimeError):
        pass
    scope.cancel()


async def _close(ws: WebSocket, code: int) -> None:
    with anyio.move_on_after(1.0):
        try:
            await ws.close(code)
        except (RuntimeError, WebSocketDisconnect):
            pass  # already closed by the peer


async def lobby(ws: WebSocket) -> None:
    state = _state(ws)
    await ws.accept()
    sub = state.hub.subscribe_lobby()
    dropped = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_refuse_input, ws, tg.cancel_scope)
            async with sub.receive:
                async for frame in sub.receive:
                    with anyio.move_on_after(_SEND_TIMEOUT_S) as scope:
                        await ws.send_text(frame)
                    if scope.cancelled_caught:
                        dropped = True
                        break
            dropped = dropped or sub.dropped
            tg.cancel_scope.cancel()
    finally:
        state.hub.unsubscribe_lobby(sub)
    await _close(ws, CLOSE_TOO_SLOW if dropped else CLOSE_NORMAL)
