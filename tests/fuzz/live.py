"""A real server for the fuzz tests whose hypothesis functions are synchronous: the app under
uvicorn in a blocking portal's thread (``tests/server/conftest.py``'s ``running_server``), and a
blocking HTTP client on it, as ``tests/server/test_config_fuzz.py`` runs one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tests.server.conftest import quiet_settings, running_server

JSON = Any
TICTACTOE_FIRST_FREE = """
def agent(observation, configuration):
    return observation.board.index(0)
"""
# Room for every request a fuzz sends: it is about bodies and frames, not the per-user limits.
ROOMY = {"signups_per_address_hour": 1_000_000, "submissions_per_user_hour": 1_000_000,
         "matches_per_user_hour": 1_000_000, "remote_frames_per_s": 1_000_000}


@dataclass(frozen=True, slots=True)
class Live:
    url: str
    client: httpx.Client
    portal: BlockingPortal

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def signup(self, name: str) -> dict[str, str]:
        """A new user; its ``Authorization`` header."""
        created = self.client.post("/api/users", json={"name": name})
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['token']}"}

    def post(self, path: str, body: JSON, headers: dict[str, str]) -> JSON:
        """A POST that must succeed (201); its JSON answer."""
        response = self.client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    def health(self) -> JSON:
        """``GET /api/health``, which must say ok with no match aborted by the server's own fault."""
        response = self.client.get("/api/health")
        assert response.status_code == 200 and response.json()["status"] == "ok", response.text
        assert response.json()["components"]["matches"]["internal_errors"] == 0, response.text
        return response.json()


@contextmanager
def live_server(tmp_path: Path, **overrides: Any) -> Iterator[Live]:
    """A running server on its own SQLite file with ``ROOMY`` limits (and ``overrides``)."""
    settings = quiet_settings(tmp_path, **{**ROOMY, **overrides})
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_server(settings)) as url,
        httpx.Client(base_url=url, timeout=30, trust_env=False) as client,
    ):
        yield Live(url, client, portal)
