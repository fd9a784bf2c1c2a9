"""The attack suite: every bot in ``bots/`` attacks a real arena server, and every attack fails.

Each attack bot runs through the full production path, twice or three times:

1. ``test_production_path``: the server as in production. Submitting the bot (POST
   /api/agents) is either refused with 422 and the validator's findings (layer 1 stopped it),
   or accepted; an accepted bot then plays a real match.
2. ``test_validator_bypassed``: the same bot on a server whose static validator is off (the
   test-only setting ``validate_submissions = false``), so the layers below it must hold alone.
   Layer 2 is then the only layer above process isolation, and it must hold by itself, not
   only with the kernel's layers behind it: the attacker's log and reason may show no error
   that only a system call gives (``below_layer_2``). An escape from layer 2 that seccomp or
   the filesystem view then stopped is reported, not hidden.
3. ``test_validator_and_restricted_runtime_bypassed``: for the bots that attack the machine,
   the server, other seats or the results (``# target: host``), also with layer 2 off
   (``Limits(restricted=False)``): their payloads (``os``, ``socket``, ``ctypes``...) then
   really run, against layers 3-8 only.

Every server runs twice, once forking its seats from the fork server (``seat_mode = "fork"``,
the default wherever it runs) and once starting a fresh process per seat, the reference: the
isolation must be as strong either way.

Every match is played against a good example bot while a good match runs beside it, and is
checked by ``assert_contained`` (``conftest.py``): no marker, secret or canary in any move, state,
reason or log; the attacker's status as its header allows; the good seats unaffected; no file
created, no connection to the test's listener, no process left in the box; the server healthy
and still playing.

Dangerous bots (fork bombs, memory bombs, ``kill(-1)``, signals to the parent) need no special
path: every server here, the production one included, runs inside an outer box of its own (a
PID namespace in cgroups that cap processes and memory, ``tests/sandbox_box.py``), so all bots
go through the server.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import (
    CATEGORIES,
    SECRET,
    STATUSES,
    Arena,
    AttackBot,
    Listener,
    arena_server,
    assert_contained,
    below_layer_2,
    load_bots,
    play_attack,
    record_rejection,
    submit,
)

BOTS = load_bots()
HOST_BOTS = [bot for bot in BOTS if bot.target == "host"]


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


# Every server twice: seats forked by the fork server (the default where it runs, as here) and
# fresh processes, the reference. A module-scoped parameter: pytest runs each server's tests together.
@pytest.fixture(scope="module", params=["fork", "fresh"], ids=["fork-server", "fresh-process"])
def seat_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, seat_mode: str) -> Iterator[Arena]:
    name = f"production-{seat_mode}"
    with arena_server(name, tmp_path_factory.mktemp(name), validate=True, seat_mode=seat_mode) as arena:
        yield arena


@pytest.fixture(scope="module")
def validator_off(tmp_path_factory: pytest.TempPathFactory, seat_mode: str) -> Iterator[Arena]:
    name = f"validator-off-{seat_mode}"
    with arena_server(name, tmp_path_factory.mktemp(name), validate=False, seat_mode=seat_mode) as arena:
        yield arena


@pytest.fixture(scope="module")
def runtime_off(tmp_path_factory: pytest.TempPathFactory, seat_mode: str) -> Iterator[Arena]:
    """Layers 3-8 alone."""
    name = f"runtime-off-{seat_mode}"
    with arena_server(name, tmp_path_factory.mktemp(name), validate=False, restricted=False,
                      seat_mode=seat_mode) as arena:
        yield arena


def client_for(arena: Arena) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=arena.url, timeout=30, trust_env=False)


# -- the bots themselves --------------------------------------------------------------------------


def test_the_suite_covers_every_category() -> None:
    assert len(BOTS) >= 70
    per_category = Counter(bot.category for bot in BOTS)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 2, per_category


@pytest.mark.parametrize("bot", BOTS, ids=[bot.name for bot in BOTS])
def test_bot_header(bot: AttackBot) -> None:
    assert bot.category in CATEGORIES and bot.attack
    assert bot.marker == f"PWNED-{bot.name}"
    assert bot.expect and bot.expect <= STATUSES
    assert bot.target in ("host", "runtime") and bot.game in ("rps", "tictactoe")
    # The marker never appears whole outside the header: a traceback quoting a line cannot fake it.
    body = [line for line in bot.path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert not [line for line in body if bot.marker in line or SECRET in line]


# -- 1. the production path -----------------------------------------------------------------------


@pytest.mark.parametrize("bot", BOTS, ids=[bot.name for bot in BOTS])
async def test_production_path(bot: AttackBot, production: Arena, listener: Listener) -> None:
    async with client_for(production) as client:
        response = await submit(client, production, bot, listener)
        if response.status_code == 422:  # layer 1 refused it, saying where and why
            findings = response.json()["error"]["findings"]
            assert findings and all({"line", "col", "rule", "message"} <= set(f) for f in findings), findings
            record_rejection(bot, findings)
            return
        assert response.status_code == 201, response.text
        outcome = await play_attack(client, production, bot, response.json()["id"])
        await assert_contained(client, outcome, listener)


# -- 2. defense in depth: the validator bypassed --------------------------------------------------


@pytest.mark.parametrize("bot", BOTS, ids=[bot.name for bot in BOTS])
async def test_validator_bypassed(bot: AttackBot, validator_off: Arena, listener: Listener) -> None:
    async with client_for(validator_off) as client:
        response = await submit(client, validator_off, bot, listener)
        assert response.status_code == 201, response.text
        outcome = await play_attack(client, validator_off, bot, response.json()["id"])
        await assert_contained(client, outcome, listener)
        assert below_layer_2(outcome) == [], f"{bot.name} got past layer 2 to a system call"


# -- 3. the validator and the restricted runtime bypassed: layers 3-8 alone ------------------------


@pytest.mark.parametrize("bot", HOST_BOTS, ids=[bot.name for bot in HOST_BOTS])
async def test_validator_and_restricted_runtime_bypassed(
    bot: AttackBot, runtime_off: Arena, listener: Listener
) -> None:
    async with client_for(runtime_off) as client:
        response = await submit(client, runtime_off, bot, listener)
        assert response.status_code == 201, response.text
        outcome = await play_attack(client, runtime_off, bot, response.json()["id"])
        await assert_contained(client, outcome, listener)


def test_servers_run_in_an_outer_box(production: Arena) -> None:
    """The server (the box's first process, under ``unshare``) has a PID namespace of its own."""
    server = next(pid for pid in production.processes() if pid != production.proc.pid)
    assert os.readlink(f"/proc/{server}/ns/pid") != os.readlink("/proc/self/ns/pid")
    if production.box.pids_group is not None:
        assert server in (production.box.processes() or set())


# The check of test 2 is not blind: with layer 2 off, these attacks do reach system calls, which the
# layers beneath refuse, and their logs show it.
REACHING = ["read_etc_passwd", "net_tcp_localhost", "write_tmp", "spawn_os_functions"]


@pytest.mark.parametrize("name", REACHING)
async def test_without_layer_2_the_check_sees_system_calls(name: str, runtime_off: Arena, listener: Listener) -> None:
    bot = next(bot for bot in HOST_BOTS if bot.name == name)
    async with client_for(runtime_off) as client:
        response = await submit(client, runtime_off, bot, listener)
        assert response.status_code == 201, response.text
        outcome = await play_attack(client, runtime_off, bot, response.json()["id"])
        await assert_contained(client, outcome, listener)
        assert below_layer_2(outcome) != [], outcome.logs[0]
