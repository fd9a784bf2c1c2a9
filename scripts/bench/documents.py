"""Big documents: a long match's replay and its spectators, and what they cost the server.

The server is the real app in a process of its own (``_server``); clients are in this process
(HTTP) or another (``_clients``, spectators). Figures:

* Replay: a finished rps match of 150,000 steps (20,000 with ``--quick``; about 45 MB as
  JSON, the size of the match that froze the server in issue 10) stored through the step
  writer, then downloaded whole by one client while another asks ``GET /api/health`` over and
  over: the download's time and rate, and the health requests' p50 and worst latency. Side by
  side with the replay built whole and sent in one piece, as the endpoint did before it was
  streamed (``/bench/matches/{id}/replay-whole``, the same code).
* Spectators of a long live match: a synthetic live feed with 5,000 steps published
  (ConnectX-sized, about 0.4 KiB an event) that goes on at 5 steps a second. Memory per
  spectator: the server's RSS growth per connected spectator, 200 of them, after 20 warm-up
  ones. Joined and left: the server's RSS once 10 rounds of 200 spectators (3 of 100 with
  ``--quick``) have joined it and left, minus its RSS before the first round.

With ``--baseline REF`` (``scripts/bench/run --only documents --baseline HEAD``) both are
measured on the code at that git revision too (``git archive`` into a temporary directory,
with this checkout's ``scripts/bench`` for the benchmark's own routes): "before" rows beside
the current ones.
"""

from __future__ import annotations

import io
import itertools
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from ._common import ROOT, Row, Section, percentile, rss_kib_of
from ._http import request
from ._procs import BenchServer, bench_server, holding_clients

__all__ = ["baseline_tree", "replay_under_load", "run", "spectator_memory"]

# Synthetic feeds live in the hub only: ids far from the database's match ids, a new one per reading.
_feed_ids = itertools.count(800_000)


@contextmanager
def baseline_tree(ref: str) -> Iterator[Path]:
    """The project at git revision ``ref`` in a temporary directory, with this checkout's
    ``scripts/bench`` (its server's control routes); removed on exit.

    Raises:
        RuntimeError: git could not export ``ref``.
    """
    exported = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True,
                              check=False)
    if exported.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {exported.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory(prefix="arena-baseline-") as tmp:
        root = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as archive:
            archive.extractall(root, filter="data")
        shutil.rmtree(root / "scripts" / "bench", ignore_errors=True)
        shutil.copytree(ROOT / "scripts" / "bench", root / "scripts" / "bench",
                        ignore=shutil.ignore_patterns("__pycache__"))
        yield root


async def _download(port: int, path: str) -> tuple[float, int]:
    """GET ``path`` and read the whole response as fast as it comes: (seconds, bytes)."""
    started = time.perf_counter()
    size = 0
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        try:
            while True:
                size += len(await stream.receive(1 << 20))
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return time.perf_counter() - started, size


async def _status(port: int, path: str) -> int:
    """GET ``path``: the response's status (read whole; 503 counts as an answer too)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return int(bytes(data).split(b" ", 2)[1])


async def replay_under_load(server: BenchServer, match_id: int, path: str) -> dict[str, float]:
    """Download ``path`` while asking ``/api/health`` back to back: the download's seconds and MB,
    and the health requests' latencies (p50 and max, ms) and count."""
    latencies: list[float] = []
    done = anyio.Event()
    result: dict[str, float] = {}

    async def download() -> None:
        seconds, size = await _download(server.port, path)
        result.update(seconds=seconds, mb=size / 1e6)
        done.set()

    async def ask_health() -> None:
        while True:  # at least once, however quick the download
            started = time.perf_counter()
            status = await _status(server.port, "/api/health")
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:  # 503: the server's own probe of storage timed out meanwhile
                result["not_ok"] = result.get("not_ok", 0) + 1
            if done.is_set():
                break

    async with anyio.create_task_group() as tg:
        tg.start_soon(download)
        await anyio.sleep(0.005)  # the replay's request first: health then queues behind it, or not
        tg.start_soon(ask_health)
    result.update(p50_ms=statistics.median(latencies), p99_ms=percentile(latencies, 99), max_ms=max(latencies),
                  requests=len(latencies), not_ok=result.get("not_ok", 0))
    return result


async def spectator_memory(server: BenchServer, clients: int, rounds: int, prefill: int) -> dict[str, float]:
    """On a long live feed: RSS growth per connected spectator (KiB), then the RSS growth (MiB)
    once ``rounds`` rounds of ``clients`` spectators have joined and left."""
    feed_id = next(_feed_ids)
    await request(server.port, "POST", f"/bench/feeds/{feed_id}?prefill={prefill}&events=100000&rate=5")
    await request(server.port, "POST", f"/bench/feeds/{feed_id}/start")
    path = f"/ws/matches/{feed_id}"
    async with holding_clients(server, path, 20):
        pass
    await request(server.port, "GET", "/bench/stats?gc=1")
    await anyio.sleep(0.5)
    start = rss_kib_of(server.pid)
    held = start
    for n in range(rounds):
        async with holding_clients(server, path, clients) as (_, summary):
            await anyio.sleep(0.3)
            if n == 0:  # the first crowd: later ones reuse what the first one's departure freed
                held = rss_kib_of(server.pid)
        if summary.get("closed_by_server"):
            raise RuntimeError(f"{summary['closed_by_server']} of {clients} spectators were closed by the server")
    await request(server.port, "GET", "/bench/stats?gc=1")
    await anyio.sleep(0.5)
    end = rss_kib_of(server.pid)
    return {"per_spectator_kib": (held - start) / clients, "left_growth_mib": (end - start) / 1024,
            "start_mib": start / 1024, "end_mib": end / 1024}


async def _measure(root: Path, quick: bool, label: str, section: Section, *, has_stream: bool) -> None:
    steps = 20_000 if quick else 150_000
    clients, rounds = (100, 3) if quick else (200, 10)
    prefill = 5000
    async with bench_server("websockets-sansio", False, root=root) as server:
        match_id = (await request(server.port, "POST", f"/bench/replays?steps={steps}"))["id"]
        paths = {"whole": f"/bench/matches/{match_id}/replay-whole"}
        if has_stream:
            paths["streamed"] = f"/api/matches/{match_id}/replay"
        per: dict[str, list[dict[str, float]]] = {kind: [] for kind in paths}
        for _ in range(1 if quick else 3):
            for kind, path in paths.items():
                per[kind].append(await replay_under_load(server, match_id, path))
        size = per["whole"][0]["mb"]
        for kind, runs in per.items():
            what = "built whole, one piece (as before)" if kind == "whole" else "streamed in pages"
            name = f"replay of a {steps:,}-step match ({size:.0f} MB), {what}{label}"
            section.add(Row(f"{name}: download", "s", [r["seconds"] for r in runs]))
            section.add(Row(f"{name}: GET /api/health p50 meanwhile", "ms", [r["p50_ms"] for r in runs]))
            section.add(Row(f"{name}: GET /api/health worst meanwhile", "ms", [r["max_ms"] for r in runs],
                            "< 100 ms" if kind == "streamed" else ""))
            failing = sum(r["not_ok"] for r in runs)
            if failing:
                section.notes.append(f"{name}: /api/health answered 503 (its storage probe timed out) "
                                     f"{failing} time(s) of {sum(r['requests'] for r in runs):.0f}")
    async with bench_server("websockets-sansio", False, root=root) as server:
        memory = await spectator_memory(server, clients, rounds, prefill)
    section.add(Row(f"memory per spectator joined to a long live match ({prefill:,} steps){label}", "KiB",
                    [memory["per_spectator_kib"]], "<= 64 KiB" if not label else ""))
    section.add(Row(f"server RSS growth after {rounds} x {clients} spectators joined and left it{label}", "MiB",
                    [memory["left_growth_mib"]], "<= 10 MiB" if not label else ""))
    section.add(Row(f"server RSS after they left{label}", "MiB", [memory["end_mib"]]))


async def run(quick: bool, baseline: str | None = None) -> Section:
    """The figures on this checkout, and on ``baseline`` (a git revision) too when given."""
    section = Section("Big documents")
    await _measure(ROOT, quick, "", section, has_stream=True)
    if baseline:
        with baseline_tree(baseline) as root:
            await _measure(root, quick, f" [{baseline}]", section, has_stream=False)
        section.notes.append(f"rows marked [{baseline}]: the code at git revision {baseline}, measured the same way "
                             "(its replay endpoint built the document whole)")
    section.notes.append("replay: one client downloads at full speed while another asks GET /api/health back to back; "
                         "spectators: a synthetic live feed (about 0.4 KiB an event) going on at 5 steps/s")
    return section
