"""Account commands: ``arena login`` (save the server and token), ``arena agents`` (list
mine), ``arena logs AGENT --match ID`` (one of my agents' log in a match) and ``arena abort
MATCH`` (stop a match one of my agents plays, or any match as an operator)."""

from __future__ import annotations

import argparse
from typing import Any

from .config import save_config
from .connect import my_agents
from .errors import CliError
from .http import ApiClient
from .output import err, out, out_json
from .terminal import printable

__all__ = ["add_parsers", "cmd_abort", "cmd_agents", "cmd_login", "cmd_logs", "resolve_agent"]


def add_parsers(sub: Any, remote: argparse.ArgumentParser) -> None:
    p = sub.add_parser("login", parents=[remote], help="check a token and save it with the server URL")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("agents", parents=[remote], help="list my agents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_agents)

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


def resolve_agent(api: ApiClient, ref: str) -> int:
    """An agent id from an id or one of the caller's agent names.

    Raises:
        CliError: no agent of that name.
    """
    if ref.isdigit():
        return int(ref)
    me = api.get("/api/users/me")
    for agent in my_agents(api, int(me["user_id"])):
        if agent.get("name") == ref:
            return int(agent["id"])
    raise CliError(f"you have no agent named {ref!r}", code="not_found")


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

