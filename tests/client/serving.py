"""``arena serve`` as a real process for tests: on a free port and its own database, until the block
ends; and the ``arena`` command and plain HTTP calls to run against it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def arena(*args: object, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def call(url: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as resp:
        return json.loads(resp.read())


@contextmanager
def serving(db: Path, log: Path, *flags: str) -> Iterator[str]:
    """``arena serve`` on ``db`` with no ladder and no examples, and ``flags``, its stdout and
    stderr in ``log``; its URL once ``/api/health`` answers. Stopped with SIGINT at the end."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "client", "serve", "--port", str(port), "--db", str(db), "--no-ladder",
             "--no-examples", *flags],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                call(f"{url}/api/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"arena serve did not start: {log.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
