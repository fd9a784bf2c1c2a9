"""Match commands on a server: ``arena matches`` (newest first, by agent and status, a table
or ``{"items", "next"}``) and ``arena challenge A B --game G`` (an unrated match between any
agents, by id or name; ``--watch`` follows it as ``arena watch`` does).

``arena matches`` pages through ``GET /api/matches`` up to ``--limit`` matches, asking each page
for no more than are still wanted, so the ``next`` it prints (or hints at) continues right
after the last match shown: ``--cursor NEXT`` takes it.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping
from typing import Any

from protocol.messages import JSON
from protocol.status import is_fault

from .account import resolve_agent
from .errors import CliError
from .http import ApiClient
from .options import parse_config
from .output import err, out, out_json
from .render import winner_of
from .terminal import printable
from .watch import watch_match

__all__ = ["add_parsers", "cmd_challenge", "cmd_matches", "match_table"]

MATCH_STATUSES = ("pending", "live", "finished", "aborted")
MAX_PAGE = 200  # the most matches GET /api/matches answers at once


def add_parsers(sub: Any, remote: argparse.ArgumentParser) -> None:
    p = sub.add_parser("matches", parents=[remote], help="list matches, newest first")
    p.add_argument("--agent", metavar="AGENT", help="only this agent's matches (id, or name: mine first)")
    p.add_argument("--status", choices=MATCH_STATUSES)
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most N matches (default 50)")
    p.add_argument("--cursor", metavar="NEXT", help="go on after the matches a listing showed (its next)")
    p.add_argument("--json", action="store_true", help='print {"items": [match documents], "next"}')
    p.set_defaults(func=cmd_matches)

    p = sub.add_parser("challenge", parents=[remote], help="start an unrated match between any agents")
    p.add_argument("agents", nargs="+", metavar="AGENT", help="agent ids, or names (mine first), one per seat")
    p.add_argument("--game", required=True)
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="game configuration")
    p.add_argument("--seed", type=int, help="fixes every random choice (default: the server picks one)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--watch", action="store_true", help="follow the match live, as arena watch does")
    shown.add_argument("--json", action="store_true", help="print the match document")
    p.set_defaults(func=cmd_challenge)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def cmd_matches(args: argparse.Namespace) -> int:
    api = ApiClient(args.server, args.token)
    filters: dict[str, str | int] = {}
    if args.status:
        filters["status"] = args.status
    if args.agent:
        filters["agent"] = resolve_agent(api, args.agent, anyone=True)
    items: list[dict[str, JSON]] = []
    cursor: str | None = args.cursor
    while True:
        query = {**filters, "limit": min(args.limit - len(items), MAX_PAGE), **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/api/matches?{urllib.parse.urlencode(query)}")
        items += [m for m in page.get("items", []) if isinstance(m, dict)]
        cursor = page.get("next")
        if not cursor or len(items) >= args.limit:
            break
    if args.json:
        out_json({"items": items, "next": cursor})
        return 0
    if not items:
        out("no matches")
    else:
        out(match_table(items))
    if cursor:
        err(f"more: arena matches --cursor {printable(cursor)} (with the same --agent and --status)")
    return 0


def match_table(matches: list[dict[str, JSON]]) -> str:
    """One line per match under a header: id, game, status, the seats' names, the worker that
    runs or ran it (a column only when some match names one), and the result or reason."""
    has_worker = any(m.get("worker") for m in matches)
    rows = [["id", "game", "status", "seats", *(["worker"] if has_worker else []), "result"]]
    for m in matches:
        seats = [s for s in m.get("seats") or [] if isinstance(s, dict)]
        worker = [printable(m.get("worker") or "-")] if has_worker else []
        rows.append([printable(m.get("id")), printable(m.get("game")), printable(m.get("status")),
                     " vs ".join(printable(s.get("name")) for s in seats), *worker, result_text(m, seats)])
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        # The id right-aligned, the last column (a reason may be long) not padded at all.
        cells = [row[0].rjust(widths[0]), *(cell.ljust(w) for cell, w in zip(row[1:-1], widths[1:], strict=True))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def result_text(match: Mapping[str, JSON], seats: list[dict[str, JSON]]) -> str:
    """How a match stands: the winner or a draw and the seats that faulted, the reason it was
    aborted, or the step a live match is at."""
    status = match.get("status")
    reason = printable(match["reason"]) if match.get("reason") else ""
    if status == "finished":
        winner = winner_of(seats)
        text = "draw" if winner is None else f"{printable(seats[winner].get('name'))} won"
        faults = [f"{printable(s.get('name'))} {printable(s['status'])}" for s in seats if is_fault(s.get("status"))]
        return ", ".join([text, *faults, *([reason] if reason else [])])
    if status == "live":
        return f"step {printable(match.get('steps'))}"
    return reason or "-"


def cmd_challenge(args: argparse.Namespace) -> int:
    config = parse_config(args.config)  # a malformed pair is refused before any request
    if not args.token:
        raise CliError("starting a match needs a token: pass --token, set ARENA_TOKEN or run arena login",
                       code="unauthorized")
    api = ApiClient(args.server, args.token)
    agents = [resolve_agent(api, ref, game=args.game, anyone=True) for ref in args.agents]
    body: dict[str, JSON] = {"game": args.game, "agents": list(agents)}
    if config:
        body["config"] = dict(config)
    if args.seed is not None:
        body["seed"] = args.seed
    doc = api.post("/api/matches", body)
    if args.json:
        out_json(doc)
        return 0
    seats = [s for s in doc.get("seats") or [] if isinstance(s, dict)]
    names = " vs ".join(printable(s.get("name")) for s in seats)
    rated = "rated" if doc.get("rated") else "unrated"
    out(f"match {printable(doc.get('id'))}: {printable(doc.get('game'))}, {names} ({printable(doc.get('status'))}, "
        f"{rated}, seed {printable(doc.get('seed'))})")
    out(f"{api.server}/matches/{printable(doc.get('id'))}")
    if args.watch:
        return watch_match(args.server, int(doc["id"]), out)
    return 0
