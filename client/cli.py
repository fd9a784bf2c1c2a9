"""The ``arena`` command line.

Each command is one ``cmd_*`` function taking the parsed arguments and returning the exit
status; ``watch`` lives in :mod:`client.watch`, ``connect`` in :mod:`client.connect`,
``signup``, ``login``, ``token``, ``agents``, ``logs`` and ``abort`` in
:mod:`client.account`, ``matches`` and ``challenge`` in :mod:`client.matches`, ``repro`` in
:mod:`client.repro`, ``migrate`` in :mod:`client.migrate`, ``backup`` in :mod:`client.backup`,
``compare`` in :mod:`client.compare`, ``tournament`` in :mod:`client.tournament`; they print
through :mod:`client.output` and read bot files with :mod:`client.botfiles`. Server commands take
``--server`` and ``--token`` (:mod:`client.options`) from the flags, else ``ARENA_SERVER``
and ``ARENA_TOKEN``, else the config file ``arena login`` wrote (:mod:`client.config`).
Server parts (games, runner, sandbox, the app) are imported inside the commands that need
them, so ``arena validate`` does not load uvicorn and ``arena watch`` runs with the client
alone. Exit statuses: 0 done, 1 an error (one ``arena: error:`` line on stderr; with
``--json`` also the ``{"error": ...}`` document on stdout), 2 a usage error, 3 (``arena play
--fail-on-fault``) a match played in which a seat ended ``TIMEOUT``, ``ERROR`` or
``INVALID``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.codec import decode_json
from protocol.errors import ArenaError, LayerUnavailable, ProtocolError
from protocol.messages import JSON

from . import account, backup, compare, connect, matches, migrate, repro, tournament
from .botfiles import finding_lines, read_bot, validated_bots
from .config import load_config
from .errors import CliError
from .http import ApiClient
from .options import DEFAULT_SERVER, parse_config, remote_flags
from .output import err, out, out_json
from .render import render_result, render_state, render_step, winner_of
from .terminal import printable, quoted_lines
from .watch import watch_match

if TYPE_CHECKING:
    from protocol.messages import StepRecord
    from server.matches.recorder import StepLog
    from server.matches.runner import MatchResult, MatchSpec
    from server.sandbox import Limits

__all__ = ["main"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
EXIT_FAULT = 3  # arena play --fail-on-fault: the match was played, and a seat faulted


# -- play ---------------------------------------------------------------------------------------


async def run_local(
    spec: MatchSpec, codes: Sequence[str], recorder: StepLog, limits: Limits
) -> tuple[MatchResult, list[str]]:
    """Play one match here, each bot in its own sandboxed process; the result and the logs."""
    from server.matches.runner import run_match
    from server.matches.seats import open_links
    from server.sandbox import serve_seats

    # This match's seats, and their fork server if it runs here.
    async with serve_seats() as launcher, open_links(launcher, codes, limits) as links:
        result = await run_match(spec, links, recorder)
        return result, [link.log_text() for link in links]


def cmd_play(args: argparse.Namespace) -> int:
    import anyio

    from server.matches.games import get_game, resolve_config
    from server.matches.recorder import StepLog
    from server.matches.replay import replay_document
    from server.matches.runner import MatchSpec

    try:
        game_cls = get_game(args.game)
        config = resolve_config(game_cls, parse_config(args.config))
    except ArenaError as exc:
        raise CliError(str(exc), code=exc.code) from None
    if len(args.bots) != game_cls.num_seats:
        raise CliError(f"{game_cls.name} needs {game_cls.num_seats} bots, got {len(args.bots)}",
                       code="usage", exit_code=2)
    codes = validated_bots(args.bots, allow_numpy=args.allow_numpy)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    names = [Path(p).name for p in args.bots]
    if not args.json:
        out(f"{game_cls.name}: {' vs '.join(map(printable, names))}, seed {seed}")

    async def show(record: StepRecord) -> None:
        if args.json:
            return
        if args.render:
            out(render_step(game_cls.name, {"step": record.step, "actions": record.actions,
                                            "statuses": record.statuses, "state": record.state}, names))
        elif record.step % 100 == 0 and record.step and sys.stderr.isatty():
            sys.stderr.write(f"\rstep {record.step}")
            sys.stderr.flush()

    spec = MatchSpec(game_cls.name, config, seed, pace_s=max(0.0, args.delay))
    # A local game keeps no wall-clock time per step: with --seed two runs print the same
    # document (timing aside).
    recorder = StepLog(show, keep_time=False)
    from server.sandbox import Limits
    from server.sandbox.limits import seat_cpu_s

    # The CPU limit follows from this match's time controls: a bot that keeps its time never hits it.
    cpu_s = seat_cpu_s(config["agentTimeout"], config["runTimeout"], Limits().grace_s)
    result, logs = anyio.run(run_local, spec, codes, recorder, Limits(cpu_s=cpu_s, allow_numpy=args.allow_numpy))
    seats = [
        {"name": Path(path).stem, "path": path, "status": s.status, "reward": s.reward, "reason": s.reason}
        for path, s in zip(args.bots, result.seats, strict=True)
    ]
    if args.json:
        out_json(replay_document(game=game_cls.name, rules_version=game_cls.rules_version, config=config,
                                 seed=seed, seats=seats, steps=recorder.steps))
    else:
        if not args.render and sys.stderr.isatty() and result.steps >= 100:
            sys.stderr.write("\r" + " " * 16 + "\r")  # wipe the progress counter
        if not args.render:
            out(render_state(game_cls.name, recorder.steps[-1].state if recorder.steps else None))
        out(f"{len(recorder.steps) - 1} steps, ended by {result.termination}")
        out(render_result(seats, result.winner, names))
        for name, outcome, log in zip(names, result.seats, logs, strict=True):
            if log and (args.logs or outcome.status.is_fault):
                err(f"--- log of {printable(name)} ---\n{quoted_lines(log)}")
    # --fail-on-fault: a played match is still a failure for a script when a seat broke the rules of play.
    faults = [f"seat {i} {printable(names[i])} {s.status}" for i, s in enumerate(result.seats) if s.status.is_fault]
    if args.fail_on_fault and faults:
        err(f"arena: {', '.join(faults)} (--fail-on-fault: exit {EXIT_FAULT})")
        return EXIT_FAULT
    return 0


# -- replay -------------------------------------------------------------------------------------


def load_replay(source: str, server: str, token: str | None) -> dict[str, JSON]:
    """A replay document from a file, or from the server when ``source`` is a match id.

    Raises:
        CliError: no such file or match, not JSON, or not a replay document.
    """
    path = Path(source)
    if path.exists() or not source.isdigit():
        if not path.is_file():
            raise CliError(f"replay file {source!r} not found (and it is not a match id)", code="not_found")
        try:
            doc = decode_json(path.read_bytes(), max_bytes=1 << 30)
        except OSError as exc:
            raise CliError(f"cannot read {source!r}: {exc.strerror}", code="bad_input") from None
        except ProtocolError as exc:
            raise CliError(f"{source} is not JSON: {exc}", code="bad_input") from None
    else:
        doc = ApiClient(server, token).get(f"/api/matches/{int(source)}/replay")
    if not isinstance(doc, dict):
        raise CliError(f"{source} is not a replay document: not a JSON object", code="bad_input")
    for key, kind in (("game", str), ("seats", list), ("steps", list)):
        if not isinstance(doc.get(key), kind):
            raise CliError(f"{source} is not a replay document: {key!r} missing or not a {kind.__name__}",
                           code="bad_input")
    return doc


def cmd_replay(args: argparse.Namespace) -> int:
    doc = load_replay(args.source, args.server, args.token)
    if args.verify:
        return verify(doc, args.source, as_json=args.json)
    if args.json:
        out_json(doc)
        return 0
    game = str(doc["game"])
    seats: list[dict[str, JSON]] = [s if isinstance(s, dict) else {} for s in doc["seats"]]
    names = [str(s.get("name", f"seat {i}")) for i, s in enumerate(seats)]
    label = f"match {printable(doc['id'])}" if doc.get("id") is not None else printable(args.source)
    out(f"{printable(game)} {label}: {' vs '.join(map(printable, names))}, seed {printable(doc.get('seed'))}")
    for index, record in enumerate(doc["steps"]):
        if index and args.delay > 0:
            time.sleep(args.delay)
        out(render_step(game, record if isinstance(record, dict) else {}, names))
    if doc.get("status") not in (None, "finished"):
        out(f"status: {printable(doc.get('status'))}" + (f" ({printable(doc['reason'])})" if doc.get("reason") else ""))
    out(render_result(seats, winner_of(seats), names))
    return 0


def verify(doc: Mapping[str, JSON], source: str, *, as_json: bool) -> int:
    """Recompute a replay from its seed and actions; 0 when every stored state matches."""
    from server.matches.replay import verify_replay

    report = verify_replay(doc)
    if as_json:
        out_json({"ok": report.ok, "steps_checked": report.steps_checked, "problems": report.problems,
                  "rules_changed": report.rules_changed})
    elif report.ok:
        out(f"ok: {report.steps_checked} steps verified")
    else:
        for problem in report.problems:
            out(f"problem: {printable(problem)}")
    if report.ok:
        return 0
    if report.rules_changed:
        err(f"arena: error: cannot verify {printable(source)}: the game's rules changed since it was recorded "
            "(a different rules version, not a corrupt log)")
    else:
        count = len(report.problems)
        err(f"arena: error: {printable(source)} does not verify: {count} problem{'s' if count > 1 else ''} "
            "(the log is corrupt or was altered)")
    return 1


# -- validate, doctor, submit, serve ----------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from server.sandbox.validator import format_findings, validate_source

    findings = validate_source(read_bot(args.bot), args.bot, allow_numpy=args.allow_numpy)
    if args.json:
        out_json({"file": args.bot, "ok": not findings, "findings": [
            {"line": f.line, "col": f.col, "rule": f.rule, "message": f.message} for f in findings]})
    elif findings:
        out(format_findings(findings, args.bot))
    else:
        out(f"{args.bot}: ok")
    if findings:
        err(f"arena: error: {args.bot} rejected ({len(findings)} finding{'s' if len(findings) > 1 else ''})")
        return 1
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from server.config import load_settings
    from server.sandbox import SeatLauncher, bot_python
    from server.sandbox.layers import LAYER_NAMES, sandbox_layers

    try:
        settings = load_settings(Path(args.settings) if args.settings else None)
    except ArenaError as exc:
        raise CliError(str(exc), code=exc.code) from None
    layers = sandbox_layers(settings.limits, validates=settings.validate_submissions)
    width = max(len(layer.name) for layer in layers)
    out("sandbox layers:")
    for layer in layers:
        out(f"  {layer.name.ljust(width)}  {'active' if layer.active else 'off':<6}  {layer.reason}")
    out(f"{sum(layer.active for layer in layers)} of {len(layers)} layers active")
    out(f"bot interpreter: {bot_python()}")
    # A launcher of its own, as the server's lifespan would start it: the fork server once, to see that it works here.
    try:
        launcher = SeatLauncher.launch(settings.seat_mode, limits=settings.limits, pool_size=settings.seat_pool_size)
    except LayerUnavailable as exc:  # seat_mode "fork" where it cannot run: the server would refuse to start
        out(f"seat start-up: unavailable (seat_mode {settings.seat_mode}): {exc}")
    else:
        try:
            seats = launcher.status()
        finally:
            launcher.close()
        out(f"seat start-up: {seats.active} (seat_mode {seats.configured}): {seats.reason}")
    if not args.require_layers:
        return 0
    wanted = list(LAYER_NAMES) if args.require_layers == "all" else [
        name.strip() for name in args.require_layers.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(LAYER_NAMES))
    if unknown:
        raise CliError(f"unknown layer {', '.join(unknown)}; known layers: {', '.join(LAYER_NAMES)}",
                       code="bad_input")
    missing = [layer.name for layer in layers if layer.name in wanted and not layer.active]
    if missing:
        raise CliError(f"required sandbox layers inactive: {', '.join(missing)}", code="layer_unavailable")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    source = read_bot(args.bot)
    try:
        code = source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.bot} is not UTF-8 text (byte {exc.start})", code="bad_input") from None
    if not args.token:
        raise CliError("submitting needs a token: pass --token, set ARENA_TOKEN or run arena login",
                       code="unauthorized")
    name = args.name or Path(args.bot).stem
    try:
        agent = ApiClient(args.server, args.token).post("/api/agents",
                                                        {"name": name, "game": args.game, "code": code})
    except CliError as exc:
        if exc.findings:
            err(finding_lines(exc.findings, args.bot))
            count = len(exc.findings)
            exc.message = f"{args.bot} rejected by the server's validator ({count} finding{'s' if count > 1 else ''})"
        raise
    if args.json:
        out_json(agent)
    else:
        out(f"agent {printable(agent.get('id'))}: {printable(agent.get('name'))} version "
            f"{printable(agent.get('version'))} ({printable(agent.get('game'))})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import anyio
    import uvicorn

    from server.app import create_app
    from server.config import load_settings
    from server.drain import DrainingServer
    from server.http.transport import uvicorn_options
    from server.logs import configure_logging, uvicorn_log_config
    from server.sandbox.layers import require_layers
    from server.storage import check_storage

    configure_logging(args.log_level, args.log_format)
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    db = args.db or os.environ.get("ARENA_DB")
    if db:
        overrides["db"] = db
    role = args.role or os.environ.get("ARENA_ROLE")
    if role:
        overrides["role"] = role
    if args.no_ladder:
        overrides["ladder"] = False
    if args.drain_timeout is not None:
        overrides["drain_timeout_s"] = args.drain_timeout
    if args.no_examples:
        overrides["seed_examples"] = False
    if args.require_layers:
        overrides["require_layers"] = args.require_layers
    try:
        settings = load_settings(Path(args.settings) if args.settings else None, **overrides)
        require_layers(settings.require_layers, settings.limits, validates=settings.validate_submissions)
        # The database once before serving (connect, migrate): an unreachable server, a wrong
        # password or a schema newer than this program is one line here, not a failed start-up.
        anyio.run(check_storage, settings.db)
    except ArenaError as exc:
        raise CliError(str(exc), code=exc.code) from None
    # SIGTERM or Ctrl-C drains first (server/drain.py): the live matches may finish, and it exits 0.
    app = create_app(settings)
    server = DrainingServer(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           log_config=uvicorn_log_config(args.log_format),
                                           **uvicorn_options(settings)), app)
    server.run()
    return 0 if server.started else 1


# -- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``arena`` argument parser with every command."""
    parser = argparse.ArgumentParser(prog="arena", description="Agent Arena: sandboxed bots playing games.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    remote = remote_flags()

    p = sub.add_parser("serve", help="run the arena server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--db", help="the database: an SQLite file (default arena.db) or "
                                "postgresql://USER:PASSWORD@HOST:PORT/DB (env ARENA_DB)")
    p.add_argument("--role", choices=("all", "front", "worker"),
                   help="what this process does (env ARENA_ROLE; default all): front serves HTTP and WebSockets, "
                        "worker runs matches; both need a PostgreSQL --db")
    p.add_argument("--settings", metavar="FILE", help="a TOML settings file (keys as in server.config.Settings)")
    p.add_argument("--require-layers", metavar="all|NAME,...",
                   help="refuse to start unless these sandbox layers are active")
    p.add_argument("--no-ladder", action="store_true", help="do not schedule ladder matches")
    p.add_argument("--no-examples", action="store_true", help="do not seed the example bots")
    p.add_argument("--drain-timeout", type=float, metavar="SECONDS",
                   help="on SIGTERM or Ctrl-C no new match starts, and the live ones may finish within this "
                        "(default 30; then, or at a second Ctrl-C, they are stopped, stored aborted)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text lines, or one JSON object per line with match_id and agent_id where a line is about one")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("play", help="play a match between local bot files, in the sandbox")
    p.add_argument("bots", nargs="+", metavar="BOT", help="bot source files, one per seat")
    p.add_argument("--game", required=True)
    p.add_argument("--seed", type=int, help="fixes every random choice (default: a random seed, printed)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="game configuration")
    p.add_argument("--render", action="store_true", help="show the board after every step")
    p.add_argument("--json", action="store_true", help="print only the replay document")
    p.add_argument("--delay", type=float, default=0.0, metavar="SECONDS", help="least time per step")
    p.add_argument("--logs", action="store_true", help="print what each bot printed (stderr)")
    p.add_argument("--allow-numpy", action="store_true", help="let the bots import numpy (an arena's opt-in)")
    p.add_argument("--fail-on-fault", action="store_true",
                   help=f"exit {EXIT_FAULT} when a seat ends TIMEOUT, ERROR or INVALID")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("replay", parents=[remote], help="show or verify a replay (file or match id)")
    p.add_argument("source", metavar="MATCH|FILE")
    p.add_argument("--verify", action="store_true", help="recompute every state from the actions")
    p.add_argument("--delay", type=float, default=0.0, metavar="SECONDS", help="pause between steps")
    p.add_argument("--json", action="store_true", help="print the document (or the verification) as JSON")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("watch", parents=[remote], help="follow a match live")
    p.add_argument("match", type=int, metavar="MATCH")
    p.add_argument("--seat", type=int, metavar="N", help="also show my seat's log and timing (needs my token)")
    p.set_defaults(func=lambda args: watch_match(args.server, args.match, out, token=args.token, seat=args.seat))

    p = sub.add_parser("validate", help="check a bot file with the static validator")
    p.add_argument("bot", metavar="BOT")
    p.add_argument("--json", action="store_true")
    p.add_argument("--allow-numpy", action="store_true", help="accept numpy imports (an arena's opt-in)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="show which sandbox layers are active here")
    p.add_argument("--require-layers", metavar="all|NAME,NAME", help="exit 1 unless these layers are active")
    p.add_argument("--settings", metavar="FILE", help="report the layers as a server with these settings runs them")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("submit", parents=[remote], help="submit a bot to the server")
    p.add_argument("bot", metavar="BOT")
    p.add_argument("--game", required=True)
    p.add_argument("--name", help="agent name (default: the file name without .py)")
    p.add_argument("--json", action="store_true", help="print the agent document")
    p.set_defaults(func=cmd_submit)

    connect.add_parser(sub, remote)
    account.add_parsers(sub, remote)
    matches.add_parsers(sub, remote)
    repro.add_parser(sub, remote)
    migrate.add_parser(sub)
    backup.add_parser(sub)
    compare.add_parser(sub)
    tournament.add_parser(sub)
    return parser


def resolve_remote(args: argparse.Namespace) -> None:
    """Fill ``--server`` and ``--token`` left out: the environment, then the config file.

    Raises:
        CliError: the config file is unreadable.
    """
    if not hasattr(args, "server"):
        return
    saved: dict[str, str] | None = None
    for key, env in (("server", "ARENA_SERVER"), ("token", "ARENA_TOKEN")):
        if getattr(args, key):
            continue
        value = os.environ.get(env)
        if not value:
            saved = load_config() if saved is None else saved
            value = saved.get(key)
        setattr(args, key, value or (DEFAULT_SERVER if key == "server" else None))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``arena`` command; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        resolve_remote(args)
        status: int = args.func(args)
        return status
    except CliError as exc:
        if getattr(args, "json", False) and exc.exit_code == 1:
            out_json(exc.document())
        err(f"arena: error: {printable(exc.message)}")  # one line, whatever the server's message holds
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``arena play --json | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
