"""HTTP API handlers (JSON in, JSON out). Errors are raised as ``ArenaError`` and mapped to
statuses in ``server/http/errors.py``."""

from __future__ import annotations

import dataclasses
from functools import partial

import anyio
from starlette.requests import Request
from starlette.responses import Response

from protocol.errors import Forbidden, NotFound, ProtocolError
from protocol.messages import JSON, NewAgent, NewMatch, NewUser
from server import __version__
from server.health import HealthStatus, health_report
from server.http.auth import hash_token, new_token
from server.http.names import check_agent_name, check_user_name
from server.http.requests import client_address, int_param, json_response, optional_user, read_body, require_user
from server.matches.documents import match_document
from server.matches.games import GAMES, get_game, resolve_config
from server.sandbox.layers import sandbox_layers
from server.sandbox.validator import check_source
from server.state import arena_state
from server.storage import MAX_ROW_ID, AgentRecord, ChallengeQuota, MatchStatus, RatingRecord, is_postgres_url
from server.storage.quotas import MATCHES, SIGNUPS, SUBMISSIONS

__all__ = [
    "create_agent",
    "create_match",
    "create_user",
    "get_agent",
    "get_agent_logs",
    "get_match",
    "health",
    "ladder",
    "leaderboard",
    "list_agents",
    "list_games",
    "list_matches",
    "rating_of",
]

def _page(request: Request) -> tuple[str | None, int]:
    limit = int_param(request, "limit", default=50)
    assert limit is not None
    if not 1 <= limit <= 200:
        raise ProtocolError(f"limit must be within 1..200, got {limit}", field="limit")
    return request.query_params.get("cursor"), limit


def agent_document(agent: AgentRecord, rating: RatingRecord, *, with_code: bool) -> dict[str, JSON]:
    """The public JSON form of an agent, with its ladder rating: an agent without a rated match
    yet shows the default (``rating`` 1000, ``rated_matches`` 0), as on the leaderboard."""
    doc: dict[str, JSON] = {
        "id": agent.id,
        "name": agent.name,
        "owner": agent.owner,
        "user_id": agent.user_id,
        "game": agent.game,
        "version": agent.version,
        "remote": agent.remote,
        "disabled": agent.disabled,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
        "rating": rating.rating,
        "mu": rating.mu,
        "sigma": rating.sigma,
        "rated_matches": rating.matches,
    }
    if with_code:
        doc["code"] = agent.code
    return doc


async def rating_of(request: Request, agent: AgentRecord) -> RatingRecord:
    """The agent's ladder rating (the default when it has no rated match)."""
    return (await arena_state(request).storage.get_ratings([agent.id]))[agent.id]


# -- users ------------------------------------------------------------------------------------------


async def create_user(request: Request) -> Response:
    """``POST /api/users {"name"}``: a new account, at most ``signups_per_address_hour`` made from
    one client address, counted by storage across every process (``server/storage/quotas.py``)
    and first by this process's own count, before any other work (a refused request is not
    counted), with its name's rules (``server/http/names.py``); the address is kept with the
    user for the per-address seat bound."""
    state = arena_state(request)
    address = client_address(request)
    key = f"signup:{address}"
    per_hour = state.settings.signups_per_address_hour
    state.limiter.check(key, per_hour, SIGNUPS)
    try:
        body: NewUser = await read_body(request, NewUser)
        check_user_name(body.name)
        token = new_token()
        user = await state.storage.create_user(body.name, hash_token(token), created_from=address,
                                               max_per_hour=per_hour)
    except BaseException:
        state.limiter.refund(key)  # only accounts made count: a refused name is not one
        raise
    return json_response({"user_id": user.id, "name": user.name, "token": token}, 201)


# -- agents -----------------------------------------------------------------------------------------


async def create_agent(request: Request) -> Response:
    user = await require_user(request)
    state = arena_state(request)
    # First: a user over the limit must not cost a full validation of their code. This process's
    # count of attempts, then storage's of versions stored by any process (server/storage/quotas.py).
    per_hour = state.settings.submissions_per_user_hour
    state.limiter.check(f"submit:{user.id}", per_hour, SUBMISSIONS)
    body: NewAgent = await read_body(request, NewAgent)
    check_agent_name(body.name)
    get_game(body.game)
    if body.remote:
        if body.code is not None:
            raise ProtocolError("a remote agent has no code", field="code")
        code = None
    else:
        if body.code is None:
            raise ProtocolError("missing field 'code' (or set \"remote\": true)", code="missing_field", field="code")
        if state.settings.validate_submissions:  # off only in tests of the layers under it
            # A pathological file can take a good fraction of a second to check: off the event loop.
            limit = state.settings.max_code_bytes
            await anyio.to_thread.run_sync(
                partial(check_source, body.code.encode(), f"{body.name}.py", max_bytes=limit,
                        allow_numpy=state.settings.limits.allow_numpy)
            )
        code = body.code
    agent = await state.storage.save_agent(user.id, body.name, body.game, code, max_per_hour=per_hour)
    if state.ladder is not None:
        state.ladder.wake()  # a new agent, or a new version, plays its first ladder match within seconds
    return json_response(agent_document(agent, await rating_of(request, agent), with_code=True), 201)


async def list_agents(request: Request) -> Response:
    cursor, limit = _page(request)
    game = request.query_params.get("game")
    if game is not None:
        get_game(game)
    storage = arena_state(request).storage
    agents, next_cursor = await storage.list_agents(
        game=game, user_id=int_param(request, "user"), cursor=cursor, limit=limit
    )
    ratings = await storage.get_ratings([a.id for a in agents])
    items = [agent_document(a, ratings[a.id], with_code=False) for a in agents]
    return json_response({"items": items, "next": next_cursor})


async def get_agent(request: Request) -> Response:
    agent = await arena_state(request).storage.get_agent(request.path_params["agent_id"])
    user = await optional_user(request)
    is_owner = user is not None and user.id == agent.user_id
    return json_response(agent_document(agent, await rating_of(request, agent), with_code=is_owner))


async def get_agent_logs(request: Request) -> Response:
    user = await require_user(request)
    storage = arena_state(request).storage
    agent = await storage.get_agent(request.path_params["agent_id"])
    if agent.user_id != user.id:
        raise Forbidden(f"the logs of agent {agent.id} are its owner's only")
    match_id = int_param(request, "match")
    if match_id is None:
        raise ProtocolError("query parameter 'match' is required", code="missing_field", field="match")
    match = await storage.get_match(match_id)
    seats = [i for i, s in enumerate(match.seats) if s.agent_id == agent.id]
    if not seats:
        raise NotFound(f"agent {agent.id} in match {match_id}")
    texts = [await storage.get_log(match_id, seat) or "" for seat in seats]
    return json_response({
        "agent_id": agent.id,
        "match_id": match_id,
        "seats": [{"seat": seat, "log": text} for seat, text in zip(seats, texts, strict=True)],
        "log": "".join(texts),
    })


# -- matches ----------------------------------------------------------------------------------------


async def create_match(request: Request) -> Response:
    user = await require_user(request)
    state = arena_state(request)
    body: NewMatch = await read_body(request, NewMatch)
    state.limiter.check(f"match:{user.id}", state.settings.matches_per_user_hour, MATCHES)
    if body.seed is not None and not -MAX_ROW_ID - 1 <= body.seed <= MAX_ROW_ID:  # it is stored in a 64-bit column
        raise ProtocolError(f"seed must be a 64-bit integer, got {body.seed}", field="seed")
    # Storage counts the user's matches (at once, per hour) and the live seats of every account
    # signed up from the user's address (accounts are free) across every process as it stores
    # the match (server/storage/quotas.py); an account from before addresses were kept counts
    # against where it calls from.
    quota = ChallengeQuota(user.id, user.created_from or client_address(request),
                           max_at_once=state.settings.concurrent_matches_per_user,
                           max_per_hour=state.settings.matches_per_user_hour,
                           max_holder_seats=state.settings.live_seats_per_address)
    # A challenge: never rated (only the ladder's own matches are; see server/ladder/rules.py).
    record = await state.manager.start_match(
        body.game, body.agents, body.config, seed=body.seed, tags={"started_by": user.name, "user_id": user.id},
        rated=False, quota=quota,
    )
    return json_response(match_document(record), 201)


async def list_matches(request: Request) -> Response:
    cursor, limit = _page(request)
    raw_status = request.query_params.get("status")
    status = None
    if raw_status is not None:
        try:
            status = MatchStatus(raw_status)
        except ValueError:
            known = ", ".join(s.value for s in MatchStatus)
            raise ProtocolError(f"status must be one of {known}, got {raw_status!r}", field="status") from None
    matches, next_cursor = await arena_state(request).storage.list_matches(
        status=status, agent_id=int_param(request, "agent"), cursor=cursor, limit=limit
    )
    return json_response({"items": [match_document(m) for m in matches], "next": next_cursor})


async def get_match(request: Request) -> Response:
    match = await arena_state(request).storage.get_match(request.path_params["match_id"])
    return json_response(match_document(match))


# -- games, leaderboard, health ---------------------------------------------------------------------


async def list_games(request: Request) -> Response:
    """``GET /api/games``: each game with its config defaults and the range of every key, as in
    force here, and the hard limits of a seat, which follow from the time controls' ranges."""
    settings = arena_state(request).settings
    limits = settings.limits
    seat_limits = {
        "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb, "output_bytes": limits.output_bytes,
        "reply_bytes": limits.reply_bytes, "open_files": limits.open_files,
        "cpu_rule": "largest agentTimeout + largest runTimeout of any game + 2 x SIGTERM grace + 1 s: "
                    "a seat that keeps its time controls never reaches it",
    }
    items = [
        {"name": cls.name, "title": cls.title, "players": cls.num_seats,
         "config": resolve_config(cls, None, ranges), "config_ranges": {k: r.to_json() for k, r in ranges.items()},
         "limits": seat_limits, "rules_version": cls.rules_version}
        for cls, ranges in ((cls, settings.config_ranges.for_game(cls)) for cls in GAMES.values())
    ]
    return json_response({"items": items, "next": None})


async def leaderboard(request: Request) -> Response:
    """``GET /api/leaderboard?game=``: every agent of the game, best rating first (see
    ``server/ladder/rules.py``), each with its ``rank``, rating and win/draw/loss standings."""
    game = request.query_params.get("game")
    if game is None:
        raise ProtocolError("query parameter 'game' is required", code="missing_field", field="game")
    get_game(game)
    rows = await arena_state(request).storage.leaderboard(game)
    return json_response({"game": game, "items": rows, "next": None})


async def ladder(request: Request) -> Response:
    """``GET /api/ladder[?agent=ID]``: what the ladder is doing (``server/ladder/scheduler.py``): its slots,
    per game the live matches, the matches of the last hour and the queue; with ``agent``, that
    agent's place in its game's queue (null when the ladder does not pair it). In a cluster any
    front answers, from the database when another process leads, and ``leader`` names the
    process that runs the ladder (null while none does; always null on one process)."""
    state = arena_state(request)
    agent = int_param(request, "agent")  # a bad one is refused whether or not the ladder runs
    if state.ladder is None:
        return json_response({"running": False, "slots": None, "live": None, "matches_last_hour": 0, "games": [],
                              "agent": None})
    return json_response({"running": True, **await state.ladder.status(agent)})


async def health(request: Request) -> Response:
    """``GET /api/health``: ``"status": "ok"`` (200) when storage answers and the background
    tasks work, else ``"degraded"`` or ``"failing"`` (503) with the failing ``components`` and
    why (``server/health.py``), or ``"draining"`` (503) while the server stops; the sandbox
    layers; the process's ``role`` and ``database`` kind (never its URL), and, where matches
    run, the ``worker`` name and the ``matches`` it runs; ``leader``, whether this process runs
    the ladder's scheduler and the rater (in a cluster, the one elected: ``leadership`` says
    under which name it competes, who leads and how often it did; see ``server/cluster/leader.py``)."""
    state = arena_state(request)
    settings = state.settings
    layers = [{"name": layer.name, "active": layer.active, "reason": layer.reason}
              for layer in sandbox_layers(settings.limits, validates=settings.validate_submissions)]
    status, components = await health_report(state.health, state.storage, state.manager,
                                             has_scheduler=settings.ladder)
    if state.manager.is_draining:  # stopping (server/drain.py): the components say how it stands
        status = HealthStatus.DRAINING
    cluster: dict[str, JSON] = {"role": settings.role,
                                "database": "postgresql" if is_postgres_url(settings.db) else "sqlite"}
    if settings.runs_matches:  # the matches this process runs (a worker's, in a cluster)
        cluster["worker"] = state.manager.lease.worker if state.manager.lease is not None else None
        cluster["matches"] = sorted(state.manager.running)
    cluster["leader"] = state.ladder is not None and state.ladder.is_leading
    leadership = state.ladder.leadership if state.ladder is not None else None
    if leadership is not None:
        cluster["leadership"] = {"name": leadership.name, "leader": leadership.leader, "terms": leadership.terms,
                                 "connected": leadership.is_connected}
    if state.relay is not None:  # a front's relay of the matches other processes run (server/cluster/relay.py)
        cluster["relay"] = {"connected": state.relay.is_connected, "reconnects": state.relay.reconnects,
                            "followed": len(state.relay.followed)}
    return json_response({
        "status": status.value,
        "version": __version__,
        **cluster,
        "live_matches": len(state.manager.running),
        "components": components,
        "sandbox": {"layers": layers, "seat_mode": dataclasses.asdict(state.manager.launcher.status())},
    }, 200 if status is HealthStatus.OK else 503)
