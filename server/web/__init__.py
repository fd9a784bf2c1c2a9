"""The web app: three HTML pages and their static ES modules and stylesheet.

There is no front-end build step. Each page is a plain HTML file that loads one ES module
from ``static/``; the modules read the page's id from ``location.pathname`` and talk to the
JSON API and the WebSockets, so the handlers here only hand out files. Pages carry a strict
Content-Security-Policy: everything comes from this server, nothing from the internet.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "WEB_DIR", "agent_page", "index_page", "match_page", "static_files"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"

# 'self' in connect-src covers ws:// and wss:// to the same host (CSP level 3).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages are tiny and change with each release: always revalidate (the ETag makes that cheap).
    "Cache-Control": "no-cache",
}


def _page(name: str) -> Response:
    return FileResponse(WEB_DIR / name, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


async def index_page(request: Request) -> Response:
    """The lobby: live matches, recent results and the leaderboard."""
    return _page("index.html")


async def match_page(request: Request) -> Response:
    """One match: live board, move list, then replay controls and the result."""
    return _page("match.html")


async def agent_page(request: Request) -> Response:
    """One agent: its details, its standing and its recent matches."""
    return _page("agent.html")


def static_files() -> StaticFiles:
    """The ASGI app serving ``static/`` (scripts, stylesheet, icon)."""
    return StaticFiles(directory=STATIC_DIR)
