"""Random bodies on every POST and PATCH route of the route table, on a real server: any JSON
value, mutations of the route's own message (``protocol/messages.py``, as ``/openapi.json``
names it) and of the other routes' messages, bytes that are not JSON; with the owner's token,
another user's, a junk one or none; on real ids and on ids that name nothing. Every answer is
2xx, or 4xx with a JSON ``{"error": {"code", "message"}}`` document: never a 5xx. At the end the
server is healthy, no match was aborted by its own fault, and a plain request still works.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from protocol import messages as m
from server.http.openapi import OPERATIONS
from server.http.routes import routes
from tests.fuzz.live import TICTACTOE_FIRST_FREE, Live, live_server
from tests.fuzz.strategies import encoded, json_values, message_dicts, mutated

WRITES = sorted((method, route.path) for route in routes if isinstance(route, Route)
                for method in route.methods or () if method in ("POST", "PATCH"))
PARAM_RE = re.compile(r"{(\w+):id}")
BODIES = typing.get_args(m.ApiBody)
FOREIGN_IDS = [0, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]


def body_strategy(method: str, path: str) -> st.SearchStrategy[bytes | str]:
    own = OPERATIONS[(method, path)].body
    messages = st.one_of([message_dicts(cls) for cls in ([own] if own is not None else []) + list(BODIES)])
    valid_or_not = st.one_of(messages, mutated(messages), mutated(messages), json_values)
    return encoded(valid_or_not) | st.binary(max_size=64)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, response
    assert response.headers["content-type"].startswith("application/json"), response.headers
    doc = response.json()
    if response.status_code >= 400:
        error = doc["error"]
        assert isinstance(error["code"], str) and error["code"], doc
        assert isinstance(error["message"], str) and error["message"], doc


def test_random_bodies_on_every_write_route(tmp_path: Path) -> None:
    assert len(WRITES) >= 5, WRITES  # users, agents, matches, abort, rotate, patch
    with live_server(tmp_path, concurrent_matches_per_user=4) as live:
        fuzz_bodies(live)


def fuzz_bodies(live: Live) -> None:
    headers = {name: live.signup(name) for name in ("alice", "bob")}
    agents = [live.post("/api/agents", {"name": f"t{i}", "game": "tictactoe", "code": TICTACTOE_FIRST_FREE},
                        headers["alice"])["id"] for i in range(2)]
    bobs = live.post("/api/agents", {"name": "b", "game": "tictactoe", "remote": True}, headers["bob"])["id"]
    match = live.post("/api/matches", {"game": "tictactoe", "agents": agents}, headers["alice"])["id"]
    ids = {"agent_id": agents + [bobs], "match_id": [match]}
    statuses: dict[int, int] = {}

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(WRITES), data=st.data())
    def post_random(route: tuple[str, str], data: st.DataObject) -> None:
        method, template = route
        path = PARAM_RE.sub(lambda p: str(data.draw(st.sampled_from(ids[p.group(1)] + FOREIGN_IDS))), template)
        who = data.draw(st.sampled_from(["alice", "alice", "bob", "none", "junk", "basic"]), label="caller")
        sent = dict(headers.get(who, {}))
        if who == "junk":
            sent["Authorization"] = data.draw(st.sampled_from(["Bearer", "Bearer arena_x", "Bearer " + "a" * 500]))
        elif who == "basic":
            sent["Authorization"] = "Basic YWxpY2U6eA=="
        content_type = data.draw(st.sampled_from(["application/json", "application/json", None, "text/plain"]))
        if content_type is not None:
            sent["Content-Type"] = content_type
        body = data.draw(body_strategy(method, template), label="body")
        response = live.client.request(method, path, content=body, headers=sent)
        check_answer(response)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if template.endswith("/rotate") and response.status_code == 201 and who in headers:
            headers[who] = {"Authorization": f"Bearer {response.json()['token']}"}  # the old one stopped

    post_random()
    assert any(200 <= s < 300 for s in statuses), statuses  # some requests were valid and served
    assert {400, 401, 404} <= set(statuses), statuses
    live.health()
    assert live.client.get("/api/users/me", headers=headers["alice"]).json()["name"] == "alice"
