"""A match's stored game over HTTP: the whole replay document, streamed, and its events a page
at a time. Errors are raised as ``ArenaError`` and mapped to statuses in ``server/http/errors.py``.

Both read the event log from storage in pages and never hold a whole long match in memory or
on the event loop (see ``server/matches/replay.py``). ``/events`` is how a spectator gets what
its ``snapshot`` left out: the snapshot carries only the most recent events, and every event
of the match, live or finished, is here by its ``seq`` (an event's ``seq`` is its step + 1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from protocol.errors import ProtocolError
from server.http.requests import int_param
from server.matches.hub import event_frame
from server.matches.replay import replay_chunks
from server.state import arena_state

__all__ = ["DEFAULT_EVENTS_PAGE", "MAX_EVENTS_PAGE", "MAX_REPLAY_PAGE", "get_events", "get_replay"]

DEFAULT_EVENTS_PAGE = 200
MAX_EVENTS_PAGE = 1000  # events per page (about 0.4 MB of rps)
MAX_REPLAY_PAGE = 10_000  # steps per page of ``/replay?limit=``


def _bounded_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = int_param(request, name, default=default)
    assert value is not None
    if not low <= value <= high:
        raise ProtocolError(f"{name} must be within {low}..{high}, got {value}", field=name)
    return value


async def get_replay(request: Request) -> Response:
    """``GET /api/matches/{id}/replay``: the replay document (every stored step), streamed;
    ``?from_step=S&limit=N`` gives one page of it, with ``next_step``.

    Raises:
        MatchNotFound: no such match (before anything is sent).
        ProtocolError: a bad ``from_step`` or ``limit``.
    """
    storage = arena_state(request).storage
    match = await storage.get_match(request.path_params["match_id"])
    from_step = _bounded_param(request, "from_step", 0, 0, 2**62)
    limit = None
    if "limit" in request.query_params or "from_step" in request.query_params:
        limit = _bounded_param(request, "limit", MAX_REPLAY_PAGE, 1, MAX_REPLAY_PAGE)
    return StreamingResponse(replay_chunks(storage, match, from_step=from_step, limit=limit),
                             media_type="application/json")


async def get_events(request: Request) -> Response:
    """``GET /api/matches/{id}/events?from=SEQ&limit=N``: the match's ``event`` frames from
    ``seq`` SEQ on (default 1), at most N (default 200, up to 1000), exactly as a spectator
    socket sends them: ``{"items": [...], "next": SEQ_OR_NULL}``, ``next`` being where the next
    page starts (``?cursor=`` takes it too), null when nothing more is stored yet.

    Raises:
        MatchNotFound: no such match.
        ProtocolError: a bad ``from``, ``cursor`` or ``limit``.
    """
    storage = arena_state(request).storage
    match_id = request.path_params["match_id"]
    name = "cursor" if "cursor" in request.query_params and "from" not in request.query_params else "from"
    from_seq = _bounded_param(request, name, 1, 1, 2**62)
    limit = _bounded_param(request, "limit", DEFAULT_EVENTS_PAGE, 1, MAX_EVENTS_PAGE)
    rows = await storage.get_step_texts(match_id, from_seq - 1, limit + 1)  # one more: is there a next page?
    following = str(rows[limit][0] + 1) if len(rows) > limit else "null"
    items = ",".join(event_frame(step + 1, text) for step, text in rows[:limit])
    return Response(f'{{"items":[{items}],"next":{following}}}', media_type="application/json")
