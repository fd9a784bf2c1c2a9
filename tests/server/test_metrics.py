"""``GET /metrics`` (issue 14, part 7): Prometheus' text format, read back with the library's own
parser, whose numbers move as real matches run on a real server: moves, ended matches by status,
seats' outcomes, seats started, live sockets by kind, HTTP requests by route template, the event
loop's lag and the core gate; a worker of a cluster serves its own."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from protocol.errors import LayerUnavailable
from server.matches.cores import usable_cores
from server.sandbox import Limits, SeatLauncher, SeatMode
from server.storage import MatchStatus, open_postgres
from tests.cluster.nodes import create_matches, eventually, node, wait_until_ended
from tests.server.conftest import (
    FAULTY,
    RPS_CYCLE,
    RPS_SLOW,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
    ws_url,
)

pytestmark = pytest.mark.timeout(120)

JSON = Any
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ENDLESS = {"episodeSteps": 10_000, "runTimeout": 3600.0}  # plays on until it is stopped


async def scrape(client: httpx.AsyncClient, accept: str | None = None) -> Samples:
    """Every sample of ``GET /metrics``, parsed as Prometheus parses the text format."""
    response = await client.get("/metrics", headers={"Accept": accept} if accept else None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def by_label(samples: Samples, name: str, label: str) -> Mapping[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


async def recv(ws: ClientConnection) -> JSON:
    with anyio.fail_after(20):
        return json.loads(await ws.recv())


async def test_metrics_move_as_matches_run(tmp_path: Path) -> None:
    async with api_client(quiet_settings(tmp_path)) as client:
        before = await scrape(client)
        assert value(before, "arena_moves_total") == 0
        assert value(before, "arena_matches_live") == 0
        assert by_label(before, "arena_matches_ended_total", "status") == {"finished": 0, "aborted": 0}
        assert by_label(before, "arena_seat_outcomes_total", "status") == {
            "DONE": 0, "TIMEOUT": 0, "ERROR": 0, "INVALID": 0}
        assert by_label(before, "arena_websockets", "kind") == {"match": 0, "lobby": 0, "agent": 0}
        assert value(before, "arena_core_gate_places") == usable_cores()
        assert value(before, "arena_core_gate_busy") == value(before, "arena_core_gate_waiting") == 0
        assert value(before, "process_open_fds") > 0  # the library's process collector, on this app's registry

        alice = await create_user(client, "alice")
        cycle = await submit_agent(client, alice, "cycle", "rps", RPS_CYCLE)
        slow = await submit_agent(client, alice, "slow", "rps", RPS_SLOW)
        faulty = await submit_agent(client, alice, "faulty", "rps", FAULTY)
        async with connect(ws_url(client, "/ws/lobby"), proxy=None):
            played = await start_match(client, alice, "rps", [cycle["id"], slow["id"]], {"episodeSteps": 40})
            broken = await start_match(client, alice, "rps", [cycle["id"], faulty["id"]], {"episodeSteps": 40})
            endless = await start_match(client, alice, "rps", [slow["id"], cycle["id"]], ENDLESS)

            async def is_playing() -> bool:
                samples = await scrape(client)
                return value(samples, "arena_matches_live") >= 1 and value(samples, "arena_moves_total") > 0

            await eventually(is_playing, 30)
            async with connect(ws_url(client, f"/ws/matches/{endless['id']}"), proxy=None) as spectator:
                assert (await recv(spectator))["type"] == "snapshot"
                during = await scrape(client)
                assert by_label(during, "arena_websockets", "kind") == {"match": 1, "lobby": 1, "agent": 0}
                assert value(during, "arena_feeds_live") >= 1
                docs = [await wait_finished(client, m["id"]) for m in (played, broken)]
                assert [d["status"] for d in docs] == ["finished", "finished"]
                stopped = await client.post(f"/api/matches/{endless['id']}/abort", headers=alice.headers)
                assert stopped.status_code == 200, stopped.text
                while (frame := await recv(spectator))["type"] != "end":
                    assert frame["type"] == "event"
                with anyio.fail_after(10):
                    await spectator.wait_closed()
                assert spectator.close_code == 1000
            aborted = await wait_finished(client, endless["id"])
            assert aborted["status"] == "aborted"
        assert (await client.get("/no/such/page")).status_code == 404

        async def sockets_closed() -> bool:
            samples = await scrape(client)
            return set(by_label(samples, "arena_websockets", "kind").values()) == {0}

        await eventually(sockets_closed, 10)
        after = await scrape(client)
        # Every move stored: the steps after each match's initial state.
        stored = [(await client.get(f"/api/matches/{m['id']}")).json()["steps"] for m in (played, broken, endless)]
        assert value(after, "arena_moves_total") == sum(steps - 1 for steps in stored)
        assert value(after, "arena_matches_live") == 0
        assert by_label(after, "arena_matches_ended_total", "status") == {"finished": 2, "aborted": 1}
        # Both seats of the played match and the faulty bot's opponent DONE; the faulty one ERROR;
        # the stopped match's seats have no outcome.
        assert by_label(after, "arena_seat_outcomes_total", "status") == {
            "DONE": 3, "TIMEOUT": 0, "ERROR": 1, "INVALID": 0}
        started = by_label(after, "arena_sandbox_seats_started_total", "how")
        assert started["fork"] + started["fresh"] == 6
        assert value(after, "arena_sandbox_seat_start_failures_total") == 0
        # Requests by route template (one series for every match), unrouted ones as "unmatched".
        assert value(after, "arena_http_requests_total", route="/api/matches/{match_id}", method="GET",
                     status="200") >= 4
        assert value(after, "arena_http_requests_total", route="/api/matches", method="POST", status="201") == 3
        assert value(after, "arena_http_requests_total", route="unmatched", method="GET", status="404") == 1
        assert not any(labels and "/api/matches/1" in dict(labels).get("route", "") for _, labels in after)
        assert value(after, "arena_http_request_duration_seconds_count", route="/api/agents") == 3
        # The spectator was closed normally after its end; the lobby closed by the client.
        assert value(after, "arena_websocket_closes_total", kind="match", code="1000") == 1
        assert value(after, "arena_event_loop_lag_seconds_count") >= 1
        assert value(after, "arena_event_loop_lag_last_seconds") >= 0

        # A scraper that asks for OpenMetrics gets it.
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")


async def test_two_apps_in_one_process_count_apart(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    async with (
        api_client(quiet_settings(tmp_path / "one")) as one,
        api_client(quiet_settings(tmp_path / "two")) as two,
    ):
        for _ in range(3):
            assert (await one.get("/api/games")).status_code == 200
        assert value(await scrape(one), "arena_http_requests_total", route="/api/games", method="GET",
                     status="200") == 3
        assert ("arena_http_requests_total", frozenset(
            {"route": "/api/games", "method": "GET", "status": "200"}.items())) not in await scrape(two)


def test_a_seat_that_cannot_start_counts_as_a_start_failure() -> None:
    # "fork" without a fork server refuses every seat: nothing starts, and the launcher says so.
    launcher = SeatLauncher(SeatMode.FORK)

    async def open_one() -> None:
        async with launcher.open_seat(Limits(), python=sys.executable):
            raise AssertionError("no seat can start here")

    with pytest.raises(LayerUnavailable):
        anyio.run(open_one)
    assert launcher.start_failures == 1
    assert launcher.started == {"fork": 0, "fresh": 0}


@pytest.mark.slow
async def test_a_worker_serves_its_metrics(postgres_url: str, tmp_path: Path) -> None:
    async with (
        open_postgres(postgres_url) as storage,
        node(postgres_url, "worker", tmp_path / "worker.log") as worker,
    ):
        assert (await worker.client.get("/api/games")).status_code == 404  # its health and metrics alone
        before = await scrape(worker.client)
        assert value(before, "arena_queue_claims_total") == 0
        [match] = await create_matches(storage, 1, rated=False)
        [record] = await wait_until_ended(storage, [match.id], 60)
        assert record.status is MatchStatus.FINISHED

        async def counted() -> bool:
            samples = await scrape(worker.client)
            return value(samples, "arena_matches_ended_total", status="finished") == 1

        await eventually(counted, 10)
        after = await scrape(worker.client)
        assert value(after, "arena_queue_claims_total") == 1
        assert value(after, "arena_moves_total") == record.steps - 1
        assert value(after, "arena_seat_outcomes_total", status="DONE") == 2
