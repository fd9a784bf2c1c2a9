"""``arena repro MATCH --seat N``: fetch the repro bundle of my failed seat and re-run my bot
locally, in the same sandbox, against the recorded moves up to the failing step."""

from __future__ import annotations

import argparse
from typing import Any

from protocol.messages import JSON

from .botfiles import validated_bots
from .errors import CliError
from .http import ApiClient
from .output import err, out, out_json
from .terminal import printable, quoted_lines

__all__ = ["add_parser", "cmd_repro"]


def add_parser(sub: Any, remote: argparse.ArgumentParser) -> None:
    p = sub.add_parser("repro", parents=[remote], help="re-run my failed seat of a match locally")
    p.add_argument("match", type=int, metavar="MATCH")
    p.add_argument("--seat", type=int, required=True, metavar="N")
    p.add_argument("--bot", metavar="FILE", help="the bot to run (default: the agent's current code on the server)")
    p.add_argument("--json", action="store_true", help="print the bundle and the re-run as JSON")
    p.set_defaults(func=cmd_repro)


def cmd_repro(args: argparse.Namespace) -> int:
    import anyio

    from server.matches.repro import ReproOutcome, rerun
    from server.sandbox import Limits, serve_seats

    if not args.token:
        raise CliError("repro needs a token: pass --token, set ARENA_TOKEN or run arena login", code="unauthorized")
    api = ApiClient(args.server, args.token)
    bundle: dict[str, JSON] = api.get(f"/api/matches/{args.match}/repro?seat={args.seat}")
    if args.bot:
        code, source = validated_bots([args.bot])[0], args.bot
    else:
        agent = api.get(f"/api/agents/{bundle['agent_id']}")
        code, source = agent.get("code"), f"agent {agent.get('id')} version {agent.get('version')}"
        if not isinstance(code, str):
            raise CliError(f"agent {bundle['agent_id']} is a remote agent with no code on the server: "
                           "pass --bot FILE", code="bad_input")
    step = bundle["failing_step"]
    if not args.json:
        who = f"{printable(bundle['agent_name'])} v{printable(bundle['version'])}"
        out(f"match {printable(bundle['match_id'])} seat {printable(bundle['seat'])} ({who}): "
            f"{printable(bundle['status'])} at step {printable(step)}: {printable(bundle['reason'])}")
        out(f"limit: {_limit_text(bundle['limit'])}")
        err(f"re-running {source} locally against the recorded moves up to step {step} ...")

    async def rerun_here() -> ReproOutcome:
        async with serve_seats() as launcher:  # this command's seats, and their fork server if it runs here
            return await rerun(launcher, bundle, code, Limits())

    try:
        outcome = anyio.run(rerun_here)
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"the server's repro bundle is malformed: {exc!r}", code="bad_reply") from None
    if args.json:
        out_json({"bundle": bundle, "rerun": outcome.to_json()})
        return 0
    if outcome.diverged_at is not None:
        out(f"note: your bot moved differently from the recorded one at step {outcome.diverged_at}; "
            "the game went another way from there")
    reason = f": {printable(outcome.reason)}" if outcome.reason else ""
    if outcome.reproduced:
        out(f"reproduced: {outcome.status} at step {outcome.step}{reason}")
    else:
        out(f"not reproduced: {outcome.status} through step {outcome.step}{reason} "
            f"(recorded: {printable(bundle['status'])} at step {printable(step)})")
    if outcome.log.strip():
        err(f"--- log of the re-run ---\n{quoted_lines(outcome.log)}")
    return 0


def _limit_text(limit: dict[str, JSON]) -> str:
    name = printable(limit.get("name"))
    details = ", ".join(f"{printable(k)} {printable(v)}" for k, v in limit.items() if k != "name")
    return f"{name} ({details})" if details else name
