"""One process on SQLite never loads the PostgreSQL side: asyncpg (about 4 MiB of memory and
17 ms of start-up) is imported only when a name of ``server.storage``'s PostgreSQL half is first
used, and the cluster's parts (``server/cluster/``) only by a process on PostgreSQL.

Both checks run real processes: one imports the app and the command line as ``arena serve``
does, then uses a PostgreSQL name; the other is ``arena serve`` itself on an SQLite file, its
memory map read from ``/proc`` once it answers, the ladder and the examples on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.nodes import ROOT, free_port

pytestmark = pytest.mark.timeout(120)

IMPORTS = """
import sys

import client.cli
import server.app

loaded = sorted(m for m in sys.modules if m.split(".")[0] == "asyncpg" or m.startswith("server.cluster"))
assert not loaded, loaded
from server.storage import open_postgres  # the lazy half, on first use

assert "asyncpg" in sys.modules and open_postgres.__module__ == "server.storage.postgres"
print("ok")
"""


def test_importing_the_app_loads_no_postgresql_until_a_name_of_it_is_used() -> None:
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_a_server_on_sqlite_runs_without_asyncpg(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "client", "serve", "--port", str(port), "--db", str(tmp_path / "arena.db")],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:  # up, with its ladder and examples: everything a default start does
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5, trust_env=False).json()
                if health.get("status") == "ok":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "arena serve did not answer within 60 s"
            time.sleep(0.1)
        assert health["database"] == "sqlite"
        mapped = Path(f"/proc/{process.pid}/maps").read_text()
        assert "/asyncpg/" not in mapped  # none of its compiled modules is loaded
        assert "/orjson/" in mapped  # as the server's own compiled modules are: the check sees them
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
