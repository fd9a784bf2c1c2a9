"""The HTTP API against the real app under uvicorn: every endpoint of DESIGN.md's "HTTP API"."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from server.config import Settings
from server.matches.replay import verify_replay
from tests.server.conftest import (
    FAULTY,
    RPS_CYCLE,
    RPS_ROCK,
    RPS_SLOW,
    TICTACTOE_FIRST_FREE,
    api_client,
    create_user,
    start_match,
    submit_agent,
    wait_finished,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.both_backends]

JSON = Any

LAYERS = [
    "static_analysis", "restricted_runtime", "process_isolation", "resource_limits",
    "timeouts", "namespaces", "seccomp", "filesystem",
]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> JSON:
    """The response is ``status`` with a JSON ``{"error": {"code", "message"}}`` body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def test_create_user(settings: Settings) -> None:
    async with api_client(settings) as client:
        response = await client.post("/api/users", json={"name": "alice"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert isinstance(body["user_id"], int)
        token = body["token"]
        assert isinstance(token, str) and len(token) >= 20

        other = await create_user(client, "bob")
        assert other.token != token and other.id != body["user_id"]

        # The token works, and is never shown again: not in the documents the user gets back.
        agent = await client.post(
            "/api/agents", json={"name": "a", "game": "rps", "code": RPS_ROCK},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert agent.status_code == 201
        assert token not in agent.text
        assert token not in (await client.get("/api/agents")).text

        assert_error(await client.post("/api/users", json={"name": "bad name!"}), 400)
        assert_error(await client.post("/api/users", json={"name": ""}), 400)
        assert_error(await client.post("/api/users", json={"name": "x" * 41}), 400)
        assert_error(await client.post("/api/users", json={}), 400)
        assert_error(await client.post("/api/users", content=b"{not json"), 400)
        assert_error(await client.post("/api/users", json=["alice"]), 400)

        duplicate = await client.post("/api/users", json={"name": "alice"})
        assert_error(duplicate, 409, "name_taken")


async def test_submit_agents(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")

        first = await client.post(
            "/api/agents", json={"name": "rock", "game": "rps", "code": RPS_ROCK}, headers=alice.headers
        )
        assert first.status_code == 201, first.text
        doc = first.json()
        assert isinstance(doc["id"], int)
        assert doc["version"] == 1
        assert doc["name"] == "rock" and doc["game"] == "rps"

        again = await submit_agent(client, alice, "rock", "rps", RPS_CYCLE)
        assert again["id"] == doc["id"]
        assert again["version"] == 2
        fetched = (await client.get(f"/api/agents/{doc['id']}", headers=alice.headers)).json()
        assert fetched["version"] == 2 and fetched["code"] == RPS_CYCLE

        # The validator's findings come back with line, column and rule.
        rejected = await client.post(
            "/api/agents",
            json={"name": "evil", "game": "rps", "code": "def agent(o, c):\n    return 0\nimport os\n"},
            headers=alice.headers,
        )
        error = assert_error(rejected, 422)
        findings = error["findings"]
        assert isinstance(findings, list) and findings
        assert findings[0]["line"] == 3
        assert isinstance(findings[0]["col"], int)
        assert findings[0]["rule"]
        assert "os" in findings[0]["message"]
        rejected = await client.post(
            "/api/agents", json={"name": "evil", "game": "rps", "code": "def agent(o, c):\n    return eval('1')\n"},
            headers=alice.headers,
        )
        assert assert_error(rejected, 422)["findings"][0]["line"] == 2
        # numpy is the operator's opt-in (off here): refused at submission, not at the first match.
        numpy_bot = "import numpy\ndef agent(o, c):\n    return 0\n"
        rejected = await client.post(
            "/api/agents", json={"name": "evil", "game": "rps", "code": numpy_bot}, headers=alice.headers
        )
        assert "allow_numpy" in assert_error(rejected, 422)["findings"][0]["message"]
        # Nothing was stored for the rejected submissions.
        names = [a["name"] for a in (await client.get("/api/agents")).json()["items"]]
        assert "evil" not in names

        unknown_game = await client.post(
            "/api/agents", json={"name": "x", "game": "chess", "code": RPS_ROCK}, headers=alice.headers
        )
        assert "chess" in str(assert_error(unknown_game, 400)["message"])

        body = {"name": "x", "game": "rps", "code": RPS_ROCK}
        no_token = await client.post("/api/agents", json=body)
        assert_error(no_token, 401)
        assert no_token.headers.get("www-authenticate", "").lower().startswith("bearer")
        assert_error(await client.post("/api/agents", json=body, headers={"Authorization": "Bearer nope"}), 401)
        assert_error(await client.post("/api/agents", json=body, headers={"Authorization": "Basic abc"}), 401)

        assert_error(await client.post("/api/agents", content=b"{\"name\": ", headers=alice.headers), 400)
        assert_error(await client.post("/api/agents", json={"name": "x", "game": "rps"}, headers=alice.headers), 400)
        assert_error(await client.post("/api/agents", json={"name": "x", "game": "rps", "code": 5},
                                       headers=alice.headers), 400)
        assert_error(await client.post("/api/agents", json={"name": "bad name", "game": "rps", "code": RPS_ROCK},
                                       headers=alice.headers), 400)

        remote = await client.post(
            "/api/agents", json={"name": "mine", "game": "connectx", "remote": True}, headers=alice.headers
        )
        assert remote.status_code == 201, remote.text
        remote_doc = remote.json()
        assert isinstance(remote_doc["id"], int) and remote_doc["remote"] is True
        assert remote_doc.get("code") is None
        assert_error(await client.post(
            "/api/agents", json={"name": "mine2", "game": "connectx", "remote": True, "code": RPS_ROCK},
            headers=alice.headers,
        ), 400)


async def test_list_and_get_agents(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        ids = [(await submit_agent(client, alice, f"bot{i}", "rps", RPS_ROCK))["id"] for i in range(5)]

        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get("/api/agents", params=params)).json()
            assert set(page) >= {"items", "next"}
            assert len(page["items"]) <= 2
            assert all("code" not in item for item in page["items"])
            seen += [item["id"] for item in page["items"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == ids
        assert pages == 3
        everything = (await client.get("/api/agents")).json()
        assert [a["id"] for a in everything["items"]] == ids and everything["next"] is None
        assert (await client.get("/api/agents", params={"game": "connectx"})).json()["items"] == []
        assert_error(await client.get("/api/agents", params={"limit": "many"}), 400)
        for limit in (0, -1, 201):  # out of range is an error, never silently the default
            assert_error(await client.get("/api/agents", params={"limit": limit}), 400)
        assert_error(await client.get("/api/agents", params={"cursor": "garbage"}), 400)

        owner_view = (await client.get(f"/api/agents/{ids[0]}", headers=alice.headers)).json()
        assert owner_view["code"] == RPS_ROCK
        assert owner_view["id"] == ids[0] and owner_view["name"] == "bot0" and owner_view["game"] == "rps"
        other_view = (await client.get(f"/api/agents/{ids[0]}", headers=bob.headers)).json()
        assert "code" not in other_view
        anonymous_view = (await client.get(f"/api/agents/{ids[0]}")).json()
        assert "code" not in anonymous_view
        assert anonymous_view["name"] == "bot0"

        assert_error(await client.get("/api/agents/9999"), 404)


async def test_matches(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        rock = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        slow = (await submit_agent(client, bob, "slow", "rps", RPS_SLOW))["id"]
        ttt = (await submit_agent(client, alice, "ttt", "tictactoe", TICTACTOE_FIRST_FREE))["id"]

        body = {"game": "rps", "agents": [rock, slow], "config": {"episodeSteps": 150}}
        assert_error(await client.post("/api/matches", json=body), 401)
        assert_error(await client.post("/api/matches", json=body, headers={"Authorization": "Bearer x"}), 401)
        assert_error(await client.post("/api/matches", json={**body, "agents": [rock, 9999]},
                                       headers=alice.headers), 404)
        assert_error(await client.post("/api/matches", json={**body, "agents": [rock, ttt]},
                                       headers=alice.headers), 400)
        assert_error(await client.post("/api/matches", json={**body, "agents": [rock]}, headers=alice.headers), 400)
        assert_error(await client.post("/api/matches", json={**body, "agents": [rock, rock, rock]},
                                       headers=alice.headers), 400)
        assert_error(await client.post("/api/matches", json={**body, "game": "chess"}, headers=alice.headers), 400)
        bad_key = await client.post("/api/matches", json={**body, "config": {"colums": 7}}, headers=alice.headers)
        message = str(assert_error(bad_key, 400)["message"])
        assert "colums" in message
        for known in ("episodeSteps", "signs", "actTimeout"):
            assert known in message
        # Not a number where one is expected: 422 naming the key and its range (DESIGN.md).
        assert_error(await client.post("/api/matches", json={**body, "config": {"episodeSteps": "many"}},
                                       headers=alice.headers), 422, "config_out_of_range")
        assert_error(await client.post("/api/matches", content=b"[", headers=alice.headers), 400)
        # None of the refused requests created a match.
        assert (await client.get("/api/matches")).json()["items"] == []

        # Any signed-in user may start a match between anyone's agents; it starts at once.
        created = await client.post("/api/matches", json=body, headers=alice.headers)
        assert created.status_code == 201, created.text
        match = created.json()
        match_id = match["id"]
        assert isinstance(match_id, int)
        assert match["game"] == "rps" and match["status"] in ("pending", "live")
        assert [s["agent_id"] for s in match["seats"]] == [rock, slow]
        assert match["config"]["episodeSteps"] == 150

        with anyio.fail_after(10):
            while True:
                doc = (await client.get(f"/api/matches/{match_id}")).json()
                if doc["status"] != "pending":
                    break
                await anyio.sleep(0.01)
        assert doc["status"] == "live"
        live = (await client.get("/api/matches", params={"status": "live"})).json()
        assert [m["id"] for m in live["items"]] == [match_id]
        assert (await client.get("/api/matches", params={"status": "finished"})).json()["items"] == []

        final = await wait_finished(client, match_id)
        assert final["status"] == "finished" and final["reason"] is None
        assert [s["status"] for s in final["seats"]] == ["DONE", "DONE"]
        assert all(isinstance(s["reward"], float | int) for s in final["seats"])
        assert final["steps"] >= 150

        finished = (await client.get("/api/matches", params={"status": "finished"})).json()
        assert [m["id"] for m in finished["items"]] == [match_id] and finished["next"] is None
        assert (await client.get("/api/matches", params={"status": "live"})).json()["items"] == []
        assert [m["id"] for m in (await client.get("/api/matches")).json()["items"]] == [match_id]
        assert_error(await client.get("/api/matches", params={"status": "sleeping"}), 400)


async def test_replay(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        a = (await submit_agent(client, alice, "first", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        b = (await submit_agent(client, alice, "second", "tictactoe", TICTACTOE_FIRST_FREE))["id"]
        match = await start_match(client, alice, "tictactoe", [a, b], seed=1234)
        await wait_finished(client, match["id"])

        response = await client.get(f"/api/matches/{match['id']}/replay")
        assert response.status_code == 200, response.text
        replay = response.json()
        assert replay["game"] == "tictactoe"
        assert replay["seed"] == 1234
        assert replay["config"] == match["config"]
        assert [s["name"] for s in replay["seats"]] == ["first", "second"]
        for seat in replay["seats"]:
            assert set(seat) >= {"name", "status", "reward", "reason"}
            assert seat["status"] == "DONE" and seat["reason"] is None
        # Both play the first free cell: X takes 0, 2, 4, 6 and wins on the diagonal 2-4-6.
        assert [s["reward"] for s in replay["seats"]] == [1.0, -1.0]

        steps = replay["steps"]
        assert [s["step"] for s in steps] == list(range(len(steps)))
        for step in steps:
            assert set(step) >= {"step", "actions", "statuses", "rewards", "state"}
            assert len(step["actions"]) == len(step["statuses"]) == len(step["rewards"]) == 2
        assert steps[0]["actions"] == [None, None]
        assert steps[1]["actions"] == [0, None]  # a seat that did not act has null
        assert steps[2]["actions"] == [None, 1]
        assert steps[-1]["statuses"] == ["DONE", "DONE"]
        assert steps[-1]["rewards"] == [1.0, -1.0]

        report = verify_replay(replay)
        assert report.ok, report.problems
        assert report.steps_checked == len(steps) - 1

        assert_error(await client.get("/api/matches/9999/replay"), 404)


async def test_faulty_bot(settings: Settings) -> None:
    async with api_client(settings) as client:
        alice = await create_user(client, "alice")
        bob = await create_user(client, "bob")
        good = (await submit_agent(client, alice, "rock", "rps", RPS_ROCK))["id"]
        bad = (await submit_agent(client, bob, "faulty", "rps", FAULTY))["id"]
        match = await start_match(client, alice, "rps", [good, bad])
        final = await wait_finished(client, match["id"])

        assert final["status"] == "finished"
        winner, loser = final["seats"]
        assert loser["status"] == "ERROR"
        assert "boom at step" in loser["reason"]
        assert winner["status"] == "DONE" and winner["reason"] is None
        assert winner["reward"] > loser["reward"]
        replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
        assert replay["seats"][1]["status"] == "ERROR" and "boom" in replay["seats"][1]["reason"]
        assert verify_replay(replay).ok

        logs_url = f"/api/agents/{bad}/logs"
        own = await client.get(logs_url, params={"match": match["id"]}, headers=bob.headers)
        assert own.status_code == 200, own.text
        log = own.json()
        assert "thinking about step" in log["log"]  # the bot's own print()
        assert "ValueError" in log["log"] and "boom at step" in log["log"]

        assert_error(await client.get(logs_url, params={"match": match["id"]}, headers=alice.headers), 403)
        assert_error(await client.get(logs_url, params={"match": match["id"]}), 401)
        assert_error(await client.get(logs_url, params={"match": 9999}, headers=bob.headers), 404)
        assert_error(await client.get("/api/agents/9999/logs", params={"match": match["id"]},
                                      headers=bob.headers), 404)
        assert_error(await client.get(logs_url, headers=bob.headers), 400)
        # Alice's agent played in that match too; its own (empty) log is hers to read.
        mine = await client.get(f"/api/agents/{good}/logs", params={"match": match["id"]}, headers=alice.headers)
        assert mine.status_code == 200 and "boom" not in mine.json()["log"]
        # An agent that did not play in that match has no log there.
        other = (await submit_agent(client, bob, "other", "rps", RPS_ROCK))["id"]
        assert_error(await client.get(f"/api/agents/{other}/logs", params={"match": match["id"]},
                                      headers=bob.headers), 404)


async def test_games_leaderboard_health(settings: Settings) -> None:
    async with api_client(settings) as client:
        games = (await client.get("/api/games")).json()
        by_name = {g["name"]: g for g in games["items"]}
        assert set(by_name) >= {"tictactoe", "connectx", "rps"}
        assert by_name["connectx"]["config"]["rows"] == 6
        assert by_name["connectx"]["config"]["columns"] == 7
        assert by_name["connectx"]["config"]["inarow"] == 4
        assert by_name["rps"]["config"]["signs"] == 3

        empty = await client.get("/api/leaderboard", params={"game": "connectx"})
        assert empty.status_code == 200
        assert empty.json()["items"] == []

        alice = await create_user(client, "alice")
        # Each stacks its own column (mark 1 column 0, mark 2 column 1): the first mover wins.
        code = "def agent(observation, configuration):\n    return observation.mark - 1\n"
        a = (await submit_agent(client, alice, "stacker", "connectx", code))["id"]
        b = (await submit_agent(client, alice, "copycat", "connectx", code))["id"]
        match = await start_match(client, alice, "connectx", [a, b])
        final = await wait_finished(client, match["id"])
        assert [s["reward"] for s in final["seats"]] == [1.0, -1.0]

        board = (await client.get("/api/leaderboard", params={"game": "connectx"})).json()
        assert "items" in board
        rows = {row["agent_id"]: row for row in board["items"]}
        assert rows[a]["wins"] == 1 and rows[b]["losses"] == 1
        assert board["items"][0]["agent_id"] == a  # best first
        assert_error(await client.get("/api/leaderboard"), 400)
        assert_error(await client.get("/api/leaderboard", params={"game": "chess"}), 400)

        health = (await client.get("/api/health")).json()
        assert health["status"] == "ok"
        assert isinstance(health["version"], str) and health["version"]
        layers = health["sandbox"]["layers"]
        assert sorted(layer["name"] for layer in layers) == sorted(LAYERS)
        for layer in layers:
            assert isinstance(layer["active"], bool) and isinstance(layer["reason"], str)


async def test_unknown_routes_and_ids(settings: Settings) -> None:
    async with api_client(settings) as client:
        assert_error(await client.get("/api/nope"), 404)
        assert_error(await client.get("/no/such/page"), 404)
        assert_error(await client.get("/api/matches/9999"), 404)
        assert_error(await client.get("/api/matches/abc"), 404)
        assert_error(await client.get("/api/matches/1.5"), 404)
        assert_error(await client.get("/api/matches/abc/replay"), 404)
        assert_error(await client.get("/api/agents/abc"), 404)
        assert_error(await client.get("/api/agents/9999"), 404)
        assert_error(await client.delete("/api/users"), 405)
