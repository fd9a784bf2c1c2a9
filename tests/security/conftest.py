"""The attack suite's harness: the attack bots, the arena servers they attack, and what must hold.

Theory of operation. Every attack bot is a file in ``bots/`` whose leading comments say what it
is (see :class:`AttackBot`). It prints (or returns) its success marker ``PWNED-<file stem>``
only if its attack worked, and its source never holds the marker in one piece, so a traceback
that quotes a source line cannot fake a success. Files it tries to create are named
``arena-pwned-...``; ports it tries are written into its source from placeholders
(``ARENA_TEST_LISTENER_PORT``, ``ARENA_TEST_SERVER_PORT``).

The servers are real arena servers (``tests/server/conftest.py``'s ``running_server``, real
uvicorn), each started in its own outer box (``tests/sandbox_box.py``: a new PID namespace in
cgroups that cap its processes and memory) so that even the dangerous attacks (fork bombs,
memory bombs, ``kill(-1)``) go through the whole production path: should every sandbox layer
fail, they hurt only the box. Each server's environment holds a secret (``ARENA_TEST_SECRET``)
and the good bots' code holds a canary; neither may ever show up in what an attacker outputs.

After each attack match :func:`assert_contained` checks the outcome: the marker, the secret and
the canary are in no move, state, reason or log of the match; the attacking seat ended as its
header allows (and lost unless it played on harmlessly); the good opponent and a concurrent
good match finished normally; no file was created; nothing reached the test's listener; no
process survived in the box; no agent was registered by an attacker through the API; the
server is healthy, reports its layers, and still plays a new match.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from server.bots import example_bots
from server.sandbox.layers import LAYER_NAMES
from tests.sandbox_box import OuterBox, outer_box
from tests.security.processes import descendants, describe, fork_server_processes
from tests.server.conftest import User, start_match, wait_finished

JSON = Any
PROJECT = Path(__file__).resolve().parents[2]
BOTS_DIR = Path(__file__).with_name("bots")
SECRET_NAME = "ARENA_TEST_SECRET"
SECRET = f"arena-secret-{secrets.token_hex(12)}"  # in each server's environment
CANARY = f"ARENA-CANARY-{secrets.token_hex(12)}"  # in the good bots' code, as another submission's secret
EXAMPLES = {name: code for bots in example_bots().values() for name, code in bots}
STATUSES = frozenset({"DONE", "ERROR", "INVALID", "TIMEOUT"})
CATEGORIES = (
    "static-bypass", "builtins-recovery", "import-bypass", "introspection", "read-files", "other-bots-code",
    "write-files", "network", "spawn-processes", "fork-bomb", "memory-bomb", "cpu-spin", "output-flood",
    "env-secrets", "signals", "other-seat", "tamper-results", "deadline-abuse", "protocol-abuse",
)  # fmt: skip
OPPONENT = {"rps": "rps_random", "tictactoe": "tictactoe_random"}
# Small matches: every attack match is over in well under a second unless it times out.
BASE_CONFIG: dict[str, JSON] = {"actTimeout": 0.5, "remainingOverageTime": 0.3, "agentTimeout": 3.0, "runTimeout": 30.0}
GAME_CONFIG: dict[str, dict[str, JSON]] = {"rps": {"episodeSteps": 5}, "tictactoe": {}}
GOOD_MATCH = ("rps", ["rps_counter", "rps_random"], {"episodeSteps": 30, "actTimeout": 1.0})
# Where a created file would land: the bots' candidate paths all name files ``arena-pwned-*``.
WATCHED_DIRS = (
    Path("/"), Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run"), Path("/dev"), Path.home(),
    PROJECT, PROJECT / "server", PROJECT / "server" / "sandbox", PROJECT / "server" / "sandbox" / "seat",
    PROJECT / "server" / "bots",
)  # fmt: skip
# Files an attack appends ``arena-pwned`` to, if it can.
APPEND_TARGETS = (PROJECT / "server" / "sandbox" / "seat" / "bot_runtime.py",
                  PROJECT / "server" / "bots" / "rps_random.py")
_HEADER = re.compile(r"^#\s*([a-z]+):\s*(.*?)\s*$")


# -- attack bots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackBot:
    """One attack bot file and its header.

    ``# category:`` one of :data:`CATEGORIES`; ``# attack:`` one line; ``# marker:``
    ``PWNED-<stem>``; ``# expect:`` the statuses its seat may end with, ``ERROR|DONE`` (DONE
    only for attacks that fail harmlessly and play on); ``# target:`` ``host`` (the attack
    aims at the machine, the server or the other seat) or ``runtime`` (it aims at the
    restricted runtime itself: its marker means "reached a real os/builtins/frame", so it is
    not run with layer 2 off); optional ``# game:`` (default rps) and ``# config:`` (JSON).
    """

    path: Path
    category: str
    attack: str
    marker: str
    expect: frozenset[str]
    target: str
    game: str
    config: dict[str, JSON]

    @property
    def name(self) -> str:
        return self.path.stem

    def source(self, *, listener_port: int, server_port: int) -> str:
        """The bot's code with the test run's ports written in."""
        text = self.path.read_text(encoding="utf-8")
        return text.replace("ARENA_TEST_LISTENER_PORT", str(listener_port)).replace(
            "ARENA_TEST_SERVER_PORT", str(server_port))

    def match_config(self) -> dict[str, JSON]:
        return {**BASE_CONFIG, **GAME_CONFIG[self.game], **self.config}


def parse_bot(path: Path) -> AttackBot:
    """Read a bot's header (its leading comment lines)."""
    header: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        found = _HEADER.match(line)
        if found:
            header[found.group(1)] = found.group(2)
    return AttackBot(
        path=path, category=header.get("category", ""), attack=header.get("attack", ""),
        marker=header.get("marker", ""), expect=frozenset(header.get("expect", "").split("|")),
        target=header.get("target", "host"), game=header.get("game", "rps"),
        config=json.loads(header.get("config", "{}")),
    )


def load_bots() -> list[AttackBot]:
    return [parse_bot(path) for path in sorted(BOTS_DIR.glob("*.py"))]


# -- the test's own listener ----------------------------------------------------------------------


class Listener:
    """A TCP and a UDP socket on one 127.0.0.1 port that no bot is told about but through its source."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp.setblocking(False)
        self.udp.setblocking(False)

    def reached(self) -> list[str]:
        """What reached the listener since the last call: accepted connections and datagrams."""
        seen = []
        while True:
            try:
                conn, peer = self.tcp.accept()
            except BlockingIOError:
                break
            conn.close()
            seen.append(f"tcp connection from {peer}")
        while True:
            try:
                data, peer = self.udp.recvfrom(65536)
            except BlockingIOError:
                break
            seen.append(f"udp datagram from {peer}: {data[:80]!r}")
        return seen

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


# -- a boxed arena server -------------------------------------------------------------------------

# Runs in the box, in the server's data directory: the real app under real uvicorn until stdin closes.
# The box's first process is PID 1 of its namespace, so every orphan of the box is reparented to
# it (a seat's inner bubblewrap, once the outer one is killed), and only an init reaps orphans:
# the first process is that init, and the server its child. With the server as PID 1, their
# zombies would pile up in the box's pids group until the server could start no thread.
SERVER_SCRIPT = r"""
import os
server = os.fork()
while server:
    pid, status = os.wait()
    if pid == server:
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)

import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # the project, for tests.server.conftest
import anyio
from server.sandbox import Limits
from tests.server.conftest import quiet_settings, running_server

async def main(options):
    settings = quiet_settings(Path.cwd(), limits=Limits(**options["limits"]), **options["settings"])
    async with running_server(settings) as url:
        print(json.dumps({"url": url}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the test closes our stdin

anyio.run(main, json.loads(sys.argv[2]))
"""
_START_TIMEOUT_S = 60.0
_MAX_PIDS = 512  # processes and threads of the whole box: the server, its threads, its seats
_MAX_MEMORY = 6 << 30


@dataclass
class Arena:
    """A running boxed server, its users and the good agents (with the canary in their code)."""

    name: str
    url: str
    box: OuterBox
    proc: subprocess.Popen[bytes]
    directory: Path
    validates: bool
    seat_mode: str  # how the server starts seats: "fork" or "fresh" (what /api/health must report)
    restricted: bool = True  # layer 2 on (what /api/health must report)
    pool_size: int = 0  # the fork server's pool
    baseline: set[int] = field(default_factory=set)
    mallory: User | None = None  # the attacker
    alice: User | None = None  # the good bots' owner
    good: dict[str, int] = field(default_factory=dict)  # example bot name -> alice's agent id

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def processes(self) -> set[int]:
        """Every process in the box (host pids)."""
        found = self.box.processes()
        if found is None:  # no cgroup here: the box's leader and its descendants
            found = {self.proc.pid, *descendants(self.proc.pid)}
        return found

    def survivors(self) -> list[str]:
        """Processes in the box beyond the server itself (and its fork server's pool), described."""
        now = self.processes()
        forked = fork_server_processes(now)
        left = [describe(pid) for pid in sorted(now - self.baseline - forked.own - forked.seats)]
        if len(forked.seats) > self.pool_size:  # a seat outlived its match: which one is not told apart
            left += [f"{describe(pid)} (one of {len(forked.seats)} forked seats, pool of {self.pool_size})"
                     for pid in sorted(forked.seats)]
        return left

    def server_log(self) -> str:
        try:
            return (self.directory / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextmanager
def arena_server(
    name: str, directory: Path, *, validate: bool, restricted: bool = True, seat_mode: str = "fork"
) -> Iterator[Arena]:
    """A real arena server in an outer box, with users and good agents; stopped at the end.

    ``seat_mode``: "fork" (seats forked by the fork server, the default where it runs) or "fresh".
    """
    directory.mkdir(parents=True, exist_ok=True)
    options = {
        "settings": {"validate_submissions": validate, "submissions_per_user_hour": 100_000,
                     "matches_per_user_hour": 100_000, "seat_mode": seat_mode},
        "limits": {"restricted": restricted},
    }
    env = {**os.environ, SECRET_NAME: SECRET}
    with outer_box(max_pids=_MAX_PIDS, memory_bytes=_MAX_MEMORY) as box, open(directory / "server.log", "wb") as log:
        argv = box.wrap([sys.executable, "-c", SERVER_SCRIPT, str(PROJECT), json.dumps(options)])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=directory,
                                env=env)
        try:
            url = _read_url(proc, directory)
            arena = Arena(name, url, box, proc, directory, validate, seat_mode, restricted)
            health = httpx.get(f"{url}/api/health", timeout=30, trust_env=False).json()
            arena.pool_size = health["sandbox"]["seat_mode"]["pool_size"]
            arena.baseline = arena.processes()
            _populate(arena)
            yield arena
        finally:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()  # unshare --kill-child takes the box down with it
                proc.wait()
            proc.stdout.close()


def _read_url(proc: subprocess.Popen[bytes], directory: Path) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    if not line:
        log = (directory / "server.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"the boxed server did not start (exit {proc.poll()}):\n{log}")
    url: str = json.loads(line)["url"]
    return url


def _populate(arena: Arena) -> None:
    """Users ``mallory`` (attacker) and ``alice``, and alice's good agents with the canary in their code."""
    with httpx.Client(base_url=arena.url, timeout=30, trust_env=False) as client:
        users = []
        for name in ("mallory", "alice"):
            response = client.post("/api/users", json={"name": name})
            assert response.status_code == 201, response.text
            body = response.json()
            users.append(User(body["user_id"], name, body["token"]))
        arena.mallory, arena.alice = users
        for bot in sorted({*OPPONENT.values(), *GOOD_MATCH[1]}):
            code = f"{EXAMPLES[bot]}\n# {CANARY}: this submission's private code\n"
            game = bot.split("_", 1)[0]
            response = client.post("/api/agents", json={"name": bot, "game": game, "code": code},
                                   headers=arena.alice.headers)
            assert response.status_code == 201, response.text
            arena.good[bot] = response.json()["id"]


# -- one attack, and what must hold after it ------------------------------------------------------


@dataclass
class Outcome:
    """Everything the arena recorded about one attack match (and the good match beside it)."""

    bot: AttackBot
    arena: Arena
    agent_id: int
    match: JSON
    replay: JSON
    logs: list[str]
    good_match: JSON
    good_logs: list[str]


async def submit(client: httpx.AsyncClient, arena: Arena, bot: AttackBot, listener: Listener) -> httpx.Response:
    """POST /api/agents the bot as mallory."""
    assert arena.mallory is not None
    code = bot.source(listener_port=listener.port, server_port=arena.port)
    return await client.post(
        "/api/agents", json={"name": bot.name, "game": bot.game, "code": code}, headers=arena.mallory.headers)


async def play_attack(client: httpx.AsyncClient, arena: Arena, bot: AttackBot, agent_id: int) -> Outcome:
    """Start a good match, then the attack match against a good example bot; wait for both."""
    assert arena.mallory is not None and arena.alice is not None
    game, pair, config = GOOD_MATCH
    good = await start_match(client, arena.alice, game, [arena.good[b] for b in pair], config, seed=1)
    opponent = arena.good[OPPONENT[bot.game]]
    match = await start_match(client, arena.mallory, bot.game, [agent_id, opponent], bot.match_config(), seed=1)
    match = await wait_finished(client, match["id"], timeout_s=60)
    good = await wait_finished(client, good["id"], timeout_s=60)
    replay = (await client.get(f"/api/matches/{match['id']}/replay")).json()
    logs = [await seat_log(client, arena.mallory, agent_id, match["id"]),
            await seat_log(client, arena.alice, opponent, match["id"])]
    good_logs = [await seat_log(client, arena.alice, arena.good[b], good["id"]) for b in pair]
    return Outcome(bot, arena, agent_id, match, replay, logs, good, good_logs)


async def seat_log(client: httpx.AsyncClient, owner: User, agent_id: int, match_id: int) -> str:
    response = await client.get(f"/api/agents/{agent_id}/logs", params={"match": match_id}, headers=owner.headers)
    assert response.status_code == 200, response.text
    text: str = response.json()["log"]
    return text


def leaks(outcome: Outcome) -> list[str]:
    """Which of the marker, the server's secret and the canary show up in what the attack produced."""
    produced = {
        "attack match": json.dumps(outcome.match), "attack replay": json.dumps(outcome.replay),
        "attacker log": outcome.logs[0], "opponent log": outcome.logs[1],
        "good match": json.dumps(outcome.good_match), "good logs": "\n".join(outcome.good_logs),
    }
    found = []
    for what, text in produced.items():
        for secret, label in ((outcome.bot.marker, "marker"), (SECRET, "server secret"), (CANARY, "canary")):
            if secret in text:
                at = text.index(secret)
                found.append(f"{label} in {what}: ...{text[max(0, at - 200):at + 200]!r}")
    return found


# What only a system call answers: a bot that layer 2 holds cannot make one that fails this way
# (it reaches no os, io or socket), so with layer 2 on, such an error in the attacker's log or
# reason means it got past layer 2, whatever the layers beneath then stopped. (MemoryError,
# RecursionError and the deadlines are the limits of what layer 2 allows: not listed.)
_SYSTEM_ERRORS = re.compile(
    r"\b(?:OSError|PermissionError|FileNotFoundError|FileExistsError|IsADirectoryError|NotADirectoryError"
    r"|ConnectionError|ConnectionRefusedError|ConnectionResetError|ConnectionAbortedError|BrokenPipeError"
    r"|BlockingIOError|ChildProcessError|ProcessLookupError|InterruptedError|TimeoutError|UnsupportedOperation)\b"
    r"|\[Errno \d+\]|errno=\d+"
)


def below_layer_2(outcome: Outcome) -> list[str]:
    """The lines of the attacker's log and reason that show a system call made (see :data:`_SYSTEM_ERRORS`)."""
    attacker = outcome.match["seats"][0]
    lines = [*outcome.logs[0].splitlines(), f"reason: {attacker['reason']}"]
    return [line[:300] for line in lines if _SYSTEM_ERRORS.search(line)]


def created_files(*extra_dirs: Path) -> list[str]:
    found = []
    for directory in (*WATCHED_DIRS, *extra_dirs):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        found += [str(directory / n) for n in names if "arena-pwned" in n.lower()]
    for path in APPEND_TARGETS:
        if b"arena-pwned" in path.read_bytes():
            found.append(f"{path} (appended to)")
    return found


async def wait_no_survivors(arena: Arena, timeout_s: float = 5.0) -> list[str]:
    """Processes left in the box beyond the server, after letting exiting ones go."""
    deadline = time.monotonic() + timeout_s
    left = arena.survivors()
    while left and time.monotonic() < deadline:  # /proc has no event to wait on: poll it
        await anyio.sleep(0.05)
        left = arena.survivors()
    return left


def expected_layers(arena: Arena) -> dict[str, bool]:
    active = dict.fromkeys(LAYER_NAMES, True)
    active["static_analysis"] = arena.validates
    active["restricted_runtime"] = arena.restricted
    return active


async def assert_server_healthy(client: httpx.AsyncClient, arena: Arena) -> None:
    """Health is ok with the expected layers, no attacker-made agent exists, and a new match plays."""
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok", health
    layers = {layer["name"]: layer["active"] for layer in health["sandbox"]["layers"]}
    assert layers == expected_layers(arena), health["sandbox"]
    assert health["sandbox"]["seat_mode"]["active"] == arena.seat_mode, health["sandbox"]
    cursor: str | None = ""
    while cursor is not None:
        page = (await client.get("/api/agents", params={"limit": 200, **({"cursor": cursor} if cursor else {})}))
        body = page.json()
        names = [a["name"] for a in body["items"]]
        assert not [n for n in names if "pwned" in n.lower()], names
        cursor = body["next"]
    assert arena.alice is not None
    game, pair, _ = GOOD_MATCH
    again = await start_match(client, arena.alice, game, [arena.good[b] for b in pair], {"episodeSteps": 3}, seed=2)
    again = await wait_finished(client, again["id"], timeout_s=30)
    assert again["status"] == "finished" and [s["status"] for s in again["seats"]] == ["DONE", "DONE"], again


async def assert_contained(client: httpx.AsyncClient, outcome: Outcome, listener: Listener) -> None:
    """Everything the suite demands after one attack match (see the module docstring)."""
    bot, match, arena = outcome.bot, outcome.match, outcome.arena
    assert leaks(outcome) == []
    assert match["status"] == "finished", match
    attacker, opponent = match["seats"]
    assert attacker["status"] in bot.expect, (
        f"{bot.name} ended {attacker['status']} ({attacker['reason']}); its header expects {sorted(bot.expect)}")
    assert opponent["status"] == "DONE" and opponent["reason"] is None, match
    if attacker["status"] != "DONE":  # a faulty seat loses; the referee alone decides
        assert (attacker["reward"], opponent["reward"]) == (-1.0, 1.0), match
    good = outcome.good_match
    assert good["status"] == "finished", good
    assert [(s["status"], s["reason"]) for s in good["seats"]] == [("DONE", None), ("DONE", None)], good
    assert created_files(arena.directory) == []
    assert listener.reached() == []
    assert await wait_no_survivors(arena) == []
    await assert_server_healthy(client, arena)
    record(outcome)


def record(outcome: Outcome) -> None:
    """Append the outcome to ``$ARENA_SECURITY_REPORT`` (JSON lines) when set: for the closing note."""
    path = os.environ.get("ARENA_SECURITY_REPORT")
    if not path:
        return
    attacker = outcome.match["seats"][0]
    line = {"bot": outcome.bot.name, "category": outcome.bot.category, "server": outcome.arena.name,
            "status": attacker["status"], "reason": attacker["reason"], "log": outcome.logs[0][-600:],
            "below_layer_2": below_layer_2(outcome)}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def record_rejection(bot: AttackBot, findings: list[Mapping[str, JSON]]) -> None:
    path = os.environ.get("ARENA_SECURITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"bot": bot.name, "category": bot.category, "server": "production",
                                   "status": "422", "rules": sorted({f["rule"] for f in findings})}) + "\n")
