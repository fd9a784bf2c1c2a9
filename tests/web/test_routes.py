"""The web app's routes over plain HTTP: pages, static files, headers (no browser needed)."""

from __future__ import annotations

from importlib import resources

import pytest

from server.config import Settings
from tests.server.conftest import api_client

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("path", "script"),
    [("/", "/static/lobby.js"), ("/matches/1", "/static/match.js"), ("/agents/7", "/static/agent.js")],
)
async def test_pages_are_html_with_their_module_and_a_strict_policy(settings: Settings, path: str, script: str) -> None:
    async with api_client(settings) as client:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert f'<script type="module" src="{script}"></script>' in response.text
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_static_files_are_served_and_nothing_else(settings: Settings) -> None:
    async with api_client(settings) as client:
        for name, kind in [("app.js", "javascript"), ("boards.js", "javascript"), ("style.css", "text/css"),
                           ("favicon.svg", "image/svg+xml")]:
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert kind in response.headers["content-type"], (name, response.headers["content-type"])
        assert (await client.get("/static/missing.js")).status_code == 404
        assert (await client.get("/static/../__init__.py")).status_code == 404
        assert (await client.get("/static/%2e%2e/__init__.py")).status_code == 404
        assert (await client.get("/matches/abc")).status_code == 404  # ids are integers
        assert (await client.get("/api/health")).status_code == 200  # the API is unaffected


def test_web_files_ship_with_the_package() -> None:
    web = resources.files("server.web")
    for name in ("index.html", "match.html", "agent.html"):
        assert web.joinpath(name).is_file(), name
    for name in ("app.js", "lobby.js", "match.js", "agent.js", "boards.js", "style.css", "favicon.svg"):
        assert web.joinpath("static", name).is_file(), name
