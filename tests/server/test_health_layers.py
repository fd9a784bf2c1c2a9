"""``GET /api/health`` and ``arena doctor`` report each sandbox layer as seats really run it.

Every layer that a setting (or, for layers 6-8, the test-only isolation override) can turn off
is turned off in turn, on a real server in both seat modes: health must say so, the others
must stay as this machine offers them, and a probe bot shows that the seats really run that
way. ``arena doctor --settings`` reads the same settings file as ``arena serve``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.sandbox import Limits, bot_python
from server.sandbox.isolation import build_isolation, isolation_override
from server.sandbox.layers import LAYER_NAMES, sandbox_layers
from tests.server.conftest import api_client, create_user, quiet_settings, start_match, submit_agent, wait_finished

# Reaches for what layer 2 withholds: ERROR with layer 2 on, DONE with it off.
PROBE = """
def agent(observation, configuration):
    return len(().__class__.__base__.__subclasses__()) % 3
"""
ON_THIS_MACHINE = {layer.name: layer.active for layer in sandbox_layers()}


@contextlib.contextmanager
def isolation_without(layer: str) -> Iterator[None]:
    """Seats started in this context get every bubblewrap layer but ``layer``."""
    with isolation_override(build_isolation(python=bot_python(), **{layer: False})):
        yield


# layer -> (settings, context): how to turn it off
TURNED_OFF: dict[str, tuple[dict[str, Any], Any]] = {
    "static_analysis": ({"validate_submissions": False}, contextlib.nullcontext),
    "restricted_runtime": ({"limits": Limits(restricted=False)}, contextlib.nullcontext),
    "seccomp": ({}, lambda: isolation_without("seccomp")),
    "filesystem": ({}, lambda: isolation_without("filesystem")),
    "namespaces": ({}, lambda: isolation_override(None)),
}


# The fork server runs only with every bubblewrap layer: without one, seats start fresh.
CASES = [(layer, mode) for layer in TURNED_OFF for mode in ("fork", "fresh")
         if mode == "fresh" or layer in ("static_analysis", "restricted_runtime")]


@pytest.mark.parametrize(("layer", "seat_mode"), CASES, ids=[f"{layer}-{mode}" for layer, mode in CASES])
async def test_health_reports_a_layer_turned_off(layer: str, seat_mode: str, tmp_path: Path) -> None:
    if not all(ON_THIS_MACHINE.values()):
        pytest.skip(f"not every layer works on this machine: {ON_THIS_MACHINE}")
    overrides, context = TURNED_OFF[layer]
    settings = quiet_settings(tmp_path, seat_mode=seat_mode, **overrides)
    with context():
        async with api_client(settings) as client:
            health = (await client.get("/api/health")).json()
            user = await create_user(client, "ops")
            probe = await client.post("/api/agents", json={"name": "probe", "game": "rps", "code": PROBE},
                                      headers=user.headers)
            played = None
            if probe.status_code == 201:
                rock = await submit_agent(client, user, "rock", "rps", "def agent(o, c):\n    return 0\n")
                match = await start_match(client, user, "rps", [probe.json()["id"], rock["id"]],
                                          {"episodeSteps": 2}, seed=1)
                played = (await wait_finished(client, match["id"]))["seats"][0]["status"]
    assert health["sandbox"]["seat_mode"]["active"] == seat_mode, health["sandbox"]
    layers = {entry["name"]: entry for entry in health["sandbox"]["layers"]}
    assert list(layers) == list(LAYER_NAMES)
    off = {name for name, entry in layers.items() if not entry["active"]}
    # Without namespaces bubblewrap is not used at all: seccomp and the view go with them.
    expected_off = {"namespaces", "seccomp", "filesystem"} if layer == "namespaces" else {layer}
    assert off == expected_off, health["sandbox"]
    for name in expected_off:
        assert "turned off" in layers[name]["reason"], layers[name]
    # The seats run as reported: layer 1 refuses the probe at submission, layer 2 at its first move.
    if layer == "static_analysis":
        assert (probe.status_code, played) == (201, "ERROR")
    elif layer == "restricted_runtime":
        assert (probe.status_code, played) == (422, None)
    else:
        assert probe.status_code == 422


async def test_restricted_runtime_off_lets_the_probe_play(tmp_path: Path) -> None:
    """Layers 1 and 2 both off: the probe reaches ``object``'s subclasses and plays, as health says."""
    settings = quiet_settings(tmp_path, validate_submissions=False, limits=Limits(restricted=False))
    async with api_client(settings) as client:
        health = (await client.get("/api/health")).json()
        user = await create_user(client, "ops")
        probe = await submit_agent(client, user, "probe", "rps", PROBE)
        rock = await submit_agent(client, user, "rock", "rps", "def agent(o, c):\n    return 0\n")
        match = await start_match(client, user, "rps", [probe["id"], rock["id"]], {"episodeSteps": 2}, seed=1)
        seats = (await wait_finished(client, match["id"]))["seats"]
    layers = {entry["name"]: entry["active"] for entry in health["sandbox"]["layers"]}
    assert not layers["static_analysis"] and not layers["restricted_runtime"]
    assert seats[0]["status"] == "DONE", seats


def test_doctor_reports_the_settings_layers(tmp_path: Path) -> None:
    settings = tmp_path / "arena.toml"
    settings.write_text("[limits]\nrestricted = false\n")
    proc = subprocess.run([sys.executable, "-m", "client", "doctor", "--settings", str(settings)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "restricted_runtime" in line)
    assert line.split()[1] == "off" and "[limits] restricted = false" in line, proc.stdout
    required = subprocess.run([sys.executable, "-m", "client", "doctor", "--settings", str(settings),
                               "--require-layers", "restricted_runtime"], capture_output=True, text=True, timeout=120)
    assert required.returncode == 1 and "restricted_runtime" in required.stderr
    default = subprocess.run([sys.executable, "-m", "client", "doctor"], capture_output=True, text=True, timeout=120)
    line = next(line for line in default.stdout.splitlines() if "restricted_runtime" in line)
    assert line.split()[1] == "active", default.stdout
