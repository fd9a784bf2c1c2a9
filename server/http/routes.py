"""The route table: every HTTP and WebSocket route of the app. Each WebSocket handler is
``guarded``, so that an error ends its socket with an ``error`` frame and the close code that
``server/http/errors.py`` maps it to, as an HTTP handler's error becomes a status there."""

from __future__ import annotations

from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.routing import Mount, Route, WebSocketRoute

from server import web
from server.http import agent_ws, api, api_owner, api_replay, openapi, ws
from server.http.errors import guarded
from server.http.metrics import metrics_endpoint
from server.storage import MAX_ROW_ID

__all__ = ["IdConvertor", "routes"]


class IdConvertor(IntegerConvertor):
    """``{name:id}``: a row id in a path. Any run of digits matches, so that every id reaches its
    handler and is answered as that route answers (404 with the JSON error, or an ``error``
    frame and close code 4404 on a socket); storage finds nothing beyond 64 bits. A run too
    long for ``int()`` (Python refuses more than 4,300 digits: a 500) stands for the first id
    beyond 64 bits, which names nothing either."""

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 4_000 else MAX_ROW_ID + 1


# Starlette's documented way to add a path convertor; "id" is ours alone.
register_url_convertor("id", IdConvertor())

routes = [
    Route("/api/health", api.health),
    Route("/metrics", metrics_endpoint),  # Prometheus' text format (server/http/metrics.py)
    Route("/api/games", api.list_games),
    Route("/api/leaderboard", api.leaderboard),
    Route("/api/ladder", api.ladder),
    Route("/api/users", api.create_user, methods=["POST"]),
    Route("/api/agents", api.list_agents, methods=["GET"]),
    Route("/api/agents", api.create_agent, methods=["POST"]),
    Route("/api/agents/{agent_id:id}", api.get_agent),
    Route("/api/agents/{agent_id:id}/logs", api.get_agent_logs),
    Route("/api/matches", api.list_matches, methods=["GET"]),
    Route("/api/matches", api.create_match, methods=["POST"]),
    Route("/api/matches/{match_id:id}", api.get_match),
    Route("/api/matches/{match_id:id}/replay", api_replay.get_replay),
    Route("/api/matches/{match_id:id}/events", api_replay.get_events),
    Route("/api/matches/{match_id:id}/abort", api_owner.abort_match, methods=["POST"]),
    Route("/api/users/me", api_owner.current_user),
    Route("/api/users/me/tokens/rotate", api_owner.rotate_token, methods=["POST"]),
    Route("/api/agents/{agent_id:id}", api_owner.update_agent, methods=["PATCH"]),
    Route("/api/matches/{match_id:id}/repro", api_owner.get_repro),
    Route("/openapi.json", openapi.openapi_json),
    WebSocketRoute("/ws/matches/{match_id:id}", guarded(ws.spectate)),
    WebSocketRoute("/ws/agent", guarded(agent_ws.serve_agent)),
    WebSocketRoute("/ws/lobby", guarded(ws.lobby)),
    # The web app: pages read their id from the path; their scripts and styles live under /static.
    Route("/", web.index_page),
    Route("/matches/{match_id:id}", web.match_page),
    Route("/agents/{agent_id:id}", web.agent_page),
    Mount("/static", app=web.static_files(), name="static"),
]
