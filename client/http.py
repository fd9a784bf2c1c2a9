"""A tiny JSON client for the arena's HTTP API, on ``urllib.request``.

Every failure becomes a :class:`~client.errors.CliError` with one line for the user: the
server unreachable, an HTTP error (its ``{"error": {"code", "message"}}`` body when it has
one), or a reply that is not JSON.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from protocol.codec import decode_json, encode_json
from protocol.errors import ProtocolError

from .errors import CliError

__all__ = ["ApiClient", "ws_url"]

MAX_REPLY_BYTES = 256 << 20  # a long replay is large, but not this large


class ApiClient:
    """GET, POST and PATCH JSON to one arena server, with an optional Bearer token."""

    def __init__(self, server: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str) -> Any:
        """GET ``path`` and return the decoded JSON.

        Raises:
            CliError: unreachable server, HTTP error or a reply that is not JSON.
        """
        return self._request("GET", path, None)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path`` and return the decoded JSON reply.

        Raises:
            CliError: unreachable server, HTTP error or a reply that is not JSON.
        """
        return self._request("POST", path, encode_json(body))

    def patch(self, path: str, body: Any) -> Any:
        """PATCH ``path`` with ``body`` as JSON and return the decoded JSON reply.

        Raises:
            CliError: unreachable server, HTTP error or a reply that is not JSON.
        """
        return self._request("PATCH", path, encode_json(body))

    def _request(self, method: str, path: str, data: bytes | None) -> Any:
        url = f"{self.server}{path}"
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CliError(f"server URL must start with http:// or https://, got {self.server!r}",
                           code="bad_input")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw: bytes = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise _http_error(method, url, exc) from None
        except urllib.error.URLError as exc:
            raise CliError(f"cannot reach the arena server at {self.server}: {exc.reason}",
                           code="unreachable") from None
        except TimeoutError:
            raise CliError(f"the arena server at {self.server} did not answer within {self.timeout_s:g} s",
                           code="unreachable") from None
        except OSError as exc:
            raise CliError(f"cannot reach the arena server at {self.server}: {exc}", code="unreachable") from None
        try:
            return decode_json(raw, max_bytes=MAX_REPLY_BYTES)
        except ProtocolError as exc:
            raise CliError(f"{method} {url}: the server's reply is not JSON ({exc})", code="bad_reply") from None


def _http_error(method: str, url: str, exc: urllib.error.HTTPError) -> CliError:
    """The error an HTTP error reply stands for, with the server's own code and message."""
    try:
        body = decode_json(exc.read(MAX_REPLY_BYTES))
    except (ProtocolError, OSError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        findings = error.get("findings")
        message = str(error["message"])
        if exc.code == 401:
            message = f"wrong token: {message}"
        return CliError(
            message, code=str(error.get("code", "http_error")),
            findings=findings if isinstance(findings, list) else (),
        )
    return CliError(f"{method} {url}: HTTP {exc.code} {exc.reason}", code="http_error")


def ws_url(server: str, path: str) -> str:
    """The WebSocket URL of ``path`` on ``server`` (``http`` becomes ``ws``, ``https`` ``wss``).

    Raises:
        CliError: the server URL is not http(s) or ws(s).
    """
    parts = urllib.parse.urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CliError(f"server URL must look like http://HOST:PORT, got {server!r}", code="bad_input")
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + path, "", ""))
