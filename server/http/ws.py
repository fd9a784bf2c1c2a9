"""WebSocket handlers: spectators of one match, and the lobby.

A spectator gets ``snapshot`` (the current state and the most recent events, a bounded
number: older ones are paged over HTTP, ``GET /api/matches/{id}/events``), then ``event``
frames, then ``end``; a finished match is served the same way from storage, as if joined
after its end. Spectator sockets are read-only: anything a spectator
sends gets an ``error`` frame. Each socket's task sends, at each wake-up, every frame of the
feed it has not sent yet (``Subscription.stream`` in ``server/matches/hub.py``). In a cluster, a
match another process runs has its feed opened on this hub by the relay at the first spectator's
demand (``server/cluster/relay.py``); its ``seat_debug`` frames stay on that process. A spectator
that falls too far behind (see there) is closed with ``CLOSE_TOO_SLOW`` (close codes and errors
are mapped in ``server/http/errors.py``).

The owner of a seat may open ``/ws/matches/{id}?seat=N`` with their token in the
``Authorization`` header: besides the public stream they get that seat's ``seat_debug``
frames (its log lines, per-move wall and CPU time and bank), the recent ones right after
the snapshot. Anyone else is refused (``Forbidden``, mapped to close code 4403 in
``server/http/errors.py``). The view runs in a ``Session`` of the token: rotating it closes the view.

A draining server closes every socket with 1001, going away (``server/http/sockets.py``); a
spectator whose match ended during the drain gets its ``end`` first, as always.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import ProtocolError, RateLimited, Unauthorized
from protocol.messages import End, SeatDebug
from server.http.auth import parse_bearer
from server.http.errors import CLOSE_TOO_SLOW, close_socket, error_text
from server.http.requests import require_seat_owner
from server.http.sessions import authenticate
from server.http.sockets import FrameRate, OpenSocket
from server.matches.documents import match_document, result_document
from server.matches.hub import (
    SEND_TIMEOUT_S,
    LobbySubscription,
    Subscription,
    event_frame,
    recent_frames,
    snapshot_frame,
)
from server.state import ArenaState, arena_state
from server.storage import MatchStatus

__all__ = ["lobby", "spectate"]

_FEED_WAIT_S = 2.0  # a just-created match opens its feed within moments


async def spectate(ws: WebSocket) -> None:
    """Stream one match; with ``?seat=N`` and the seat owner's token, that seat's debug frames too.

    Raises:
        MatchNotFound: no such match.
        ProtocolError, Unauthorized, Forbidden: a debug view asked with a bad seat, without a
            valid token, or by someone who does not own the seat.
    """
    state = arena_state(ws)
    match_id: int = ws.path_params["match_id"]
    await ws.accept()
    # A draining server closes it; a full match or an address with too many sockets refuses it
    # (server/http/sockets.py).
    async with state.sockets.open(ws, match_id=match_id) as sock:
        if "seat" not in ws.query_params:
            await _spectate(ws, state, sock, match_id, None)
            return
        seat, token_hash = await _owned_seat(ws, state, match_id)
        with state.sessions.open(token_hash) as session:
            with session.scope:
                await _spectate(ws, state, sock, match_id, seat)
            if session.is_revoked:
                raise Unauthorized("the token was rotated: this view is closed")


async def _owned_seat(ws: WebSocket, state: ArenaState, match_id: int) -> tuple[int, str]:
    """The seat of ``?seat=N`` once the caller's token shows they own it, and the token's hash."""
    raw = ws.query_params["seat"]
    try:
        seat = int(raw)
    except ValueError:
        raise ProtocolError(f"query parameter 'seat' must be an integer, got {raw!r}", field="seat") from None
    user, token_hash = await authenticate(state.storage, parse_bearer(ws.headers.get("authorization")))
    await require_seat_owner(state.storage, user, match_id, seat, "its debug view")
    return seat, token_hash


async def _spectate(ws: WebSocket, state: ArenaState, sock: OpenSocket, match_id: int, seat: int | None) -> None:
    deadline = anyio.current_time() + _FEED_WAIT_S
    while True:
        feed = state.hub.feed(match_id)
        if feed is None and state.relay is not None:  # run by another process of the cluster?
            feed = await state.relay.follow(match_id)
        if feed is not None:
            # The subscription owns its snapshot until sent. A relay's feed closed without an end
            # (the match is run again from its seed, or by this process now) goes on with a
            # fresh snapshot of the match's new feed, on the same socket.
            if await _stream(ws, feed.subscribe_seat(seat), sock, state.settings.read_only_frames_per_s,
                             may_resume=state.relay is not None):
                deadline = anyio.current_time() + _FEED_WAIT_S
                continue
            return
        match = await state.storage.get_match(match_id)  # no such match: an error frame and 4404
        if match.status in (MatchStatus.FINISHED, MatchStatus.ABORTED) or anyio.current_time() > deadline:
            break
        await anyio.sleep(0.02)  # pending: its feed opens as soon as its task runs
    # A finished match is a live one joined after its end: the final state, the most recent
    # events (as a late joiner's snapshot has them; older ones via GET .../events), then end.
    hub = state.hub
    tail = await state.storage.get_last_step_texts(match_id, hub.snapshot_events)
    seq = tail[-1][0] + 1 if tail else 0  # an event's seq is its step + 1
    events = recent_frames((event_frame(step + 1, text) for step, text in reversed(tail)), hub.snapshot_events,
                           hub.snapshot_bytes)
    last_state = codec.decode_json(tail[-1][1], max_bytes=len(tail[-1][1]))["state"] if tail else None
    end = End(seq=seq + 1, result=result_document(match))
    frames = [snapshot_frame(seq, match_document(match), last_state, events)]
    if seat is not None:  # the owner's view of a finished match: the seat's whole stored log
        log = await state.storage.get_log(match_id, seat) or ""
        frames.append(codec.encode(SeatDebug(seq=seq, seat=seat, step=max(0, seq - 1), log=log)).decode())
    frames.append(codec.encode(end).decode())
    sock.ends_by_itself = _always  # within SEND_TIMEOUT_S
    is_sent = await _send_frames(ws, frames)
    await close_socket(ws, sock.close_code if is_sent else CLOSE_TOO_SLOW)


async def _stream(
    ws: WebSocket, sub: Subscription | LobbySubscription, sock: OpenSocket, frames_per_s: int, *,
    may_resume: bool = False,
) -> bool:
    """Send the subscription's frames (its snapshot first, if any) as they come, until its end
    (see ``_Reader.stream`` in the hub), answering anything received with an error; then close.
    A peer that sends more than ``frames_per_s`` frames a second is cut off (``RateLimited``).

    With ``may_resume``, a match feed that closed without ``end`` leaves the socket open and
    returns True: the caller streams the match's next feed.
    """
    is_over = False  # the stream ended by itself (not the spectator leaving)
    if isinstance(sub, Subscription):  # once its end is out, the rest goes within SEND_TIMEOUT_S
        feed = sub.feed
        sock.ends_by_itself = lambda: feed.end is not None
    input_rate = FrameRate(frames_per_s, frames_per_s)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_refuse_input, ws, input_rate, tg.cancel_scope)
        try:
            await sub.stream(ws.send_text)
            is_over = True
        except WebSocketDisconnect:
            pass  # it left while frames were on their way
        tg.cancel_scope.cancel()
    if input_rate.refused:  # it sent frames faster than the rate: cut off, not served
        raise RateLimited(f"more than {frames_per_s} frames a second on a socket that takes none; closed")
    if is_over and may_resume and isinstance(sub, Subscription) and sub.feed.end is None and not sub.is_dropped:
        return True
    await close_socket(ws, CLOSE_TOO_SLOW if sub.is_dropped else sock.close_code)
    return False


async def _send_frames(ws: WebSocket, frames: Sequence[str]) -> bool:
    """Send frames in order; False when the socket took longer than ``SEND_TIMEOUT_S`` (a
    spectator that does not read is not kept forever) or the spectator has left."""
    with anyio.move_on_after(SEND_TIMEOUT_S):
        try:
            for frame in frames:
                await ws.send_text(frame)
        except WebSocketDisconnect:
            return False
        return True
    return False


async def _refuse_input(ws: WebSocket, rate: FrameRate, scope: anyio.CancelScope) -> None:
    """Answer each frame the spectator sends with an error, until it leaves or sends faster
    than ``rate`` (then the stream is cancelled: the caller closes the socket)."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect" or not rate.take():
                break
            await ws.send_text(error_text("read_only", "this socket only streams; it takes no frames"))
    except (WebSocketDisconnect, RuntimeError):
        pass
    scope.cancel()


async def lobby(ws: WebSocket) -> None:
    """Stream the lobby: matches starting and ending, ratings changing."""
    state = arena_state(ws)
    await ws.accept()
    async with state.sockets.open(ws) as sock:
        await _stream(ws, state.hub.subscribe_lobby(), sock, state.settings.read_only_frames_per_s)


def _always() -> bool:
    return True
