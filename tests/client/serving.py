"""``arena serve`` as a real process for tests: on a free port and its own database, until the block ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.client.test_cli_server import ROOT, call, free_port


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
