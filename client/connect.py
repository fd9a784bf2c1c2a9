"""``arena connect``: play a local bot file as a remote agent, from this machine.

The bot is registered (or found again) as a remote agent named after its file, and the SDK
(:mod:`client.sdk`) plays every match the server starts for it. Each match gets a fresh
player: by default the bot runs in the local sandbox exactly as on the server (one process
per match, ``server.matches.seats.open_process_seat``); with ``--no-sandbox`` it runs in this
process, with the same Kaggle semantics (``agent`` or the last top-level function, dicts
with attribute access, module globals kept between the moves of one match).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import math
import types
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.messages import JSON, AgentServerMsg, ErrorFrame, MatchEnd, MatchStart, Welcome

from .botfiles import read_bot, validated_bots
from .errors import CliError
from .http import ApiClient
from .output import err, out
from .terminal import printable, quoted_lines

if TYPE_CHECKING:
    from server.sandbox import Limits, SeatLauncher

__all__ = ["add_parser", "cmd_connect", "ensure_remote_agent", "list_agents", "my_agents"]


def add_parser(sub: Any, remote: argparse.ArgumentParser) -> None:
    p = sub.add_parser("connect", parents=[remote], help="play a local bot as a remote agent")
    p.add_argument("bot", metavar="BOT")
    p.add_argument("--game", required=True)
    p.add_argument("--name", help="agent name (default: the file name without .py)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the bot in this process instead of the local sandbox (your own code only)")
    p.add_argument("--matches", type=int, metavar="N", help="stop after N matches (default: play until Ctrl-C)")
    p.set_defaults(func=cmd_connect)


def cmd_connect(args: argparse.Namespace) -> int:
    import anyio

    from .sdk import RemoteAgent, RemoteAgentError

    if not args.token:
        raise CliError("connecting needs a token: pass --token, set ARENA_TOKEN or run arena login",
                       code="unauthorized")
    make_player: Callable[[MatchStart], Any] | None = None  # None: the local sandbox's, made below
    if args.no_sandbox:
        code = _source(read_bot(args.bot), args.bot)
        make_player = in_process_players(code, args.bot)
    else:
        code = validated_bots([args.bot])[0]
    api = ApiClient(args.server, args.token)
    name = args.name or Path(args.bot).stem
    agent = ensure_remote_agent(api, name, args.game)
    err(f"agent {printable(agent['id'])}: {printable(name)} ({printable(args.game)}), playing from here "
        f"({'in this process' if args.no_sandbox else 'in the local sandbox'}); waiting for matches")

    def on_event(msg: AgentServerMsg) -> None:
        if isinstance(msg, Welcome) and msg.user_id and agent["id"] not in msg.agents:
            err(f"arena: warning: the server does not list agent {agent['id']} for this connection")
        elif isinstance(msg, MatchStart):
            out(f"match {msg.match_id}: playing seat {msg.seat} ({printable(msg.game)})")
        elif isinstance(msg, MatchEnd):
            out(f"match {msg.match_id}: {describe_result(msg)}")
        elif isinstance(msg, ErrorFrame):
            where = f" (match {msg.match_id})" if msg.match_id is not None else ""
            err(f"arena: server says {printable(msg.code)}{where}: {printable(msg.message)}")

    async def play_matches() -> None:
        async with AsyncExitStack() as stack:
            players = make_player
            if players is None:  # the local sandbox: its seats (and their fork server) for as long as we play
                from server.sandbox import serve_seats

                players = sandboxed_players(code, await stack.enter_async_context(serve_seats()))
            remote = RemoteAgent(args.server, args.token, players, agents=[agent["id"]], on_event=on_event)
            await remote.run(max_matches=args.matches)

    try:
        anyio.run(play_matches)
    except RemoteAgentError as exc:
        raise CliError(str(exc), code=exc.code) from None
    return 0


def describe_result(msg: MatchEnd) -> str:
    """One line on how a match ended for the seat this agent played."""
    result = msg.result
    if result.get("status") != "finished":
        return printable(result.get("status", "ended"))
    seats = [s for s in result.get("seats") or [] if isinstance(s, dict)]
    seat = msg.seat if msg.seat is not None and msg.seat < len(seats) else None
    if seat is None:
        return "finished"
    mine = seats[seat]
    winner = result.get("winner")
    verdict = "won" if winner == seat else "draw" if winner is None else "lost"
    reason = f": {printable(mine['reason'])}" if mine.get("reason") else ""
    return f"{verdict} ({printable(mine.get('status'))}, reward {printable(mine.get('reward'))}){reason}"


def ensure_remote_agent(api: ApiClient, name: str, game: str) -> dict[str, JSON]:
    """The caller's remote agent ``name`` of ``game``, registered if it does not exist yet.

    Raises:
        CliError: a wrong token, or the name is taken by a submitted agent or another game.
    """
    me = api.get("/api/users/me")
    for agent in my_agents(api, int(me["user_id"])):
        if agent.get("name") != name:
            continue
        if not agent.get("remote"):
            raise CliError(f"you already have a submitted agent named {name!r} (agent {agent.get('id')}); "
                           "pass --name to play under another name", code="name_taken")
        if agent.get("game") != game:
            raise CliError(f"your agent {name!r} plays {agent.get('game')}, not {game}; pass --name",
                           code="name_taken")
        return agent
    created: dict[str, JSON] = api.post("/api/agents", {"name": name, "game": game, "remote": True})
    return created


def my_agents(api: ApiClient, user_id: int) -> list[dict[str, JSON]]:
    """Every agent of the user, all pages."""
    return list_agents(api, f"user={user_id}")


def list_agents(api: ApiClient, query: str = "") -> list[dict[str, JSON]]:
    """Every agent ``GET /api/agents?QUERY`` lists (``user=ID``, ``game=NAME``), all pages."""
    agents: list[dict[str, JSON]] = []
    cursor: str | None = None
    while True:
        page = api.get(f"/api/agents?{query + '&' if query else ''}limit=200" + (f"&cursor={cursor}" if cursor else ""))
        agents += [a for a in page.get("items", []) if isinstance(a, dict)]
        cursor = page.get("next")
        if not cursor:
            return agents


# -- players --------------------------------------------------------------------------------------


def sandboxed_players(code: str, launcher: SeatLauncher) -> Callable[[MatchStart], Any]:
    """A player factory running ``code`` in the local sandbox, one process per match, opened by ``launcher``."""
    from server.matches.seats import SeatStart, open_process_seat

    @asynccontextmanager
    async def make_player(start: MatchStart) -> AsyncIterator[Callable[[Any, Any], Any]]:
        label = f"match {start.match_id} seat {start.seat}"
        async with open_process_seat(launcher, code, _limits_for(start.configuration), label=label) as seat:
            await seat.start(SeatStart(seat=start.seat, seed=start.seed or 0, configuration=start.configuration))
            steps = itertools.count(1)

            async def play(observation: Any, configuration: Any) -> Any:
                reply = await seat.act(next(steps), dict(observation))
                return reply.action

            try:
                yield play
            finally:
                log = seat.log_text()
                if log.strip():
                    err(f"--- log of match {start.match_id} ---\n{quoted_lines(log)}")

    return make_player


def _limits_for(configuration: Any) -> Limits:
    """The local seat's limits, its CPU limit from the match's time controls (as the server's)."""
    from server.sandbox import Limits
    from server.sandbox.limits import seat_cpu_s

    limits = Limits()
    try:
        agent_s, run_s = float(configuration["agentTimeout"]), float(configuration["runTimeout"])
    except (KeyError, TypeError, ValueError):
        return limits  # a server that sent no time controls: the sandbox's default
    if not (math.isfinite(agent_s) and math.isfinite(run_s)):
        return limits
    return dataclasses.replace(limits, cpu_s=seat_cpu_s(agent_s, run_s, limits.grace_s))


def in_process_players(code: str, path: str) -> Callable[[MatchStart], Callable[[Any, Any], Any]]:
    """A player factory running ``code`` here: fresh module globals per match, Kaggle's rules."""
    from server.sandbox.seat.bot_runtime import arity, find_agent  # standard library only

    tree = ast.parse(code, filename=path)
    compiled = compile(tree, path, "exec", dont_inherit=True)

    def make_player(start: MatchStart) -> Callable[[Any, Any], Any]:
        module = types.ModuleType("bot")
        exec(compiled, module.__dict__)  # the author's own code on the author's own machine (--no-sandbox)
        agent = find_agent(module.__dict__, tree)
        if agent is None:
            raise ValueError(f"no function named 'agent' and no top-level function in {path}")
        n_args = arity(agent)

        def play(observation: Any, configuration: Any) -> Any:
            return agent(*(observation, configuration)[:n_args])

        return play

    return make_player


def _source(data: bytes, path: str) -> str:
    try:
        code = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not UTF-8 text (byte {exc.start})", code="bad_input") from None
    try:
        ast.parse(code, filename=path)
    except SyntaxError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.offset}: syntax error: {exc.msg}", code="bad_input") from None
    return code
