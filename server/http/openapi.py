"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Theory of operation. The document is generated, on each request, from the route table the app
serves (``request.app.routes``, i.e. ``server/http/routes.py``) and the metadata of each
operation kept here (``OPERATIONS``: a summary, the query parameters, the request body, the
answer, whether a token is needed). Paths, methods and path parameters come from the routes
themselves: a route added without metadata still appears, with its path parameters and the
error answers, so the document never leaves one out (``tests/fuzz/test_openapi.py`` holds that
every route has metadata and that the document names exactly the routes). Request bodies are
derived from the typed messages of ``protocol/messages.py`` that ``codec.decode_body`` checks:
their fields, which are required, and no other key. Every error is the
``{"error": {"code", "message", ...}}`` document of ``server/http/errors.py``. WebSocket routes
have no place in OpenAPI: they are listed under the extension key ``x-websockets``.
"""

from __future__ import annotations

import dataclasses
import enum
import http
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from protocol import messages
from protocol.messages import JSON, AgentPatch, NewAgent, NewMatch, NewUser
from server import __version__
from server.http.names import NAME_RE
from server.http.requests import json_response
from server.storage import MAX_ROW_ID, MatchStatus

__all__ = ["OPERATIONS", "Auth", "Operation", "Query", "message_schema", "openapi_document", "openapi_json"]


class Auth(enum.Enum):
    """Whether an operation needs ``Authorization: Bearer TOKEN``."""

    NONE = "none"
    OPTIONAL = "optional"  # answers anyone; the owner sees more (a malformed or unknown token is still 401)
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Query:
    """One query parameter."""

    name: str
    schema: Mapping[str, JSON]
    description: str
    is_required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What the route table does not say about one operation. ``body`` is the protocol message
    its request body decodes into, ``body_fields`` narrows some of its fields (a name's
    pattern); ``answer`` is the schema of its success answer (status ``status``, in any of
    ``media_types``);
    ``errors`` the statuses it answers besides 400 (bad query or body), 401 (a token), 404 (an
    id in the path) and 405, which are known from the rest."""

    summary: str
    answer: Mapping[str, JSON]
    status: int = 200
    media_types: tuple[str, ...] = ("application/json",)
    query: tuple[Query, ...] = ()
    body: type[Any] | None = None
    body_fields: Mapping[str, Mapping[str, JSON]] = dataclasses.field(default_factory=dict)
    auth: Auth = Auth.NONE
    errors: tuple[int, ...] = ()


# -- schemas ----------------------------------------------------------------------------------------

_INT64 = {"type": "integer", "minimum": -MAX_ROW_ID - 1, "maximum": MAX_ROW_ID}
_ID = {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}
_NAME = {"type": "string", "pattern": f"^{NAME_RE.pattern}$"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, JSON]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: Mapping[str, JSON], optional: Mapping[str, JSON] | None = None) -> dict[str, JSON]:
    """An object with these properties, the first ones required; other keys allowed (answers may grow)."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def _page(item: Mapping[str, JSON], next_schema: Mapping[str, JSON] = _NULLABLE_STRING) -> dict[str, JSON]:
    return _object({"items": {"type": "array", "items": item}, "next": next_schema})


_SCHEMAS: dict[str, JSON] = {
    "Error": _object({"error": _object(
        {"code": {"type": "string"}, "message": {"type": "string"}},
        {"field": {"type": "string"}, "range": {"type": "array", "items": {"type": "number"}},
         "findings": {"type": "array", "items": _object({"line": {"type": "integer"}, "col": {"type": "integer"},
                                                          "rule": {"type": "string"},
                                                          "message": {"type": "string"}})}},
    )}),
    "Agent": _object(
        {"id": _ID, "name": {"type": "string"}, "owner": {"type": "string"}, "user_id": _ID,
         "game": {"type": "string"}, "version": {"type": "integer"}, "remote": {"type": "boolean"},
         "disabled": {"type": "boolean"}, "created_at": {"type": "number"}, "updated_at": {"type": "number"},
         "rating": {"type": "number"}, "mu": {"type": "number"}, "sigma": {"type": "number"},
         "rated_matches": {"type": "integer"}},
        {"code": _NULLABLE_STRING},  # the owner's view only
    ),
    "Seat": _object({"agent_id": _ID, "name": {"type": "string"}, "owner": {"type": "string"},
                     "version": {"type": "integer"}, "status": _NULLABLE_STRING, "reward": _NULLABLE_NUMBER,
                     "reason": _NULLABLE_STRING}),
    "Match": _object({
        "id": _ID, "game": {"type": "string"}, "status": {"enum": [s.value for s in MatchStatus]},
        "reason": _NULLABLE_STRING, "config": {"type": "object"}, "seed": _INT64,
        "rules_version": {"type": "integer"}, "seats": {"type": "array", "items": _ref("Seat")},
        "steps": {"type": "integer"}, "created_at": {"type": "number"}, "started_at": _NULLABLE_NUMBER,
        "finished_at": _NULLABLE_NUMBER, "tags": {"type": "object"}, "rated": {"type": "boolean"},
        "worker": _NULLABLE_STRING,
    }),
    "Step": _object({"step": {"type": "integer"}, "actions": {"type": "array"},
                     "statuses": {"type": "array", "items": {"type": "string"}},
                     "rewards": {"type": "array", "items": {"type": "number"}}, "state": {"type": "object"}}),
    "Health": _object({"status": {"enum": ["ok", "degraded", "failing"]}, "version": {"type": "string"},
                       "role": {"type": "string"}, "database": {"enum": ["sqlite", "postgresql"]},
                       "live_matches": {"type": "integer"}, "components": {"type": "object"}},
                      {"sandbox": {"type": "object"}}),
}

_NEW_TOKEN = {"type": "string", "minLength": 1}
_GAMES = _page(_object({"name": {"type": "string"}, "title": {"type": "string"}, "players": {"type": "integer"},
                        "config": {"type": "object"}, "config_ranges": {"type": "object"},
                        "limits": {"type": "object"}, "rules_version": {"type": "integer"}}), {"type": "null"})
_EVENTS = _page(_object({"type": {"const": "event"}, "seq": {"type": "integer"}, "step": {"type": "integer"}}),
                {"type": ["integer", "null"]})
_REPLAY = _object({"id": _ID, "game": {"type": "string"}, "rules_version": {"type": "integer"},
                   "config": {"type": "object"}, "seed": _INT64, "status": {"type": "string"},
                   "reason": _NULLABLE_STRING, "seats": {"type": "array", "items": {"type": "object"}},
                   "steps": {"type": "array", "items": _ref("Step")}},
                  {"next_step": {"type": ["integer", "null"]}})
_HTML = {"type": "string"}
_PAGE = ("text/html",)

_LIMIT = "page size, 1..200 (default 50)"
_CURSOR = Query("cursor", {"type": "string"}, "where the page starts: the previous page's `next`")


def _bounded(low: int, high: int) -> dict[str, JSON]:
    return {"type": "integer", "minimum": low, "maximum": high}


# Keyed by method and the path as the route table writes it. ``tests/fuzz/test_openapi.py``
# holds these keys equal to the routes of ``server/http/routes.py``.
OPERATIONS: Mapping[tuple[str, str], Operation] = {
    ("GET", "/api/health"): Operation(
        "Whether storage and the background tasks work (503 with the failing components if not)",
        _ref("Health"), errors=(503,)),
    ("GET", "/metrics"): Operation(
        "This process's metrics, in Prometheus' text format (OpenMetrics when the Accept header asks for it)",
        {"type": "string"}, media_types=("text/plain", "application/openmetrics-text")),
    ("GET", "/api/games"): Operation("Every game, its config defaults and ranges, a seat's hard limits", _GAMES),
    ("GET", "/api/leaderboard"): Operation(
        "A game's agents, best rating first",
        _object({"game": {"type": "string"}, "items": {"type": "array", "items": {"type": "object"}},
                 "next": {"type": "null"}}),
        query=(Query("game", {"type": "string"}, "the game", is_required=True),)),
    ("GET", "/api/ladder"): Operation(
        "What the ladder does: its slots, live matches, queue",
        _object({"running": {"type": "boolean"}, "games": {"type": "array"}}),
        query=(Query("agent", _INT64, "an agent whose place in the queue to show"),)),
    ("POST", "/api/users"): Operation(
        "Sign up: a new account and its token, shown once",
        _object({"user_id": _ID, "name": {"type": "string"}, "token": _NEW_TOKEN}), status=201,
        body=NewUser, body_fields={"name": _NAME}, errors=(409, 429)),
    ("GET", "/api/agents"): Operation(
        "Agents, newest first", _page(_ref("Agent")),
        query=(Query("limit", _bounded(1, 200), _LIMIT), _CURSOR, Query("game", {"type": "string"}, "only this game"),
               Query("user", _INT64, "only this user's"))),
    ("POST", "/api/agents"): Operation(
        "Submit an agent (validated code, or a remote agent), or a new version of one's agent",
        _ref("Agent"), status=201, body=NewAgent, body_fields={"name": _NAME}, auth=Auth.REQUIRED,
        errors=(409, 422, 429)),
    ("GET", "/api/agents/{agent_id:id}"): Operation(
        "One agent (with its code for its owner)", _ref("Agent"), auth=Auth.OPTIONAL),
    ("GET", "/api/agents/{agent_id:id}/logs"): Operation(
        "What one's agent printed in a match",
        _object({"agent_id": _ID, "match_id": _ID, "log": {"type": "string"},
                 "seats": {"type": "array", "items": _object({"seat": {"type": "integer"},
                                                               "log": {"type": "string"}})}}),
        query=(Query("match", _INT64, "the match", is_required=True),), auth=Auth.REQUIRED, errors=(403,)),
    ("PATCH", "/api/agents/{agent_id:id}"): Operation(
        "Rename, disable or enable one's agent", _ref("Agent"), body=AgentPatch, body_fields={"name": _NAME},
        auth=Auth.REQUIRED, errors=(403, 409)),
    ("GET", "/api/matches"): Operation(
        "Matches, newest first", _page(_ref("Match")),
        query=(Query("limit", _bounded(1, 200), _LIMIT), _CURSOR,
               Query("status", {"enum": [s.value for s in MatchStatus]}, "only matches in this status"),
               Query("agent", _INT64, "only matches this agent played"))),
    ("POST", "/api/matches"): Operation(
        "Start an unrated match (a challenge) between agents", _ref("Match"), status=201, body=NewMatch,
        body_fields={"seed": _INT64}, auth=Auth.REQUIRED, errors=(409, 422, 429)),
    ("GET", "/api/matches/{match_id:id}"): Operation("One match", _ref("Match")),
    ("GET", "/api/matches/{match_id:id}/replay"): Operation(
        "The replay document, streamed; one page of it with from_step or limit", _REPLAY,
        query=(Query("from_step", _bounded(0, 2**62), "the first step of the page"),
               Query("limit", _bounded(1, 10_000), "steps in the page"))),
    ("GET", "/api/matches/{match_id:id}/events"): Operation(
        "The match's event frames from a seq on, as a spectator socket sends them", _EVENTS,
        query=(Query("from", _bounded(1, 2**62), "the first seq (default 1)"),
               Query("cursor", _bounded(1, 2**62), "the previous page's `next` (as `from`)"),
               Query("limit", _bounded(1, 1000), "events in the page (default 200)"))),
    ("POST", "/api/matches/{match_id:id}/abort"): Operation(
        "Stop a pending or live match one has a seat in (or any, as an operator)", _ref("Match"),
        auth=Auth.REQUIRED, errors=(403, 409)),
    ("GET", "/api/matches/{match_id:id}/repro"): Operation(
        "The repro bundle of one's failed seat", {"type": "object"},
        query=(Query("seat", _INT64, "the seat", is_required=True),), auth=Auth.REQUIRED, errors=(403,)),
    ("GET", "/api/users/me"): Operation(
        "The user the token belongs to", _object({"user_id": _ID, "name": {"type": "string"},
                                                  "created_at": {"type": "number"}}), auth=Auth.REQUIRED),
    ("POST", "/api/users/me/tokens/rotate"): Operation(
        "A new token, shown once; the old one stops at once, on every socket too",
        _object({"user_id": _ID, "token": _NEW_TOKEN, "closed_sockets": {"type": "integer"}}), status=201,
        auth=Auth.REQUIRED),
    ("GET", "/openapi.json"): Operation("This document", {"type": "object"}),
    ("GET", "/"): Operation("The lobby page", _HTML, media_types=_PAGE),
    ("GET", "/matches/{match_id:id}"): Operation("A match's page", _HTML, media_types=_PAGE),
    ("GET", "/agents/{agent_id:id}"): Operation("An agent's page", _HTML, media_types=_PAGE),
    ("GET", "/static"): Operation("The pages' scripts, styles and icon", {"type": "string"}, media_types=("*/*",)),
    ("WEBSOCKET", "/ws/matches/{match_id:id}"): Operation(
        "Spectate a match: snapshot, event frames, end; with ?seat=N and the owner's token, that seat's "
        "seat_debug frames too", {}, query=(Query("seat", _INT64, "the owner's seat to debug"),),
        auth=Auth.OPTIONAL),
    ("WEBSOCKET", "/ws/agent"): Operation(
        "Play one's remote agents: hello/welcome, then turn and action frames", {}, auth=Auth.REQUIRED),
    ("WEBSOCKET", "/ws/lobby"): Operation("Matches starting and ending, ratings changing", {}),
}


# -- request bodies from the protocol's messages ----------------------------------------------------


def message_schema(cls: type[Any], fields: Mapping[str, Mapping[str, JSON]] | None = None) -> dict[str, JSON]:
    """The JSON Schema of a message dataclass as ``codec.decode_body`` decodes it: its fields (each
    narrowed by ``fields``, if named there), the required ones, and no other key."""
    hints = typing.get_type_hints(cls, vars(messages))
    properties = {f.name: {**_annotation_schema(hints[f.name]), **(fields or {}).get(f.name, {})}
                  for f in dataclasses.fields(cls)}
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    schema: dict[str, JSON] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _annotation_schema(hint: Any) -> dict[str, JSON]:
    """The schema of one annotation, following ``codec._checker`` branch by branch."""
    if hint is Any:
        return {}
    origin = get_origin(hint)
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_annotation_schema(option) for option in get_args(hint)]}
    if hint is type(None):
        return {"type": "null"}
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return {"type": "array", "items": _annotation_schema(item)}
    if origin is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(hint):
        return message_schema(typing.cast(type[Any], hint))
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(hint)
    if simple is None:
        raise TypeError(f"no JSON Schema for the annotation {hint!r}")
    return {"type": simple}


# -- the document -----------------------------------------------------------------------------------

_PARAM_RE = re.compile(r"{([^}:]+)(?::([^}]+))?}")


def _path_parameters(path: str) -> tuple[str, list[dict[str, JSON]]]:
    """The OpenAPI form of a route's path (``{name}``, convertors dropped) and its parameters."""
    # An id in a path is any run of digits (``routes.IdConvertor``): one that names nothing is a 404.
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0} if convertor in ("id", "int") else {"type": "string"}}
        for name, convertor in _PARAM_RE.findall(path)
    ]
    return _PARAM_RE.sub(lambda m: "{" + m.group(1) + "}", path), parameters


def _error(status: int) -> dict[str, JSON]:
    return {"description": http.HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _operation(route_name: str, method: str, path_parameters: list[dict[str, JSON]],
               meta: Operation | None) -> dict[str, JSON]:
    meta = meta if meta is not None else Operation(route_name, {})
    parameters = path_parameters + [
        {"name": q.name, "in": "query", "required": q.is_required, "description": q.description,
         "schema": dict(q.schema)} for q in meta.query
    ]
    errors = set(meta.errors) | {405}
    if meta.query or meta.body is not None:
        errors.add(400)
    if meta.auth is not Auth.NONE:
        errors.add(401)
    if path_parameters:
        errors.add(404)
    responses: dict[str, JSON] = {
        str(meta.status): {"description": meta.summary,
                           "content": {media: {"schema": dict(meta.answer)} for media in meta.media_types}},
    }
    for status in sorted(errors):
        responses[str(status)] = _error(status)
    if meta.status == 200 and 503 in errors:  # the health report says what fails with its own document
        responses["503"] = responses["200"] | {"description": "storage or a background task fails"}
    responses["default"] = _error(500) | {"description": "an error"}
    doc: dict[str, JSON] = {"operationId": f"{route_name}_{method.lower()}", "summary": meta.summary,
                            "parameters": parameters, "responses": responses}
    if meta.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": message_schema(meta.body, meta.body_fields)}}}
    if meta.auth is Auth.REQUIRED:
        doc["security"] = [{"bearer": []}]
    elif meta.auth is Auth.OPTIONAL:
        doc["security"] = [{}, {"bearer": []}]
    return doc


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, JSON]:
    """The OpenAPI 3.1 document of ``routes`` (see the module's docstring)."""
    paths: dict[str, dict[str, JSON]] = {}
    sockets: dict[str, JSON] = {}
    for route in routes:
        if isinstance(route, Route):
            path, parameters = _path_parameters(route.path)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                meta = OPERATIONS.get((method, route.path))
                paths.setdefault(path, {})[method.lower()] = _operation(route.name, method, parameters, meta)
        elif isinstance(route, Mount):  # static files: one path parameter for the rest of the path
            meta = OPERATIONS.get(("GET", route.path))
            parameters = [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]
            paths[f"{route.path}/{{path}}"] = {"get": _operation(route.name or "mount", "GET", parameters, meta)}
        elif isinstance(route, WebSocketRoute):
            path, parameters = _path_parameters(route.path)
            meta = OPERATIONS.get(("WEBSOCKET", route.path))
            sockets[path] = {"summary": meta.summary if meta is not None else route.name,
                             "parameters": parameters + [{"name": q.name, "in": "query", "schema": dict(q.schema)}
                                                         for q in (meta.query if meta is not None else ())]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agent Arena", "version": __version__,
                 "description": "The HTTP API of an Agent Arena server. Errors are answered with "
                                "{\"error\": {\"code\", \"message\", ...}}."},
        "paths": paths,
        "components": {"schemas": _SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a token from POST /api/users"}}},
        "x-websockets": sockets,
    }


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI description of the HTTP API this app serves."""
    return json_response(openapi_document(request.app.routes))
