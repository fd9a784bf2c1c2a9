"""Tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["TOKEN_PREFIX", "hash_token", "new_token", "parse_bearer"]


TOKEN_PREFIX = "arena_"


def new_token() -> str:
    """A fresh token with 256 bits of randomness.

    The prefix lets people (and secret scanners) recognise one, and means a token never starts
    with ``-``, which a command line would read as an option (``arena login --token -x...``).
    """
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. Lookups are by this hash, so no stored token is compared
    character by character with the caller's."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, if well-formed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
