"""The benchmarks' server process: the real app under uvicorn, plus test-only control routes.

``python -m scripts.bench._server --ws wsproto --deflate`` serves ``create_app`` (its real
routes, hub, storage and match manager, on a throwaway database) on a free port of 127.0.0.1,
with the given uvicorn WebSocket implementation and per-message-deflate setting, and prints
``{"port": ..., "pid": ...}`` once it accepts connections. SIGTERM stops it. The routes under
``/bench/`` exist only here:

* ``POST /bench/feeds/{id}?events=N&rate=R``: open a synthetic live feed ``id`` (through
  ``Hub.open_feed``, as a match would) that, once started, publishes ``N`` ConnectX-sized steps
  at ``R`` a second (0: all at once, yielding every few) and then ``end``. Each step's state
  carries ``t``, the ``time.monotonic()`` of its publishing, for latency (the clock is the
  machine's, shared by every process).
  With ``prefill=P``, ``P`` steps are published at once when the feed opens (a long match
  joined late), and the ``N`` others after the start.
* ``POST /bench/feeds/{id}/start``: start publishing.
* ``POST /bench/matches?n=N&pace=S&steps=K``: start ``N`` real rps matches (sandboxed instant
  bots, the match manager, storage and feed) paced at ``S`` seconds a step; their ids.
* ``GET /bench/matches/{id}/progress``: the live match's event count and the server's clock.
* ``POST /bench/replays?steps=N``: store a finished rps match of ``N`` steps (real rps states
  from the rules, written through the storage's step writer, no bots run); its id.
* ``GET /bench/matches/{id}/replay-whole``: the replay document built whole and sent in one
  piece, as ``GET /api/matches/{id}/replay`` did before it was streamed (the same code), to
  compare the two side by side.
* ``GET /bench/stats``: this process's CPU seconds, its sandbox processes' (children and live
  descendants) and its resident memory.

In a cluster (``--db postgresql://... --role front|worker|all``, ``scripts/bench/cluster.py``) the
process serves that role on that database; a worker (which serves only ``/api/health``) gets the
``/bench/`` routes too. With ``--stamp-steps`` every step this process records carries
``state.t``, the ``time.monotonic()`` of its recording (for a spectator's latency on another
process of this machine; the stored replay then has it too).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import resource
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from protocol.codec import encode_json
from protocol.messages import SeatTiming, StepRecord
from server.app import create_app
from server.config import Settings
from server.http.transport import uvicorn_options
from server.matches.games import get_game, resolve_config
from server.matches.hub import Hub
from server.matches.replay import replay_document
from server.state import ArenaState
from server.storage import EncodedStep, MatchStatus, NewSeat, SeatResult

from ._common import live_descendants_cpu_s, rss_kib_of

__all__ = ["build_app", "main", "synthetic_step"]

ROCK = "def agent(obs, config):\n    return 0\n"

# requests_per_client and requests_per_client_s of a benchmark's server but the flood's: far above
# any benchmark's load.
CAPACITY_CLIENT = 1_000_000


class _ClampedSleep:
    """The ``anyio`` module as the runner sees it, except that ``sleep`` clamps a negative delay to 0."""

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio, name)

    @staticmethod
    async def sleep(delay: float) -> None:
        await anyio.sleep(max(0.0, delay))


def work_around_known_bugs() -> list[str]:
    """Keep the benchmark server alive through bugs found by the benchmarks; what was worked around.

    ``run_match`` paces with ``anyio.sleep(pace_s - elapsed)``: after a step slower than the pace
    the delay is negative, anyio raises ``ValueError`` and the error takes the whole app's task
    group down (every live match, the server). Slow steps are exactly what the pace test under
    1,000 spectators provokes, so until the runner clamps the delay the benchmark server does it
    for the runner module only. The check looks for that exact line: once it is fixed, no patch.
    """
    import inspect

    from server.matches import runner

    if "anyio.sleep(spec.pace_s - (time.monotonic() - step_started))" not in inspect.getsource(runner.run_match):
        return []
    runner.anyio = _ClampedSleep()  # type: ignore[assignment]
    return ["runner: negative pace sleep (ValueError kills the app) clamped to 0 in the benchmark server"]


def stamp_steps() -> None:
    """Every step this process encodes (the recorder, once per step) carries ``state.t``."""
    import dataclasses

    encode = EncodedStep.of.__func__  # type: ignore[attr-defined]

    def stamped(cls: type[EncodedStep], record: StepRecord) -> EncodedStep:
        if isinstance(record.state, dict):
            record = dataclasses.replace(record, state={**record.state, "t": time.monotonic()})
        return encode(cls, record)  # type: ignore[no-any-return]

    EncodedStep.of = classmethod(stamped)  # type: ignore[method-assign,assignment]


def synthetic_step(step: int) -> StepRecord:
    """A ConnectX-sized step (about 400 bytes as an event), stamped with the publishing time."""
    board = [0] * 42
    for i in range(step % 42):
        board[41 - i] = 1 + i % 2
    return StepRecord(
        step=step, actions=[step % 7, None], statuses=["INACTIVE", "ACTIVE"], rewards=[0.0, 0.0],
        state={"board": board, "mark": 1 + step % 2, "t": time.monotonic()},
        timing=[SeatTiming(wall_s=0.000123, cpu_s=0.000101, bank_s=60.0), None],
    )


async def _publish(
    hub: Hub, feed_id: int, events: int, rate: float, opened: anyio.Event, go: anyio.Event, prefill: int = 0
) -> None:
    with hub.open_feed(feed_id, {"id": feed_id, "game": "connectx", "status": "live"}) as feed:
        for i in range(prefill):
            feed.publish_step(synthetic_step(i))
        opened.set()
        await go.wait()
        started = anyio.current_time()
        for i in range(1, events + 1):
            feed.publish_step(synthetic_step(prefill + i))
            if rate > 0:
                await anyio.sleep_until(started + i / rate)
            elif i % 10 == 0:
                await anyio.lowlevel.checkpoint()
        feed.publish_end({"winner": None}, feed.match)


class _Control:
    def __init__(self) -> None:
        self.go: dict[int, anyio.Event] = {}
        self.agent_id: int | None = None


def _arena(request: Request) -> ArenaState:
    state: ArenaState = request.app.state.arena
    return state


def _control(request: Request) -> _Control:
    control: _Control = request.app.state.bench
    return control


async def open_feed(request: Request) -> JSONResponse:
    arena, control = _arena(request), _control(request)
    feed_id = request.path_params["feed_id"]
    opened, go = anyio.Event(), anyio.Event()
    control.go[feed_id] = go
    events = int(request.query_params.get("events", "0"))
    rate = float(request.query_params.get("rate", "0"))
    prefill = int(request.query_params.get("prefill", "0"))
    arena.manager.task_group.start_soon(_publish, arena.hub, feed_id, events, rate, opened, go, prefill)
    await opened.wait()
    return JSONResponse({"feed": feed_id})


async def start_feed(request: Request) -> JSONResponse:
    _control(request).go[request.path_params["feed_id"]].set()
    return JSONResponse({"started": True})


async def start_matches(request: Request) -> JSONResponse:
    arena, control = _arena(request), _control(request)
    if control.agent_id is None:
        user = await arena.storage.create_user("bench", "x")
        control.agent_id = (await arena.storage.save_agent(user.id, "rock", "rps", ROCK)).id
    n = int(request.query_params.get("n", "1"))
    pace_s = float(request.query_params.get("pace", "0.05"))
    steps = int(request.query_params.get("steps", "100"))
    ids = []
    for _ in range(n):
        record = await arena.manager.start_match("rps", [control.agent_id] * 2, {"episodeSteps": steps}, pace_s=pace_s)
        ids.append(record.id)
    return JSONResponse({"ids": ids})


async def store_replay(request: Request) -> JSONResponse:
    """A finished rps match of ``steps`` steps in storage, as a match of instant bots would leave it."""
    arena, control = _arena(request), _control(request)
    storage = arena.storage
    if control.agent_id is None:
        user = await storage.create_user("bench", "x")
        control.agent_id = (await storage.save_agent(user.id, "rock", "rps", ROCK)).id
    agent = await storage.get_agent(control.agent_id)
    steps = int(request.query_params.get("steps", "1000"))
    rules = get_game("rps")
    config = {**resolve_config(rules, None), "episodeSteps": steps}  # past the default range: stored, not played
    seats = [NewSeat(agent.id, agent.version)] * 2
    match = await storage.create_match("rps", rules.rules_version, config, 1, seats, {"bench": True})
    game = rules(config, random.Random(1))
    timing = [SeatTiming(wall_s=0.000123, cpu_s=0.000101, bank_s=60.0)] * 2
    batch: list[StepRecord] = [StepRecord(step=0, actions=[None, None], statuses=["ACTIVE", "ACTIVE"],
                                          rewards=[0.0, 0.0], state=game.state())]
    for step in range(1, steps):
        actions = [step % 3, (step * 7) % 3]
        game.apply(dict(enumerate(actions)))
        batch.append(StepRecord(step=step, actions=actions, statuses=["ACTIVE", "ACTIVE"], rewards=[0.0, 0.0],
                                state=game.state(), timing=timing))
        if len(batch) == 1000:
            await storage.append_steps(match.id, batch)
            batch = []
    await storage.append_steps(match.id, batch)
    done = [SeatResult(s.agent_id, s.agent_name, s.owner, s.version, "DONE", 0.0, None) for s in match.seats]
    await storage.finish_match(match.id, MatchStatus.FINISHED, None, done, time.time())
    return JSONResponse({"id": match.id})


async def replay_whole(request: Request) -> Response:
    """The replay endpoint as it was before it streamed: every step decoded, one document, one piece."""
    storage = _arena(request).storage
    match_id = request.path_params["match_id"]
    match = await storage.get_match(match_id)
    steps = await storage.get_steps(match_id)
    doc = replay_document(
        game=match.game, rules_version=match.rules_version, config=match.config, seed=match.seed,
        seats=[
            {"agent_id": s.agent_id, "name": s.agent_name, "owner": s.owner, "version": s.version,
             "status": s.status, "reward": s.reward, "reason": s.reason}
            for s in match.seats
        ],
        steps=steps, match_id=match.id, status=match.status.value, reason=match.reason,
    )
    return Response(encode_json(doc), media_type="application/json")


async def progress(request: Request) -> JSONResponse:
    feed = _arena(request).hub.feed(request.path_params["match_id"])
    return JSONResponse({"live": feed is not None, "seq": feed.seq if feed else None, "t": time.monotonic()})


async def stats(request: Request) -> JSONResponse:
    if request.query_params.get("gc"):
        gc.collect()
    return JSONResponse({"cpu_s": time.process_time(), "sandbox_cpu_s": sandbox_cpu_s(),
                         "rss_kib": rss_kib_of(os.getpid()), "live_matches": len(_arena(request).manager.running)})


def sandbox_cpu_s() -> float:
    """CPU seconds of this process's children so far: those it reaped, and every live descendant
    (the fork server's bubblewrap and zygote, seats still running) with what it reaped."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime + live_descendants_cpu_s()


def build_app(settings: Settings) -> Starlette:
    """The real app with the ``/bench/`` control routes added."""
    app = create_app(settings)
    app.state.bench = _Control()
    app.router.routes.extend([
        Route("/bench/feeds/{feed_id:int}", open_feed, methods=["POST"]),
        Route("/bench/feeds/{feed_id:int}/start", start_feed, methods=["POST"]),
        Route("/bench/matches", start_matches, methods=["POST"]),
        Route("/bench/matches/{match_id:int}/progress", progress),
        Route("/bench/replays", store_replay, methods=["POST"]),
        Route("/bench/matches/{match_id:int}/replay-whole", replay_whole),
        Route("/bench/stats", stats),
    ])
    return app


async def _serve(args: argparse.Namespace) -> None:
    workarounds = work_around_known_bugs()
    if args.stamp_steps:
        stamp_steps()
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        # The ladder only when asked (--ladder-slots N): rated slots, none featured, no examples.
        cluster: dict[str, Any] = {"role": args.role}
        if args.worker_name:
            cluster["worker_name"] = args.worker_name
        if args.claim_poll_s:
            cluster["claim_poll_s"] = args.claim_poll_s
        if args.thinking_seats:
            cluster["thinking_seats"] = args.thinking_seats
        if not args.per_client_limits:  # one benchmark client stands in for many users
            cluster.update(requests_per_client=CAPACITY_CLIENT, requests_per_client_s=CAPACITY_CLIENT)
        settings = Settings(db=args.db or str(Path(tmp) / "arena.db"), ladder=args.ladder_slots > 0,
                            seed_examples=False, port=0, spectator_queue_frames=args.queue_frames,
                            ladder_slots=args.ladder_slots, ladder_featured=0, **cluster)
        sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
        # Inherited by accepted sockets; asyncio sets it only for proto IPPROTO_TCP (this one's is
        # 0): without it every kept-alive request waits 40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config: dict[str, Any] = {**uvicorn_options(settings), "ws": args.ws, "ws_per_message_deflate": args.deflate,
                                  "timeout_graceful_shutdown": 2}
        server = uvicorn.Server(uvicorn.Config(build_app(settings), log_level="warning", lifespan="on",
                                               backlog=4096, **config))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            print(json.dumps({"port": sock.getsockname()[1], "pid": os.getpid(), "workarounds": workarounds}),
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmarks' server process")
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    parser.add_argument("--deflate", action=argparse.BooleanOptionalAction, default=True,
                        help="per-message-deflate (uvicorn's ws_per_message_deflate)")
    parser.add_argument("--queue-frames", type=int, default=Settings().spectator_queue_frames)
    parser.add_argument("--ladder-slots", type=int, default=0, help="run the ladder with this many rated slots")
    parser.add_argument("--db", default="", help="the database (default: a throwaway SQLite file)")
    parser.add_argument("--role", default="all", choices=("all", "front", "worker"))
    parser.add_argument("--worker-name", default="", help="this process's name in the match queue")
    parser.add_argument("--claim-poll-s", type=float, default=0.0, help="a worker's claim_poll_s (0: the default)")
    parser.add_argument("--thinking-seats", type=int, default=0,
                        help="seats that think at once (server/matches/cores.py; 0: one per core)")
    parser.add_argument("--stamp-steps", action="store_true", help="every recorded step carries state.t")
    parser.add_argument("--per-client-limits", action="store_true",
                        help="keep the default requests per client (server/http/fair.py); without it, one "
                             "client may send as many as many users would")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    anyio.run(_serve, args)


if __name__ == "__main__":
    main()
