"""How uvicorn serves the app: the options ``arena serve``, the tests' servers and the
benchmarks share, so that each runs the transport users get."""

from __future__ import annotations

from typing import Any

from server.config import Settings

__all__ = ["TRANSPORT_FRAMES", "uvicorn_options"]

TRANSPORT_FRAMES = 4  # the transport's bound on a WebSocket frame, in max_frame_bytes


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for the WebSockets and the client addresses of ``settings``."""
    return {
        # Measured (scripts/bench, README "Performance"): the sansio implementation has the least
        # CPU per delivered frame, and per-message deflate costs +53% CPU and twice the memory
        # per socket for small JSON events.
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        # Past max_frame_bytes a frame gets an error frame and is ignored; far past it the
        # transport stops buffering it and closes the socket (1009, message too big).
        "ws_max_size": settings.max_frame_bytes * TRANSPORT_FRAMES,
        # A spectator that stopped reading must not hold a shutdown forever.
        "timeout_graceful_shutdown": 5,
        # The per-address limits need the real peer: X-Forwarded-For only from the proxies the
        # operator lists (none by default).
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
    }
