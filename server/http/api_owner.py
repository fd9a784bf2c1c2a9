"""Owner-only HTTP calls: who am I, rotating one's token, renaming or disabling one's agent,
the repro bundle of one's failed seat, and stopping a match one has a seat in (or any match,
for an operator). Errors are raised as ``ArenaError`` and mapped to statuses in
``server/http/errors.py``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from protocol.errors import Forbidden, ProtocolError
from protocol.messages import AgentPatch
from server.http.api import agent_document, rating_of
from server.http.auth import hash_token, new_token, parse_bearer
from server.http.names import check_agent_name
from server.http.requests import int_param, json_response, read_body, require_seat_owner, require_user
from server.matches.documents import match_document
from server.matches.repro import repro_bundle
from server.state import arena_state

__all__ = ["abort_match", "current_user", "get_repro", "rotate_token", "update_agent"]


async def current_user(request: Request) -> Response:
    """``GET /api/users/me``: the user the token belongs to."""
    user = await require_user(request)
    return json_response({"user_id": user.id, "name": user.name, "created_at": user.created_at})


async def rotate_token(request: Request) -> Response:
    """``POST /api/users/me/tokens/rotate``: a new token, shown once; the old one is revoked at
    once, on HTTP and on every socket opened with it."""
    user = await require_user(request)
    old = parse_bearer(request.headers.get("authorization"))
    assert old is not None  # require_user checked it
    state = arena_state(request)
    token = new_token()
    await state.storage.rotate_token(user.id, hash_token(token))
    closed = state.sessions.revoke(hash_token(old))
    return json_response({"user_id": user.id, "token": token, "closed_sockets": closed}, 201)


async def update_agent(request: Request) -> Response:
    """``PATCH /api/agents/{id} {"name"?, "disabled"?}``: the owner renames or (dis)ables an agent."""
    user = await require_user(request)
    state = arena_state(request)
    agent = await state.storage.get_agent(request.path_params["agent_id"])
    if agent.user_id != user.id:
        raise Forbidden(f"agent {agent.id} is not yours: only its owner may change it")
    body: AgentPatch = await read_body(request, AgentPatch)
    if body.name is not None:
        check_agent_name(body.name)  # the same rules as a new agent's name (server/http/names.py)
    updated = await state.storage.update_agent(agent.id, name=body.name, disabled=body.disabled)
    if state.ladder is not None:
        state.ladder.wake()  # a disabled agent leaves the ladder's queue, an enabled one joins it
    return json_response(agent_document(updated, await rating_of(request, updated), with_code=True))


async def get_repro(request: Request) -> Response:
    """``GET /api/matches/{id}/repro?seat=N``: the owner's repro bundle of a failed seat."""
    user = await require_user(request)
    state = arena_state(request)
    match_id = request.path_params["match_id"]
    seat = int_param(request, "seat")
    if seat is None:
        raise ProtocolError("query parameter 'seat' is required", code="missing_field", field="seat")
    match = await require_seat_owner(state.storage, user, match_id, seat, "its repro bundle")
    steps = await state.storage.get_steps(match_id)
    return json_response(repro_bundle(match, steps, seat, state.settings.limits))


async def abort_match(request: Request) -> Response:
    """``POST /api/matches/{id}/abort``: the owner of one of its seats, or an operator
    (``Settings.operators``), stops a pending or live match. It is stored ``aborted`` with who
    stopped it, its seats are killed and its spectators get ``end``; the answer is the match.

    Raises:
        Forbidden: the caller neither owns a seat nor is an operator.
        MatchNotFound: no such match.
        MatchOver: the match has ended already (409).
    """
    user = await require_user(request)
    state = arena_state(request)
    match = await state.storage.get_match(request.path_params["match_id"])
    owned: list[int] = []
    for seat, result in enumerate(match.seats):
        agent = await state.storage.get_agent(result.agent_id)
        if agent.user_id == user.id:
            owned.append(seat)
    if owned:
        seats = ", ".join(str(seat) for seat in owned)
        reason = f"stopped by user {user.name} (owner of seat{'s' if len(owned) > 1 else ''} {seats})"
    elif user.id in state.settings.operators:
        reason = f"stopped by operator {user.name}"
    else:
        raise Forbidden(f"match {match.id} may be stopped by the owners of its seats or an operator only")
    stopped = await state.manager.stop_match(match.id, reason)
    return json_response(match_document(stopped))
