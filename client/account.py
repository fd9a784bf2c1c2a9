"""Account commands: ``arena signup NAME`` (a new account, its token saved), ``arena login``
(save the server and token), ``arena token rotate`` (a new token for the old one), ``arena
agents`` (list mine; ``disable`` and ``enable`` one), ``arena logs AGENT --match ID`` (one of
my agents' log in a match) and ``arena abort MATCH`` (stop a match one of my agents plays, or
any match as an operator).

A token is shown once, by the server's answer to a signup or a rotation: these commands print
it on a line of its own and save it where ``arena login`` does (:mod:`client.config`), so the
next command uses it. A rotation saves the new token only when the old one was the saved one:
a token given by ``--token`` or ``ARENA_TOKEN`` for another account leaves the file alone.
"""

from __future__ import annotations

import argparse
import os
import urllib.parse
from typing import Any

from .config import load_config, save_config
from .connect import list_agents, my_agents
from .errors import CliError
from .http import ApiClient
from .options import remote_flags
from .output import err, out, out_json
from .terminal import printable

__all__ = [
    "add_parsers", "cmd_abort", "cmd_agents", "cmd_login", "cmd_logs", "cmd_set_disabled", "cmd_signup",
    "cmd_token_rotate", "resolve_agent",
]  # fmt: skip


def add_parsers(sub: Any, remote: argparse.ArgumentParser) -> None:
    nested = remote_flags(nested=True)

    p = sub.add_parser("signup", parents=[remote], help="make an account; its token is shown once and saved")
    p.add_argument("name", metavar="NAME", help="the user name (1-40 letters, digits, _ . -)")
    p.add_argument("--no-save", action="store_true", help="only print the token; do not save it")
    p.add_argument("--json", action="store_true", help="print the server's answer (user_id, name, token)")
    p.set_defaults(func=cmd_signup)

    p = sub.add_parser("login", parents=[remote], help="check a token and save it with the server URL")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("token", parents=[remote], help="manage my API token (rotate)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("rotate", parents=[nested], help="a new token; the old one stops working at once")
    a.add_argument("--json", action="store_true", help="print the server's answer")
    a.set_defaults(func=cmd_token_rotate)

    p = sub.add_parser("agents", parents=[remote], help="list my agents, or change one (disable, enable)",
                       description="With no ACTION: list my agents. An ACTION changes one of them.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_agents)
    # One subcommand per change of one agent; plain ``arena agents`` lists them.
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    for name, disabled, what in (("disable", True, "stop my agent playing new matches (ladder and challenges)"),
                                 ("enable", False, "let my disabled agent play again")):
        a = actions.add_parser(name, parents=[nested], help=what)
        a.add_argument("agent", metavar="AGENT", help="agent id or name")
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the agent document")
        a.set_defaults(func=cmd_set_disabled, disabled=disabled)

    p = sub.add_parser("logs", parents=[remote], help="show my agent's log of one match")
    p.add_argument("agent", metavar="AGENT", help="agent id or name")
    p.add_argument("--match", type=int, required=True, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("abort", parents=[remote], help="stop a live match (one my agent plays; any, as an operator)")
    p.add_argument("match", type=int, metavar="MATCH")
    p.add_argument("--json", action="store_true", help="print the stopped match's document")
    p.set_defaults(func=cmd_abort)


def _api(args: argparse.Namespace, what: str) -> ApiClient:
    if not args.token:
        raise CliError(f"{what} needs a token: pass --token, set ARENA_TOKEN or run arena login",
                       code="unauthorized")
    return ApiClient(args.server, args.token)


def cmd_signup(args: argparse.Namespace) -> int:
    doc = ApiClient(args.server).post("/api/users", {"name": args.name})  # no token: anyone may sign up
    token = str(doc["token"])
    saved = None if args.no_save else save_config({"server": args.server, "token": token})
    if args.json:
        out_json(doc)
    else:
        out(f"user {printable(doc.get('user_id'))}: {printable(doc.get('name'))} on {printable(args.server)}")
        out(f"token: {printable(token)}")
        out("(shown only this once: keep it secret)")
    if saved is None:
        err(f"not saved: pass --token TOKEN, set ARENA_TOKEN or run arena login --server {args.server} --token TOKEN")
    else:
        err(f"saved to {saved} with the server URL: arena commands use it from now on")
        _warn_env_token(token)
    return 0


def cmd_token_rotate(args: argparse.Namespace) -> int:
    old = args.token
    doc = _api(args, "rotating a token").post("/api/users/me/tokens/rotate", {})
    token = str(doc["token"])
    saved = load_config()
    # The file keeps the token of the account it was saved for: save only in place of the one just revoked.
    path = save_config({**saved, "token": token}) if saved.get("token") == old else None
    if args.json:
        out_json(doc)
    else:
        out(f"new token for user {printable(doc.get('user_id'))}: {printable(token)}")
        closed = doc.get("closed_sockets")
        sockets = (f"; {printable(closed)} connection{'' if closed == 1 else 's'} opened with it closed"
                   if closed else "")
        out(f"the old token no longer works{sockets}")
    if path is not None:
        err(f"saved to {path}")
        _warn_env_token(token)
    else:
        err("not saved (the token rotated is not the saved one): keep the new token now, it is shown only once")
    return 0


def _warn_env_token(token: str) -> None:
    """A token just saved is not the one used while ``ARENA_TOKEN`` names another."""
    env = os.environ.get("ARENA_TOKEN")
    if env and env != token:
        err("arena: warning: ARENA_TOKEN is set and comes before the saved token: unset it to use the new one")


def cmd_login(args: argparse.Namespace) -> int:
    me = _api(args, "logging in").get("/api/users/me")
    path = save_config({"server": args.server, "token": args.token})
    out(f"logged in to {printable(args.server)} as {printable(me.get('name'))} (user {printable(me.get('user_id'))}); "
        f"saved to {path}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    api = _api(args, "listing your agents")
    me = api.get("/api/users/me")
    agents = my_agents(api, int(me["user_id"]))
    if args.json:
        out_json({"items": agents, "next": None})
        return 0
    if not agents:
        out("no agents yet: arena submit BOT --game G, or arena connect BOT --game G")
        return 0
    width = max(len(printable(a.get("name"))) for a in agents)
    for a in agents:
        kind = "remote" if a.get("remote") else "submitted"
        flags = ", disabled" if a.get("disabled") else ""
        rating = a.get("rating")
        ladder = f"  rating {rating:.0f} ({a.get('rated_matches', 0)} rated)" if isinstance(rating, int | float) else ""
        out(f"{printable(a.get('id')):>6}  {printable(a.get('name')).ljust(width)}  {printable(a.get('game')):<10}  "
            f"v{printable(a.get('version'))}  {kind}{flags}{ladder}")
    return 0


def cmd_set_disabled(args: argparse.Namespace) -> int:
    api = _api(args, "disabling an agent" if args.disabled else "enabling an agent")
    agent_id = resolve_agent(api, args.agent)
    doc = api.patch(f"/api/agents/{agent_id}", {"disabled": args.disabled})
    if args.json:
        out_json(doc)
        return 0
    state = "disabled: it plays no new match" if doc.get("disabled") else "enabled: it plays new matches"
    out(f"agent {printable(doc.get('id'))}: {printable(doc.get('name'))} ({printable(doc.get('game'))}) "
        f"v{printable(doc.get('version'))}, {state}")
    return 0


def resolve_agent(api: ApiClient, ref: str, *, game: str | None = None, anyone: bool = False) -> int:
    """An agent id from an id, or from a name: one of the caller's agents (of ``game`` when
    given), else, with ``anyone``, the one agent of that name anybody has (of ``game``).

    Raises:
        CliError: no agent of that name, or several and none of them the caller's.
    """
    if ref.isdigit():
        return int(ref)
    elsewhere = None  # the game of the caller's agent of that name, when it plays another one
    if api.token:
        me = api.get("/api/users/me")
        for agent in my_agents(api, int(me["user_id"])):
            if agent.get("name") == ref:
                if game is None or agent.get("game") == game:
                    return int(agent["id"])
                elsewhere = agent.get("game")
    if not anyone:
        raise CliError(f"you have no agent named {ref!r}", code="not_found")
    found = [a for a in list_agents(api, urllib.parse.urlencode({"game": game}) if game else "")
             if a.get("name") == ref]
    if len(found) == 1:
        return int(found[0]["id"])
    plays = f" that plays {game}" if game else ""
    if not found:
        yours = f" (yours plays {elsewhere})" if elsewhere is not None else ""
        raise CliError(f"no agent named {ref!r}{plays}{yours}", code="not_found")
    ids = ", ".join(f"{a.get('id')} of {a.get('owner')}" for a in found)
    raise CliError(f"{len(found)} agents named {ref!r}{plays} ({ids}): give the id of one", code="ambiguous")


def cmd_logs(args: argparse.Namespace) -> int:
    api = _api(args, "reading logs")
    agent_id = resolve_agent(api, args.agent)
    doc = api.get(f"/api/agents/{agent_id}/logs?match={args.match}")
    if args.json:
        out_json(doc)
        return 0
    text = str(doc.get("log") or "")
    if not text:
        err(f"agent {agent_id} printed nothing in match {args.match}")
        return 0
    out(text.removesuffix("\n"))  # the log alone, line for line: out escapes every control character but "\n"
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    doc = _api(args, "stopping a match").post(f"/api/matches/{args.match}/abort", {})
    if args.json:
        out_json(doc)
        return 0
    out(f"match {doc.get('id')} {printable(doc.get('status'))}: {printable(str(doc.get('reason') or 'being stopped'))}")
    return 0

