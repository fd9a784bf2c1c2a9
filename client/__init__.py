"""The client side of Agent Arena: the ``arena`` command line and the remote-agent SDK.

Importing this package is cheap: nothing here pulls in the server, and the SDK (with the
``websockets`` client) loads on first use of ``client.RemoteAgent``. The CLI imports server
parts (games, the match runner, the sandbox) lazily, inside the commands that run them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sdk import RemoteAgent, RemoteAgentError

__all__ = ["RemoteAgent", "RemoteAgentError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'client' has no attribute {name!r}")
