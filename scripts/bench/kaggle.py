"""ConnectX, random against random: whole sandboxed matches/s against kaggle-environments.

The arena plays whole matches (seat start-up, the game, teardown) with every seat in the full
sandbox, ``N`` in flight. kaggle-environments runs ``env.run(["random", "random"])`` in a loop
on one environment made once, as its own ``evaluate()`` does (``run`` resets it first; making
it anew per episode costs half as much again), its agents inside its own process with no
isolation at all. It lives
in a virtual environment of its own, made on first use and cached at ``KAGGLE_VENV``
(reused while it imports); its loop runs in a child process that times itself, so the
interpreter's start and the import are not counted. Arena and Kaggle rounds alternate.

Both are CPU-bound on this machine, so the CPU each match costs sets the ratio: per seat mode,
the server's own CPU per match and that of its sandbox processes (bubblewrap, the fork server
and the seats: those the server reaped, plus every live descendant with what it reaped),
beside the CPU per episode of Kaggle's loop.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import anyio

from server.bots import example_bots

from ._common import Row, Section, live_descendants_cpu_s, ratios, unavailable
from .moves import matches_per_second
from .startup import SEAT_MODES, SeatOpener

__all__ = ["KAGGLE_VENV", "arena_connectx", "ensure_kaggle_venv", "kaggle_episodes_per_second", "run"]

KAGGLE_VENV = Path(os.environ.get("ARENA_BENCH_KAGGLE_VENV", "/tmp/arena-bench-kaggle-venv"))
RANDOM_BOT = dict(example_bots()["connectx"])["connectx_random"]

# Runs inside the kaggle venv: one warm-up episode, then episodes until `seconds` have passed.
_KAGGLE_LOOP = """
import json, sys, time
from importlib.metadata import version
from kaggle_environments import make
seconds = float(sys.argv[1])
env = make("connectx")  # once, as kaggle_environments.evaluate() does: run() resets it
env.run(["random", "random"])
episodes, steps, started, cpu = 0, 0, time.perf_counter(), time.process_time()
while time.perf_counter() - started < seconds:
    steps += len(env.run(["random", "random"]))
    episodes += 1
elapsed = time.perf_counter() - started
print(json.dumps({"episodes_per_s": episodes / elapsed, "episodes": episodes, "steps": steps,
                  "cpu_ms_per_episode": (time.process_time() - cpu) / episodes * 1e3,
                  "version": version("kaggle-environments")}))
"""


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


async def _imports(venv: Path) -> bool:
    if not _venv_python(venv).exists():
        return False
    result = await anyio.run_process([str(_venv_python(venv)), "-c", "import kaggle_environments"], check=False)
    return result.returncode == 0


async def ensure_kaggle_venv(venv: Path = KAGGLE_VENV) -> tuple[Path, str]:
    """A virtual environment with kaggle-environments: the cached one, else a new one; and what was done.

    Raises:
        RuntimeError: the environment could not be made or the package not installed (the message says why).
    """
    if await _imports(venv):
        return _venv_python(venv), f"cached venv {venv}"
    shutil.rmtree(venv, ignore_errors=True)
    # The base interpreter, not the project's venv: kaggle-environments must not see the project's packages.
    base = getattr(sys, "_base_executable", sys.executable)
    steps = {
        f"python -m venv {venv}": [base, "-m", "venv", str(venv)],
        "pip install kaggle-environments": [str(_venv_python(venv)), "-m", "pip", "install", "--quiet",
                                            "--disable-pip-version-check", "kaggle-environments"],
    }
    for what, argv in steps.items():
        result = await anyio.run_process(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if result.returncode != 0:
            lines = [line for line in result.stderr.decode(errors="replace").splitlines()
                     if line.strip() and not line.startswith("WARNING:")]
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"`{what}` failed ({result.returncode}): "
                               f"{lines[-1] if lines else 'no message'}")
    if not await _imports(venv):
        raise RuntimeError("kaggle-environments installed but does not import")
    return _venv_python(venv), f"new venv {venv}"


async def kaggle_episodes_per_second(python: Path, seconds: float) -> dict[str, float | str]:
    """kaggle-environments' ConnectX random-vs-random episodes/s, timed inside its own process.

    Raises:
        RuntimeError: the loop failed (its last line of error output is in the message).
    """
    result = await anyio.run_process([str(python), "-c", _KAGGLE_LOOP, str(seconds)], check=False,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"kaggle loop failed: {tail[-1] if tail else result.returncode}")
    out: dict[str, float | str] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return out


def _cpu_s() -> tuple[float, float]:
    """CPU seconds so far: this process's own, and its descendants' (reaped or alive, e.g. a fork server)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime + live_descendants_cpu_s()


async def arena_connectx(open_seat: SeatOpener, in_flight: int, total: int) -> float:
    """Whole ConnectX matches/s between two random bots."""
    return await matches_per_second(open_seat, "connectx", [RANDOM_BOT] * 2, in_flight, total)


async def run(quick: bool) -> Section:
    """Arena (every full-sandbox mode, 4 and 8 in flight) and Kaggle, alternating round by round."""
    rounds = 2 if quick else 5
    total = 24 if quick else 80
    kaggle_s = 1.5 if quick else 4.0
    in_flight = (4, 8)
    section = Section("ConnectX matches vs kaggle-environments")
    python: Path | None = None
    kaggle_error = ""
    try:
        python, how = await ensure_kaggle_venv()
        section.notes.append(f"kaggle-environments: {how}")
    except (RuntimeError, OSError) as exc:
        section.notes.append(f"kaggle-environments unavailable: {exc}")
        kaggle_error = str(exc)
    modes = [name for name, mode in SEAT_MODES.items() if mode.is_full_sandbox]
    arena: dict[tuple[str, int], list[float]] = {(m, n): [] for m in modes for n in in_flight}
    server_cpu: dict[str, list[float]] = {m: [] for m in modes}
    sandbox_cpu: dict[str, list[float]] = {m: [] for m in modes}
    kaggle: list[float] = []
    kaggle_cpu: list[float] = []
    for round_no in range(rounds):
        for name in modes:
            async with SEAT_MODES[name].session() as open_seat:
                if round_no == 0:
                    await arena_connectx(open_seat, 2, 4)  # warm-up
                before = _cpu_s()
                for n in in_flight:
                    arena[(name, n)].append(await arena_connectx(open_seat, n, total))
                after = _cpu_s()
            played = total * len(in_flight)
            server_cpu[name].append((after[0] - before[0]) / played * 1e3)
            sandbox_cpu[name].append((after[1] - before[1]) / played * 1e3)
        if python is not None:
            try:
                result = await kaggle_episodes_per_second(python, kaggle_s)
            except RuntimeError as exc:
                kaggle_error, python = str(exc), None
            else:
                kaggle.append(float(result["episodes_per_s"]))
                kaggle_cpu.append(float(result["cpu_ms_per_episode"]))
                section.extra["kaggle_environments_version"] = result.get("version")
    for (name, n), values in arena.items():
        section.add(Row(f"arena, {name}, {n} in flight", "matches/s", values))
    for name in modes:
        section.add(Row(f"CPU per match, {name}: the server's own", "ms", server_cpu[name]))
        section.add(Row(f"CPU per match, {name}: sandbox processes (bwrap, fork server, seats)", "ms",
                        sandbox_cpu[name]))
    kaggle_name = "kaggle-environments, built-in random agents (in-process, no isolation)"
    if kaggle:
        section.add(Row(kaggle_name, "episodes/s", kaggle))
        section.add(Row("CPU per episode, kaggle-environments", "ms", kaggle_cpu))
        for (name, n), values in arena.items():
            section.add(Row(f"arena ({name}, {n} in flight) / kaggle", "x", ratios(values, kaggle), ">= 10x",
                            is_ratio=True))
    else:
        section.add(unavailable(kaggle_name, "episodes/s", kaggle_error))
    section.notes.append(f"{total} arena matches per measurement, Kaggle loop {kaggle_s:g} s per round, "
                         f"{rounds} rounds alternating")
    return section
