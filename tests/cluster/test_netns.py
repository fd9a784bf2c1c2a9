"""A worker cut off from PostgreSQL by the network itself, in a network namespace the test makes.

Theory of operation
-------------------
:func:`private_link` makes a network namespace and a veth pair of its own (their names carry
this process's id; the addresses are a /30 of ``10.213.0.0/16`` that no address or route of
this machine overlaps), one end in the namespace, the other on this side, and removes both in
a ``finally``, whatever happened; nothing it did not make is touched. A worker (``arena serve
--role worker``) runs inside the namespace (``ip netns exec``) and serves its health on its end's
address. The tests' PostgreSQL listens on 127.0.0.1 alone, so a TCP forwarder of the test's,
bound to this side's address, carries the worker's connections to it (:class:`Forwarder`).

Cutting the link is ``ip link set ... down`` on this side (the namespace's end loses its
carrier with it): the worker's packets go nowhere, its statements hang as behind a dead
switch, and PostgreSQL, whose peer is the forwarder, notices nothing. Restoring it is ``ip
link set ... up``: what the worker had in flight arrives late, by TCP's retransmissions.

The test skips, saying why, where it cannot make a namespace: not root, no ``ip``, or no
permission for it (a container without CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from anyio.abc import Process, SocketAttribute, SocketStream, TaskStatus

from server.storage import MatchStatus, open_postgres
from tests.cluster.nodes import (
    LEASE_S,
    RECOVERY_S,
    ROOT,
    RUNNER,
    Node,
    check_replays,
    create_matches,
    eventually,
    free_port,
    node,
    wait_until_ended,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

# The cluster's process runner (nodes.py), serving on the address given after its settings
# rather than on 127.0.0.1, which inside the namespace nobody else reaches.
NS_RUNNER = RUNNER.replace('host="127.0.0.1"', "host=sys.argv[5]")
assert NS_RUNNER != RUNNER, "nodes.RUNNER no longer names its host as this test expects"

MAX_ATTEMPTS = 6

_POOL = ipaddress.IPv4Network("10.213.0.0/16")  # the /30s a link is chosen from

# A transaction of the storage's caught by the cut between two of its statements, as a worker's
# step batch is when the link goes down after its UPDATE of the match and before its COMMIT: on
# a connection of the storage's own pool, it takes a lock on the match's row that a claim must
# skip, says so, and never sends the rest.
STALLED = """
import sys

import anyio

from server.storage._pg_schema import connect_pool

async def main():
    pool = await connect_pool(sys.argv[1], max_size=1)
    match_id = int(await anyio.to_thread.run_sync(sys.stdin.readline))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM matches WHERE id = $1 FOR KEY SHARE", match_id)
        print("locked", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def _must(*args: str) -> str:
    done = _ip(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this side already routes or holds an address in."""
    taken = []
    for route in json.loads(_must("-j", "-4", "route", "show", "table", "all") or "[]"):
        if route.get("dst", "default") != "default":
            taken.append(ipaddress.IPv4Network(route["dst"], strict=False))
    for link in json.loads(_must("-j", "-4", "addr", "show") or "[]"):
        for addr in link.get("addr_info", []):
            taken.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return taken


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of the pool that nothing here overlaps, picked from this process's id on."""
    taken = _taken_networks()
    subnets = list(_POOL.subnets(new_prefix=30))
    start = os.getpid() % len(subnets)
    for subnet in subnets[start:] + subnets[:start]:
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError(f"every /30 of {_POOL} overlaps an address or route of this machine")


@dataclass(frozen=True, slots=True)
class Link:
    """A namespace and the veth pair into it; ``here`` and ``there`` are the two ends' addresses."""

    namespace: str
    near: str  # the end on this side
    here: str
    there: str

    def cut(self) -> None:
        _must("link", "set", self.near, "down")

    def restore(self) -> None:
        _must("link", "set", self.near, "up")


@contextmanager
def private_link() -> Iterator[Link]:
    """A network namespace with a veth pair into it, removed on the way out (see the module docstring)."""
    if os.geteuid() != 0:
        pytest.skip("making a network namespace (ip netns add) needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's ip is not installed (apt-get install iproute2)")
    tag = str(os.getpid())
    namespace, near, far = f"arena-test-{tag}", f"arn{tag}h", f"arn{tag}w"  # interface names: 15 characters at most
    made = _ip("netns", "add", namespace)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    has_link = False
    try:
        subnet = _free_subnet()
        here, there = (str(host) for host in subnet.hosts())
        _must("link", "add", near, "type", "veth", "peer", "name", far)
        has_link = True
        _must("link", "set", far, "netns", namespace)
        _must("addr", "add", f"{here}/30", "dev", near)
        _must("link", "set", near, "up")
        _must("-n", namespace, "addr", "add", f"{there}/30", "dev", far)
        _must("-n", namespace, "link", "set", far, "up")
        _must("-n", namespace, "link", "set", "lo", "up")
        yield Link(namespace, near, here, there)
    finally:
        if has_link:
            _ip("link", "del", near)  # its peer goes with it
        _ip("netns", "del", namespace)


class Forwarder:
    """Connections to this side's address, carried to PostgreSQL on 127.0.0.1."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        async with await anyio.create_tcp_listener(local_host=self.host) as listener:
            task_status.started(listener.extra(SocketAttribute.local_port))
            await listener.serve(self._connect)

    async def _connect(self, client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as server:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pump, client, server, tg.cancel_scope)
                tg.start_soon(self._pump, server, client, tg.cancel_scope)

    async def _pump(self, source: SocketStream, sink: SocketStream, scope: anyio.CancelScope) -> None:
        try:
            while True:
                await sink.send(await source.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            scope.cancel()


@asynccontextmanager
async def stalled_transaction(link: Link, db: str) -> AsyncIterator[Process]:
    """``STALLED`` run in the link's namespace, waiting for the id of the match to lock; stopped
    (by its PID) on the way out."""
    process = await anyio.open_process(["ip", "netns", "exec", link.namespace, sys.executable, "-c", STALLED, db],
                                       cwd=ROOT)
    try:
        yield process
    finally:
        await _stop(process)


async def lock_row(stalled: Process, match_id: int) -> None:
    assert stalled.stdin is not None and stalled.stdout is not None
    await stalled.stdin.send(f"{match_id}\n".encode())
    said = b""
    with anyio.fail_after(30):
        while not said.endswith(b"\n"):
            said += await stalled.stdout.receive()
    assert said == b"locked\n", said


@asynccontextmanager
async def node_inside(link: Link, db: str, role: str, log: Path, **options: Any) -> AsyncIterator[Node]:
    """A cluster process run in the link's namespace, serving on its end's address; up once its
    health answers, stopped (by its PID) on the way out, as ``nodes.node`` does here."""
    port = free_port()  # any port is free in the namespace: only this process listens there
    settings = {"lease_s": LEASE_S, **options}
    with log.open("ab") as log_file:
        process = await anyio.open_process(
            ["ip", "netns", "exec", link.namespace, sys.executable, "-c", NS_RUNNER, db, role, str(port),
             json.dumps(settings), link.there],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=ROOT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://{link.there}:{port}", timeout=10, trust_env=False) as client:

            async def is_up() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"{role} exited early:\n{await anyio.Path(log).read_text()}")
                try:
                    return (await client.get("/api/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(is_up, 60)
            yield Node(role, process, client)
    finally:
        await _stop(process)


async def _stop(process: Process) -> None:
    """Terminate a process of the test's (by its PID), kill it if it will not stop, and reap it;
    shielded, as it runs on the way out of a test."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            with anyio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()
                with anyio.move_on_after(5):
                    await process.wait()
        await process.aclose()


async def test_a_worker_cut_off_by_the_network_loses_its_match_to_another_and_stops_it(
    postgres_url: str, tmp_path: Path,
) -> None:
    parts = urlsplit(postgres_url)
    assert parts.port is not None
    async with open_postgres(postgres_url) as storage, AsyncExitStack() as stack:
        link = stack.enter_context(private_link())  # left last: the processes in it stop first
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        forwarder = Forwarder(link.here, parts.port)
        port = await tg.start(forwarder.serve)
        through_link = parts._replace(netloc=parts.netloc.replace(f"127.0.0.1:{parts.port}", f"{link.here}:{port}"))
        front = await stack.enter_async_context(node(postgres_url, "front", tmp_path / "front.log"))
        # Attempts to spare: on a loaded machine a 2 s lease may also lapse on a connected worker.
        cut_off = await stack.enter_async_context(node_inside(
            link, through_link.geturl(), "worker", tmp_path / "cut.log", worker_name="cut-off",
            max_attempts=MAX_ATTEMPTS))
        assert (await cut_off.health())["worker"] == "cut-off"
        stalled = await stack.enter_async_context(stalled_transaction(link, through_link.geturl()))
        [match] = await create_matches(storage, 1)

        async def is_under_way() -> bool:
            record = await storage.get_match(match.id)
            return record.worker == "cut-off" and record.steps >= 5

        await eventually(is_under_way, 60)
        # Cut in the middle of a transaction holding the match's row, whatever the worker's own
        # transactions are doing at that moment.
        await lock_row(stalled, match.id)
        link.cut()
        cut_at = time.monotonic()
        cut_attempt = (await storage.get_match(match.id)).attempt
        try:
            other = await stack.enter_async_context(
                node(postgres_url, "worker", tmp_path / "other.log", worker_name="other", max_attempts=MAX_ATTEMPTS))

            async def has_stopped_by_itself() -> bool:  # its log: over the cut link nobody hears it
                return "abandoned" in await anyio.Path(tmp_path / "cut.log").read_text()

            await eventually(has_stopped_by_itself, LEASE_S * 3)
            stopped_s = time.monotonic() - cut_at
            [record] = await wait_until_ended(storage, [match.id], RECOVERY_S)
            ended_s = time.monotonic() - cut_at
        finally:
            link.restore()
        print(f"cut off: its match abandoned after {stopped_s:.1f} s, run to its end by another worker "
              f"{ended_s:.1f} s after the cut (lease {LEASE_S} s)")
        assert record.status is MatchStatus.FINISHED, record
        assert record.worker == "other" and record.attempt > cut_attempt, record
        assert (await other.health())["worker"] == "other"
        await check_replays(front, [record])

        # Restored: what it had in flight when the link went down (steps it played before it
        # stopped, a renewal, a claim) arrives late, by TCP's retransmissions, or fails; it lets
        # the match go and answers again. Stopped, it writes what it still held (its steps are
        # refused) and closes its connections: then the match is as the other worker left it.
        async def is_let_go() -> bool:
            try:
                return match.id not in (await cut_off.health())["matches"]
            except httpx.TransportError:  # its end of the link may still be backing off
                return False

        await eventually(is_let_go, 60)
        cut_off.process.terminate()
        with anyio.fail_after(30):
            await cut_off.process.wait()
        assert await storage.get_match(match.id) == record
        await check_replays(front, [record])
        # What it played during the cut never became its attempt's: refused by the fence once it
        # reached the database, or lost with the link.
        log = await anyio.Path(tmp_path / "cut.log").read_text()
        assert re.search(rf"could not store \d+ step\(s\) of match_id={match.id}: ", log), log[-3000:]
        refused = log.count(f"match {match.id} is no longer held by attempt {cut_attempt} of this worker: "
                            "its steps are refused")
        print(f"late batches of its steps refused by the fence: {refused}")
        # It stopped cleanly: steps refused, or lost with the link, belong to a match it had let
        # go, and are no loss to report.
        assert "Traceback" not in log, log[-3000:]
