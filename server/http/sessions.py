"""Authenticated WebSocket sessions, so that a revoked token closes its open sockets at once.

A socket that authenticated with a token (a remote agent on ``/ws/agent``, an owner's debug
view on ``/ws/matches/{id}?seat=N``) runs inside ``Sessions.open(token_hash)``: its work runs
in the session's cancel scope. Rotating the token calls ``revoke(old_hash)``, which cancels
every such scope; the handler then sees ``session.is_revoked`` and raises ``Unauthorized``,
which ``server/http/errors.py`` turns into an ``error`` frame and close code 4401.

A revoked hash is also remembered, for the race where a socket looked its token up just
before the rotation committed and registers just after it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio

from protocol.errors import Unauthorized
from server.http.auth import hash_token
from server.storage import Storage, UserRecord

__all__ = ["Session", "Sessions", "authenticate"]

_REMEMBERED_REVOCATIONS = 4096


@dataclass(eq=False, slots=True)
class Session:
    """One authenticated socket; its handler runs its work inside ``scope``."""

    token_hash: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    is_revoked: bool = False

    def revoke(self) -> None:
        self.is_revoked = True
        self.scope.cancel()


class Sessions:
    """Open sessions by token hash."""

    def __init__(self) -> None:
        self._open: dict[str, set[Session]] = {}
        self._revoked: OrderedDict[str, None] = OrderedDict()

    @contextmanager
    def open(self, token_hash: str) -> Iterator[Session]:
        """Register a session for the block's duration.

        Raises:
            Unauthorized: the token was revoked since it was looked up.
        """
        if token_hash in self._revoked:
            raise Unauthorized("the token was revoked")
        session = Session(token_hash)
        self._open.setdefault(token_hash, set()).add(session)
        try:
            yield session
        finally:
            sessions = self._open.get(token_hash)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._open[token_hash]

    def revoke(self, token_hash: str) -> int:
        """Close every session of a token now; how many there were."""
        self._revoked[token_hash] = None
        while len(self._revoked) > _REMEMBERED_REVOCATIONS:
            self._revoked.popitem(last=False)
        sessions = self._open.pop(token_hash, set())
        for session in sessions:
            session.revoke()
        return len(sessions)

    def count(self, token_hash: str) -> int:
        return len(self._open.get(token_hash, ()))


async def authenticate(storage: Storage, token: str | None) -> tuple[UserRecord, str]:
    """The user holding ``token``, and the token's hash.

    The lookup is by the token's SHA-256 hash, so no stored secret is compared character by
    character with the caller's.

    Raises:
        Unauthorized: no token, or an unknown or revoked one.
    """
    if not token:
        raise Unauthorized("this needs a token: 'Authorization: Bearer TOKEN' or a hello frame with one")
    token_hash = hash_token(token)
    user = await storage.user_by_token_hash(token_hash)
    if user is None:
        raise Unauthorized("unknown or revoked token")
    return user, token_hash

