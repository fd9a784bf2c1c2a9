"""The remote-agent WebSocket ``/ws/agent``: authentication, then frames to and from matches.

Theory of operation. A client authenticates with ``Authorization: Bearer TOKEN`` or, without
the header, with a first ``hello`` frame carrying the token; it gets ``welcome`` with the
agents the connection plays (every remote agent of the user, or those ``hello.agents``
names; a later ``hello`` narrows again). The connection is then registered with
``RemoteAgents`` (``server/matches/remote.py``), which binds it the seats of that user's
matches: their frames arrive in the connection's outbox, which one task here drains to the
socket. Another task pings every few seconds to measure the round trip, and the handler
itself reads frames: ``action`` and ``agent_error`` are routed to their seat, ``pong`` to
the clock.

A bad frame (too large, not JSON, unknown type, malformed, wrong step, not the sender's
seat, a finished match, or over the rate limit) gets an ``error`` frame and is otherwise
ignored. The rate limit (a token bucket, ``remote_frames_per_s`` a second and as many in a
burst) counts only frames beyond the answers the server asked for (one per ``turn`` and
``ping`` sent), so a client playing many fast matches is never throttled: it never ends the
connection, nor touches another one. A client that stops reading is dropped (close code
4008) and its seats wait for it to reconnect. The connection runs in a ``Session`` of its
token, so rotating the token closes it at once. Errors that end the connection (bad token,
not one's agent, too many connections) are raised as ``ArenaError`` and turned into an
``error`` frame and a close code in ``server/http/errors.py``. A draining server closes the
connection with 1001 once its matches have ended (``server/http/sockets.py``).
"""

from __future__ import annotations

import logging

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import Forbidden, MatchNotFound, ProtocolError, Unauthorized
from protocol.messages import PROTOCOL_VERSION, ActionFrame, AgentError, ErrorFrame, Hello, Pong, Welcome
from server.http.auth import parse_bearer
from server.http.errors import CLOSE_TOO_SLOW, close_socket
from server.http.sessions import authenticate
from server.http.sockets import FrameRate
from server.matches.remote import AgentConnection, Refusal, RefusalCode, RemoteSeat
from server.state import ArenaState, arena_state
from server.storage import MatchStatus, UserRecord

__all__ = ["MAX_HELLO_AGENTS", "serve_agent"]

log = logging.getLogger(__name__)

_SEND_TIMEOUT_S = 10.0  # a socket that cannot take one frame in this long is dropped
# A hello naming more agents is refused before any lookup: a 1 MiB frame holds some 150,000 ids,
# and a connection that plays more agents than this can leave ``agents`` out (it then plays all).
MAX_HELLO_AGENTS = 1000
_FIRST_PINGS_S = (0.0, 0.1, 0.2)  # a first estimate of the round trip right after welcome


async def serve_agent(ws: WebSocket) -> None:
    """Authenticate a remote agent and serve its frames until it leaves.

    Raises:
        Unauthorized: no token, a wrong or revoked one (also later, when it is rotated).
        Forbidden: ``hello.agents`` names an agent that is not the user's remote agent.
        ProtocolError: a first frame that is not a usable ``hello``, or one naming more than
            ``MAX_HELLO_AGENTS`` agents.
        RateLimited: the user has too many agent connections open.
    """
    state = arena_state(ws)
    await ws.accept()
    async with state.sockets.open(ws) as sock:  # a draining server closes it with 1001 (server/http/sockets.py)
        token = parse_bearer(ws.headers.get("authorization"))
        hello = None
        if token is None:
            hello = await _receive_hello(ws, state.settings.remote_hello_timeout_s, state.settings.max_frame_bytes)
            token = hello.token
        user, token_hash = await authenticate(state.storage, token)
        agents = await _playable(state, user, hello.agents if hello is not None else None)
        conn = AgentConnection(user.id, None if hello is None or hello.agents is None else frozenset(agents))
        try:
            with state.sessions.open(token_hash) as session:
                conn.offer(Welcome(user_id=user.id, agents=agents))
                state.manager.remotes.attach(conn)
                try:
                    with session.scope:
                        await _serve(ws, state, conn, user)
                finally:
                    state.manager.remotes.detach(conn)
                if session.is_revoked:
                    raise Unauthorized("the token was rotated: this connection is closed")
        finally:
            conn.close()
        await close_socket(ws, CLOSE_TOO_SLOW if conn.is_broken else sock.close_code)


async def _receive_hello(ws: WebSocket, timeout_s: float, max_frame_bytes: int) -> Hello:
    with anyio.move_on_after(timeout_s):
        message = await ws.receive()
        data = message.get("text") if message.get("text") is not None else message.get("bytes")
        if message["type"] == "websocket.disconnect" or data is None:
            raise Unauthorized("the connection closed before a hello frame")
        if len(data) >= max_frame_bytes:
            raise ProtocolError(f"a frame of {len(data)} bytes is too large; frames must stay under "
                                f"{max_frame_bytes} bytes", code="too_large")
        msg = codec.decode_agent_client(data)
        if not isinstance(msg, Hello) or not msg.token:
            raise Unauthorized("send 'Authorization: Bearer TOKEN' or a first hello frame with a token")
        if msg.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {msg.protocol_version} is not supported; "
                                f"this server speaks {PROTOCOL_VERSION}", code="unsupported_version")
        return msg
    raise Unauthorized(f"no hello frame within {timeout_s:g} s")


async def _playable(state: ArenaState, user: UserRecord, wanted: list[int] | None) -> list[int]:
    """The ids of the user's remote agents, or of those in ``wanted`` once each is checked
    (all of them in one query).

    Raises:
        ProtocolError: ``wanted`` names more than ``MAX_HELLO_AGENTS`` agents.
        Forbidden: one of ``wanted`` is someone else's agent, unknown, or not a remote agent.
    """
    if wanted is None:
        agents, cursor = await state.storage.list_agents(user_id=user.id, limit=500)
        ids = [a.id for a in agents if a.remote]
        while cursor is not None:
            more, cursor = await state.storage.list_agents(user_id=user.id, cursor=cursor, limit=500)
            ids += [a.id for a in more if a.remote]
        return ids
    if len(wanted) > MAX_HELLO_AGENTS:
        raise ProtocolError(f"hello names {len(wanted)} agents, at most {MAX_HELLO_AGENTS}; leave 'agents' out "
                            "to play every remote agent of yours", code="too_many_agents", field="agents")
    found = await state.storage.get_agents(wanted)
    for agent_id in wanted:
        agent = found.get(agent_id)
        if agent is None or agent.user_id != user.id:  # unknown is said the same way as someone else's
            raise Forbidden(f"agent {agent_id} is not one of your agents")
        if not agent.remote:
            raise Forbidden(f"agent {agent_id} ({agent.name!r}) is not a remote agent: register it with "
                            '{"remote": true}')
    return sorted(set(wanted))


async def _serve(ws: WebSocket, state: ArenaState, conn: AgentConnection, user: UserRecord) -> None:
    async with anyio.create_task_group() as tg:
        conn.on_broken = tg.cancel_scope.cancel
        tg.start_soon(_send_frames, ws, conn, tg.cancel_scope)
        tg.start_soon(_ping, conn, state.settings.remote_ping_interval_s)
        await _receive_frames(ws, state, conn, user)
        tg.cancel_scope.cancel()


async def _send_frames(ws: WebSocket, conn: AgentConnection, scope: anyio.CancelScope) -> None:
    async for frame in conn.outbox:
        with anyio.move_on_after(_SEND_TIMEOUT_S) as send_scope:
            try:
                await ws.send_text(frame)
            except (WebSocketDisconnect, RuntimeError):  # the peer left: the receiving side ends the session
                return
        if send_scope.cancelled_caught:
            log.info("user %s: an agent connection did not take a frame in %g s; dropped",
                     conn.user_id, _SEND_TIMEOUT_S)
            conn.is_broken = True
            scope.cancel()
            return


async def _ping(conn: AgentConnection, interval_s: float) -> None:
    for delay in _FIRST_PINGS_S:
        await anyio.sleep(delay)
        conn.ping()
    while True:
        await anyio.sleep(interval_s)
        conn.ping()


async def _receive_frames(ws: WebSocket, state: ArenaState, conn: AgentConnection, user: UserRecord) -> None:
    settings = state.settings
    rate = FrameRate(settings.remote_frames_per_s, settings.remote_frames_per_s)
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text") if message.get("text") is not None else message.get("bytes")
        if data is None:
            continue
        if not (conn.take_solicited() or rate.take()):
            conn.offer(ErrorFrame(code="rate_limited",
                                  message=f"more than {settings.remote_frames_per_s} frames a second; frame ignored"))
            continue
        if len(data) >= settings.max_frame_bytes:
            conn.offer(ErrorFrame(code="too_large", message=f"a frame of {len(data)} bytes is too large; "
                                  f"frames must stay under {settings.max_frame_bytes} bytes"))
            continue
        try:
            msg = codec.decode_agent_client(data)
        except ProtocolError as exc:
            conn.offer(ErrorFrame(code=exc.code, message=str(exc)))
            continue
        if isinstance(msg, Pong):
            if not conn.pong(msg.nonce):
                conn.offer(ErrorFrame(code="unknown_nonce", message=f"no ping with nonce {msg.nonce!r} is pending"))
        elif isinstance(msg, Hello):
            await _rehello(state, conn, user, msg)
        else:
            await _route(state, conn, msg)


async def _rehello(state: ArenaState, conn: AgentConnection, user: UserRecord, hello: Hello) -> None:
    """A later ``hello``: the same user may narrow (or widen) the agents this connection plays."""
    if hello.token is not None:
        try:
            other, _ = await authenticate(state.storage, hello.token)
        except Unauthorized as exc:
            conn.offer(ErrorFrame(code=exc.code, message=str(exc)))
            return
        if other.id != user.id:
            conn.offer(ErrorFrame(code="forbidden", message="a connection plays for one user only"))
            return
    try:
        agents = await _playable(state, user, hello.agents)
    except (Forbidden, ProtocolError) as exc:
        conn.offer(ErrorFrame(code=exc.code, message=str(exc)))
        return
    conn.offer(Welcome(user_id=user.id, agents=agents))
    state.manager.remotes.narrow(conn, None if hello.agents is None else frozenset(agents))


async def _route(state: ArenaState, conn: AgentConnection, msg: ActionFrame | AgentError) -> None:
    """Hand an ``action`` or ``agent_error`` to its seat, or answer why not."""
    found = state.manager.remotes.agent_seat(conn, msg.match_id, msg.seat, msg.step)
    if isinstance(found, RemoteSeat):
        refused = found.deliver(msg.step, msg.action) if isinstance(msg, ActionFrame) else found.fail(
            msg.step, msg.message)
        if refused is not None:
            conn.offer(ErrorFrame(code="wrong_step", message=refused, match_id=msg.match_id))
        return
    if found.code is RefusalCode.UNKNOWN_MATCH:
        found = await _unknown_match(state, msg.match_id)
    conn.offer(ErrorFrame(code=found.code.value, message=found.message, match_id=msg.match_id))


async def _unknown_match(state: ArenaState, match_id: int) -> Refusal:
    """Why a match without live remote seats takes no frames: over, someone else's, or unknown."""
    if match_id in state.manager.running:
        return Refusal(RefusalCode.NOT_YOUR_SEAT, f"match {match_id} has no seat this connection plays")
    try:
        match = await state.storage.get_match(match_id)
    except MatchNotFound:
        return Refusal(RefusalCode.UNKNOWN_MATCH, f"match {match_id} not found")
    if match.status in (MatchStatus.FINISHED, MatchStatus.ABORTED):
        return Refusal(RefusalCode.MATCH_OVER, f"match {match_id} is over ({match.status.value})")
    return Refusal(RefusalCode.NOT_YOUR_SEAT, f"match {match_id} has no seat this connection plays")
