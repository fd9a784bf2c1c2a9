"""A minimal HTTP/1.1 client for the benchmark server's control routes (no extra dependency)."""

from __future__ import annotations

from typing import Any

import anyio
import orjson

__all__ = ["request"]


async def request(port: int, method: str, path: str) -> Any:
    """``method path`` on 127.0.0.1:``port``; the JSON body of a 200 answer.

    Raises:
        RuntimeError: another status (its body is in the message).
    """
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n".encode())
        data = bytearray()
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {status}: {body[:300]!r}")
    return orjson.loads(body)
