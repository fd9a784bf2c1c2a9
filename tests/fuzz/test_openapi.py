"""``/openapi.json``: the OpenAPI 3.1 description of the HTTP API (``server/http/openapi.py``).

- It names exactly the routes of the route table, each with its metadata, and the served
  document is the one generated from the app's routes.
- Each request body's schema says what ``codec.decode_body`` decodes: a body the codec takes
  is valid under the schema, and one the schema takes is decoded (but for an integer written
  as ``1.0``, which JSON Schema counts as an integer and the codec does not).
- schemathesis, from the document the live server serves, generates requests for every
  operation, valid and invalid, signed in and not: no 5xx, every status, content type and
  body as documented, invalid requests refused with 4xx.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Mount, Route, WebSocketRoute

from protocol import codec
from protocol import messages as m
from protocol.errors import ProtocolError
from server.http.openapi import OPERATIONS, message_schema, openapi_document
from server.http.routes import routes
from tests.fuzz.live import TICTACTOE_FIRST_FREE, live_server
from tests.fuzz.strategies import json_values, message_dicts, mutated

JSON = Any


def route_keys() -> set[tuple[str, str]]:
    """(method, path) of every route as the route table writes it; WebSockets as WEBSOCKET."""
    keys = set()
    for route in routes:
        if isinstance(route, Route):
            keys |= {(method, route.path) for method in (route.methods or set()) - {"HEAD"}}
        elif isinstance(route, Mount):
            keys.add(("GET", route.path))
        elif isinstance(route, WebSocketRoute):
            keys.add(("WEBSOCKET", route.path))
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return keys


def openapi_path(path: str) -> str:
    return path.replace(":id}", "}")


def test_every_route_has_metadata() -> None:
    assert route_keys() == set(OPERATIONS)


def test_the_document_names_exactly_the_routes() -> None:
    doc = openapi_document(routes)
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    sockets = {("WEBSOCKET", path) for path in doc["x-websockets"]}
    expected = {(method, openapi_path(path) + ("/{path}" if method == "GET" and path == "/static" else ""))
                for method, path in route_keys()}
    assert documented | sockets == expected
    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in doc["paths"].items():
        for op in item.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), (path, op)
            assert "default" in op["responses"] and any(s.startswith("2") for s in op["responses"]), (path, op)


def test_the_server_serves_the_document_of_its_routes(tmp_path: Path) -> None:
    with live_server(tmp_path) as live:
        response = live.client.get("/openapi.json")
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json() == codec.decode_json(codec.encode_json(openapi_document(routes)))


BODIES = typing.get_args(m.ApiBody)


def has_integral_float(value: JSON) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, list):
        return any(has_integral_float(v) for v in value)
    if isinstance(value, dict):
        return any(has_integral_float(v) for v in value.values())
    return False


@pytest.mark.parametrize("cls", BODIES, ids=[cls.__name__ for cls in BODIES])
@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_body_schemas_say_what_the_codec_decodes(cls: type[Any], data: st.DataObject) -> None:
    validator = jsonschema_rs.Draft202012Validator(message_schema(cls))
    value = data.draw(message_dicts(cls) | mutated(message_dicts(cls)) | json_values, label="body")
    try:
        codec.decode_body(codec.encode_json(value), cls)
    except ProtocolError:
        is_decoded = False
    else:
        is_decoded = True
    is_valid = validator.is_valid(value)
    if is_decoded:
        assert is_valid, f"the codec decodes {value!r}, the schema refuses it"
    elif is_valid:
        assert has_integral_float(value), f"the schema takes {value!r}, the codec refuses it"


class Caller:
    """Calls the live server as alice (or as nobody) and counts calls per operation. Rotating her
    token is one of the operations: the new one is used from then on."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.session = requests.Session()
        self.session.trust_env = False  # the server is on this machine: never through a proxy
        self.calls: dict[str, int] = {}

    def exercise(self, operation: Any, mode: GenerationMode) -> None:
        """Generated cases of one operation in one mode, each called and checked."""

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode), is_signed_in=st.booleans())
        def call(case: Any, is_signed_in: bool) -> None:
            headers = dict(self.headers) if is_signed_in else {}
            response = case.call(base_url=self.url, session=self.session, headers=headers, timeout=30)
            # Every default check but one: a valid request may still be refused for what a schema
            # cannot say (an agent that does not exist, a name taken, agents of two games).
            case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])
            self.calls[case.operation.label] = self.calls.get(case.operation.label, 0) + 1
            if case.path.endswith("/rotate") and response.status_code == 201 and is_signed_in:
                self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

        call()


EXAMPLES = 15  # per operation and mode: about 700 requests


def test_schemathesis_on_a_live_server(tmp_path: Path) -> None:
    with live_server(tmp_path, concurrent_matches_per_user=4) as live:
        alice = live.signup("alice")
        agents = [live.post("/api/agents", {"name": f"t{i}", "game": "tictactoe", "code": TICTACTOE_FIRST_FREE},
                            alice)["id"] for i in range(2)]
        live.post("/api/matches", {"game": "tictactoe", "agents": agents}, alice)
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        documented = {f"{method.upper()} {path}": op for path, item in openapi_document(routes)["paths"].items()
                      for method, op in item.items()}
        # Every operation but the document itself, which schemathesis leaves out.
        assert {op.label for op in operations} == set(documented) - {"GET /openapi.json"}
        caller = Caller(live.url, alice)
        for operation in operations:
            # Invalid requests need a parameter or a body that some value breaks (any text is a static file's path).
            op = documented[operation.label]
            can_be_invalid = "requestBody" in op or any(p["schema"] != {"type": "string"} for p in op["parameters"])
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if can_be_invalid else 1]:
                caller.exercise(operation, mode)
        assert set(caller.calls) == {op.label for op in operations}, sorted(caller.calls)
        live.health()
