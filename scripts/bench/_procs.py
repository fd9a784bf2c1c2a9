"""Starting the benchmark server and client processes (``_server``, ``_clients``) and talking to them."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import ByteReceiveStream

from ._common import ROOT
from ._http import request

__all__ = [
    "SERVER_ERRORS",
    "WORKAROUNDS",
    "BenchServer",
    "bench_server",
    "holding_clients",
    "run_clients",
    "wait_ended",
    "wait_live",
]


WORKAROUNDS: set[str] = set()  # every workaround any benchmark server applied, for the results' notes
SERVER_ERRORS: list[str] = []  # what benchmark servers logged at ERROR, summarised, for the results' notes
LOG_DIR = ROOT / "bench-results"
_log_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class BenchServer:
    """A running benchmark server: where it listens and its process (for /proc readings)."""

    port: int
    pid: int
    ws: str
    deflate: bool
    workarounds: tuple[str, ...] = ()  # bugs of the code under test that the server had to work around


class _Lines:
    def __init__(self, stream: ByteReceiveStream) -> None:
        self.stream = stream
        self.buf = b""

    async def line(self, timeout_s: float, what: str) -> Any:
        with anyio.fail_after(timeout_s):
            while b"\n" not in self.buf:
                try:
                    self.buf += await self.stream.receive()
                except anyio.EndOfStream:
                    raise RuntimeError(f"{what} exited before answering") from None
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def _tail(file: IO[bytes]) -> str:
    file.seek(0)
    lines = [line for line in file.read().decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "no output"


def _report_errors(file: IO[bytes], what: str) -> None:
    """Pass on that the server logged errors (a benchmark can hide a bug): a summary here, the log kept."""
    file.seek(0)
    text = file.read().decode(errors="replace")
    lines = text.splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    if not errors:
        return
    # The innermost exception of each traceback: the last "|   SomeError: ..." or "SomeError: ..." line.
    causes = Counter(line.strip(" |+-") for line in lines
                     if re.match(r"^[\s|+-]*[A-Za-z_.]+(Error|Exception|Closed|Disconnect)\w*:", line))
    LOG_DIR.mkdir(exist_ok=True)
    log_path = LOG_DIR / f"server-{next(_log_ids)}-{what.replace(' ', '').replace(',', '-')}.log"
    log_path.write_text(text)
    summary = "; ".join(f"{n}x {cause[:160]}" for cause, n in causes.most_common(3))
    print(f"[bench] server ({what}) logged {len(errors)} error(s): {summary or errors[0]} (log: {log_path})",
          file=sys.stderr)
    SERVER_ERRORS.append(f"server ({what}): {len(errors)} error(s) logged: {summary or errors[0]}")


@asynccontextmanager
async def bench_server(
    ws: str, deflate: bool, queue_frames: int | None = None, root: Path = ROOT, ladder_slots: int = 0,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[BenchServer]:
    """Run ``scripts.bench._server`` with a WebSocket implementation; SIGTERM, then SIGKILL, on exit.
    ``root`` is the tree it runs from (another revision of the project, to compare); with
    ``ladder_slots``, the ladder runs with that many rated slots; ``extra``: more of its arguments
    (``--db``, ``--role``... for a cluster).

    Raises:
        RuntimeError: it did not start (its last lines of error output are in the message).
    """
    argv = [sys.executable, "-m", "scripts.bench._server", "--ws", ws, "--deflate" if deflate else "--no-deflate"]
    if queue_frames is not None:
        argv += ["--queue-frames", str(queue_frames)]
    if ladder_slots:
        argv += ["--ladder-slots", str(ladder_slots)]
    argv += extra
    with tempfile.TemporaryFile() as err:
        async with await anyio.open_process(argv, cwd=root, stdin=subprocess.DEVNULL, stderr=err) as proc:
            try:
                assert proc.stdout is not None
                try:
                    ready = await _Lines(proc.stdout).line(120, f"server ({ws})")
                except (RuntimeError, TimeoutError) as exc:
                    raise RuntimeError(f"{exc}: {_tail(err)}") from None
                server = BenchServer(ready["port"], ready["pid"], ws, deflate, tuple(ready.get("workarounds", ())))
                WORKAROUNDS.update(server.workarounds)
                yield server
            finally:
                with anyio.CancelScope(shield=True):
                    if proc.returncode is None:
                        proc.terminate()
                        with anyio.move_on_after(20):
                            await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                    what = f"{ws}, deflate {'on' if deflate else 'off'}"
                    role = next((extra[i + 1] for i, a in enumerate(extra[:-1]) if a == "--role"), None)
                    _report_errors(err, f"{role} {what}" if role else what)


async def run_clients(args: dict[str, Any]) -> dict[str, Any]:
    """Run ``scripts.bench._clients`` with ``args`` and return its JSON result.

    Raises:
        RuntimeError: the clients failed (their last lines of error output are in the message).
    """
    with tempfile.TemporaryFile() as err:
        result = await anyio.run_process([sys.executable, "-m", "scripts.bench._clients", json.dumps(args)],
                                         cwd=ROOT, check=False, stderr=err)
        if result.returncode != 0:
            raise RuntimeError(f"clients ({args['mode']}) failed: {_tail(err)}")
    out: dict[str, Any] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return out


@asynccontextmanager
async def holding_clients(
    server: BenchServer, path: str, n: int
) -> AsyncIterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` spectators of ``path`` connected (and past their snapshot) for the block's duration.

    Yields what the clients said when ready, and a dict that is filled on exit with what they
    received meanwhile (``messages``, ``closed_by_server``).
    """
    args = {"mode": "hold", "port": server.port, "path": path, "clients": n, "deflate": server.deflate}
    argv = [sys.executable, "-m", "scripts.bench._clients", json.dumps(args)]
    with tempfile.TemporaryFile() as err:
        async with await anyio.open_process(argv, cwd=ROOT, stderr=err) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            lines = _Lines(proc.stdout)
            try:
                ready = await lines.line(300, "clients (hold)")
            except (RuntimeError, TimeoutError) as exc:
                proc.kill()
                raise RuntimeError(f"{exc}: {_tail(err)}") from None
            summary: dict[str, Any] = {}
            try:
                yield ready, summary
            finally:
                with anyio.CancelScope(shield=True):
                    await proc.stdin.send(b"close\n")
                    try:
                        summary.update(await lines.line(60, "clients (hold)"))
                    finally:
                        if proc.returncode is None:
                            with anyio.move_on_after(10):
                                await proc.wait()
                        if proc.returncode is None:
                            proc.kill()
                            await proc.wait()


async def wait_live(server: BenchServer, ids: list[int], min_seq: int, timeout_s: float) -> None:
    """Until every match in ``ids`` is live with at least ``min_seq`` events published."""
    with anyio.fail_after(timeout_s):
        for match_id in ids:
            while True:
                progress = await request(server.port, "GET", f"/bench/matches/{match_id}/progress")
                if progress["live"] and progress["seq"] >= min_seq:
                    break
                await anyio.sleep(0.05)


async def wait_ended(server: BenchServer, match_id: int, timeout_s: float) -> None:
    """Until the match's feed is closed (it ended and was stored)."""
    with anyio.fail_after(timeout_s):
        while True:  # polling another process: there is no event to wait on
            if not (await request(server.port, "GET", f"/bench/matches/{match_id}/progress"))["live"]:
                return
            await anyio.sleep(0.1)
