"""The remote-agent SDK: play matches from your own machine over the arena's ``/ws/agent``.

::

    import anyio
    from client import RemoteAgent

    def make_player(start):                  # called once per match (and seat)
        def play(observation, configuration):
            return observation.board.index(0)
        return play

    anyio.run(RemoteAgent("http://127.0.0.1:8000", TOKEN, make_player).run)

``make_player(match_start)`` returns the player of one match: a callable
``(observation, configuration) -> action``, sync (run in a worker thread, so a slow move
never stalls the connection) or async, or an async context manager giving one (closed when
the match ends). Observations and configurations allow attribute access as on Kaggle. A
player that raises tells the server its bot failed (the seat ends ``ERROR``).

Theory of operation. One connection plays every match of its agents at once. Matches live
in the agent's own task group, not the connection's: when the connection drops, the agent
reconnects with backoff, the server sends ``match_start`` again for each match still running
and the pending ``turn``, and the match goes on where it was (a move already computed is
sent again; one being computed is sent when ready). Pings are answered at once, from the
reading loop: the server measures the round trip itself and credits it, capped, per move.
The token, a refused agent or an unsupported protocol end the agent with ``RemoteAgentError``.
"""

from __future__ import annotations

import inspect
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from protocol import codec
from protocol.errors import ProtocolError
from protocol.messages import (
    ActionFrame,
    AgentError,
    AgentServerMsg,
    ErrorFrame,
    Hello,
    MatchEnd,
    MatchStart,
    Ping,
    Pong,
    Turn,
    Welcome,
)

__all__ = ["Player", "RemoteAgent", "RemoteAgentError", "Struct", "agent_url", "run_agent"]

log = logging.getLogger(__name__)

Player = Callable[[Any, Any], Any]
#: Close codes after which reconnecting cannot help: a wrong or revoked token, someone
#: else's agent, a protocol the server does not speak, too many connections.
FATAL_CLOSE_CODES = {4400: "refused", 4401: "unauthorized", 4403: "forbidden", 4429: "rate_limited"}
MAX_FRAME_BYTES = 16 << 20  # a turn carries one observation; generous


class RemoteAgentError(Exception):
    """The server refused this agent for good (``code``: ``unauthorized``, ``forbidden``, ...),
    or could not be reached at all."""

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class Struct(dict[str, Any]):
    """A dict that also allows attribute access, as Kaggle's observations do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _struct(value: Any) -> Any:
    if isinstance(value, dict):
        return Struct({k: _struct(v) for k, v in value.items()})
    return value


def agent_url(server: str) -> str:
    """The ``/ws/agent`` URL of a server given as ``http(s)://HOST:PORT`` or ``ws(s)://...``.

    Raises:
        RemoteAgentError: not an http(s) or ws(s) URL.
    """
    parts = urllib.parse.urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise RemoteAgentError(f"server URL must look like http://HOST:PORT, got {server!r}", code="bad_input")
    path = parts.path if parts.path.endswith("/ws/agent") else parts.path + "/ws/agent"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


@dataclass(eq=False)
class _Match:
    """One match (and seat) being played: its turns arrive on ``turns``."""

    start: MatchStart
    turns: MemoryObjectSendStream[tuple[int, Turn]]
    receive: MemoryObjectReceiveStream[tuple[int, Turn]]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    answered_step: int = 0
    answered_generation: int = -1
    answer: ActionFrame | AgentError | None = None


class RemoteAgent:
    """Plays the matches of one user's remote agents over one connection at a time."""

    def __init__(
        self, server: str, token: str, make_player: Callable[[MatchStart], Any], *,
        agents: Sequence[int] | None = None, reconnect: bool = True, backoff_s: tuple[float, float] = (0.1, 5.0),
        open_timeout_s: float = 10.0, on_event: Callable[[AgentServerMsg], None] | None = None,
    ) -> None:
        self.url = agent_url(server)
        self.token = token
        self.make_player = make_player
        self.agents = list(agents) if agents is not None else None
        self.reconnect = reconnect
        self.backoff_s = backoff_s
        self.open_timeout_s = open_timeout_s
        self.on_event = on_event
        self.welcome: Welcome | None = None
        self.results: list[MatchEnd] = []
        self.errors: list[ErrorFrame] = []
        self.connections = 0  # how many times the server welcomed this agent
        self._matches: dict[tuple[int, int], _Match] = {}
        self._outbox: MemoryObjectSendStream[str] | None = None
        self._generation = 0
        self._max_matches: int | None = None
        self._fatal: RemoteAgentError | None = None
        self._ws: ClientConnection | None = None

    async def run(self, *, max_matches: int | None = None) -> list[MatchEnd]:
        """Play until cancelled (or until ``max_matches`` matches have ended); their results.

        Raises:
            RemoteAgentError: the server refused the token or the agents, or was never reachable.
        """
        self._max_matches = max_matches
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._connect_loop, tg)
        if self._fatal is not None:
            raise self._fatal
        return self.results

    async def drop_connection(self) -> None:
        """Close the current connection abruptly, as a network failure would (for tests and demos)."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # -- connection ----------------------------------------------------------------------------------

    async def _connect_loop(self, tg: TaskGroup) -> None:
        delay = self.backoff_s[0]
        while True:
            welcomed_before = self.connections
            try:
                await self._session(tg)
            except RemoteAgentError as exc:
                self._fatal = exc
                tg.cancel_scope.cancel()
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                if self.connections == 0 or not self.reconnect:
                    self._fatal = _unreachable(self.url, exc) if self.connections == 0 else RemoteAgentError(
                        f"connection to {self.url} lost: {exc}", code="disconnected")
                    tg.cancel_scope.cancel()
                    return
                log.warning("connection to %s lost (%s); reconnecting in %.1f s", self.url, exc, delay)
            if self._is_done():
                tg.cancel_scope.cancel()
                return
            if self.connections > welcomed_before:
                delay = self.backoff_s[0]
            await anyio.sleep(delay)
            delay = min(delay * 2, self.backoff_s[1])

    def _is_done(self) -> bool:
        return self._max_matches is not None and len(self.results) >= self._max_matches

    async def _session(self, tg: TaskGroup) -> None:
        async with connect(self.url, open_timeout=self.open_timeout_s, max_size=MAX_FRAME_BYTES,
                           close_timeout=2) as ws:
            self._ws = ws
            send, receive = anyio.create_memory_object_stream[str](4096)
            self._generation += 1
            last_error: ErrorFrame | None = None
            closed: ConnectionClosed | None = None
            try:
                async with send, receive, anyio.create_task_group() as conn_tg:
                    conn_tg.start_soon(self._write, ws, receive)
                    send.send_nowait(codec.encode(Hello(token=self.token, agents=self.agents)).decode())
                    self._outbox = send
                    try:
                        async for raw in ws:
                            msg = self._decode(raw)
                            if isinstance(msg, ErrorFrame):
                                last_error = msg
                            if msg is not None:
                                self._dispatch(msg, send, tg)
                            if self._is_done():
                                break
                    except ConnectionClosed as exc:
                        closed = exc
                    finally:
                        self._outbox = None
                        conn_tg.cancel_scope.cancel()
            finally:
                self._ws = None
        if closed is not None:
            code = closed.rcvd.code if closed.rcvd is not None else None
            if code in FATAL_CLOSE_CODES:
                reason = last_error.message if last_error is not None else (closed.rcvd.reason if closed.rcvd else "")
                raise RemoteAgentError(f"the arena server refused the agent: {reason}", code=FATAL_CLOSE_CODES[code])
            raise closed

    async def _write(self, ws: ClientConnection, frames: MemoryObjectReceiveStream[str]) -> None:
        try:
            async for frame in frames:
                await ws.send(frame)
        except ConnectionClosed:
            pass  # the reading loop sees it too, and says why

    def _decode(self, raw: str | bytes) -> AgentServerMsg | None:
        try:
            return codec.decode_agent_server(raw)
        except ProtocolError as exc:
            log.warning("ignored a frame from the server: %s", exc)
            return None

    def _dispatch(self, msg: AgentServerMsg, outbox: MemoryObjectSendStream[str], tg: TaskGroup) -> None:
        if isinstance(msg, Ping):  # at once: the server's clock runs until it hears back
            outbox.send_nowait(codec.encode(Pong(nonce=msg.nonce)).decode())
            return
        if isinstance(msg, Welcome):
            self.welcome = msg
            self.connections += 1
        elif isinstance(msg, MatchStart):
            key = (msg.match_id, msg.seat)
            if key not in self._matches:  # else: resumed after a reconnect; the player lives on
                send, receive = anyio.create_memory_object_stream[tuple[int, Turn]](64)
                match = self._matches[key] = _Match(msg, send, receive)
                tg.start_soon(self._play, match)
        elif isinstance(msg, Turn):
            found = self._matches.get((msg.match_id, msg.seat if msg.seat is not None else -1))
            found = found or next((m for (mid, _), m in self._matches.items() if mid == msg.match_id), None)
            if found is None:
                log.warning("turn for unknown match %s", msg.match_id)
            else:
                try:
                    found.turns.send_nowait((self._generation, msg))
                except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    log.warning("match %s: turn %s dropped", msg.match_id, msg.step)
        elif isinstance(msg, MatchEnd):
            self.results.append(msg)
            key = (msg.match_id, msg.seat if msg.seat is not None else -1)
            ended = self._matches.pop(key, None)
            if ended is not None:
                ended.scope.cancel()
                ended.turns.close()
        elif isinstance(msg, ErrorFrame):
            self.errors.append(msg)
            where = f" (match {msg.match_id})" if msg.match_id is not None else ""
            log.warning("the arena server says %s%s: %s", msg.code, where, msg.message)
        if self.on_event is not None:
            self.on_event(msg)

    def _send(self, frame: ActionFrame | AgentError) -> bool:
        outbox = self._outbox
        if outbox is None:
            return False
        try:
            outbox.send_nowait(codec.encode(frame).decode())
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    # -- matches -------------------------------------------------------------------------------------

    async def _play(self, match: _Match) -> None:
        start = match.start
        configuration = _struct(start.configuration)
        failure: str | None = None
        with match.scope:
            async with AsyncExitStack() as stack, match.receive:
                try:
                    player = await _open_player(self.make_player, start, stack)
                except Exception as exc:
                    log.exception("match %s: make_player failed", start.match_id)
                    failure = f"the player could not start: {type(exc).__name__}: {exc}"
                async for generation, turn in match.receive:
                    if turn.step < match.answered_step:
                        continue
                    if turn.step == match.answered_step:  # sent again after a reconnect
                        if generation > match.answered_generation and match.answer is not None:
                            match.answered_generation = generation
                            self._send(match.answer)
                        continue
                    frame: ActionFrame | AgentError
                    if failure is not None:
                        frame = AgentError(match_id=start.match_id, step=turn.step, message=failure, seat=start.seat)
                    else:
                        try:
                            action = await _call(player, _struct(turn.observation), configuration)
                            frame = ActionFrame(match_id=start.match_id, step=turn.step, action=action,
                                                seat=start.seat)
                        except Exception as exc:
                            log.warning("match %s: the player raised at step %s: %r", start.match_id, turn.step, exc)
                            frame = AgentError(match_id=start.match_id, step=turn.step,
                                               message=f"{type(exc).__name__}: {exc}", seat=start.seat)
                    match.answered_step, match.answer = turn.step, frame
                    match.answered_generation = self._generation
                    self._send(frame)


async def _open_player(make_player: Callable[[MatchStart], Any], start: MatchStart, stack: AsyncExitStack) -> Player:
    made = make_player(start)
    if inspect.isawaitable(made):
        made = await made
    if hasattr(made, "__aenter__"):
        made = await stack.enter_async_context(made)
    elif hasattr(made, "__enter__"):
        made = stack.enter_context(made)
    if not callable(made):
        raise TypeError(f"make_player must give a callable player, got {type(made).__name__}")
    player: Player = made
    return player


async def _call(player: Player, observation: Any, configuration: Any) -> Any:
    call_method = type(player).__dict__.get("__call__")  # an object whose __call__ is async
    if inspect.iscoroutinefunction(player) or inspect.iscoroutinefunction(call_method):
        result = await player(observation, configuration)
    else:
        # A sync bot may think for a while: in a worker thread, so pings and other matches go on.
        result = await anyio.to_thread.run_sync(partial(player, observation, configuration), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


def _unreachable(url: str, exc: BaseException) -> RemoteAgentError:
    if isinstance(exc, InvalidStatus):
        return RemoteAgentError(f"the arena server at {url} refused the agent socket: HTTP "
                                f"{exc.response.status_code}", code="refused")
    if isinstance(exc, InvalidURI | InvalidHandshake):
        return RemoteAgentError(f"the arena server at {url} refused the agent socket: {exc}", code="refused")
    return RemoteAgentError(f"cannot reach the arena server at {url}: {exc}", code="unreachable")


def run_agent(server: str, token: str, make_player: Callable[[MatchStart], Awaitable[Player] | Player],
              **options: Any) -> list[MatchEnd]:
    """Run a ``RemoteAgent`` in a fresh event loop until it stops (a blocking convenience)."""
    max_matches = options.pop("max_matches", None)
    agent = RemoteAgent(server, token, make_player, **options)
    return anyio.run(partial(agent.run, max_matches=max_matches))
