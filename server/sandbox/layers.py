"""Which sandbox layers are active on this machine, with the reason for each."""

from __future__ import annotations

import ast
import functools
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import LayerUnavailable

from .isolation import isolation_status
from .limits import Limits
from .process import bot_python
from .view import RUNTIME_PATH, SEAT_DIR

__all__ = ["LAYER_NAMES", "Layer", "require_layers", "sandbox_layers"]

LAYER_NAMES = (
    "static_analysis",
    "restricted_runtime",
    "process_isolation",
    "resource_limits",
    "timeouts",
    "namespaces",
    "seccomp",
    "filesystem",
)


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    active: bool
    reason: str


def sandbox_layers(limits: Limits | None = None, *, validates: bool = True) -> list[Layer]:
    """Report every layer as the seats started with ``limits`` run it, probing what the machine
    offers: the operator's settings (``validates``: submissions pass the static validator; the
    limits' ``restricted``) and, in tests, an isolation override turn layers off."""
    limits = limits or Limits()
    python = bot_python()
    runtime_ok = os.access(python, os.X_OK) and RUNTIME_PATH.is_file()
    limits_ok = hasattr(resource, "RLIMIT_AS") and hasattr(resource, "RLIMIT_NPROC")
    isolation = isolation_status(python, RUNTIME_PATH)  # probed once per process
    missing = [str(path) for path in layer_2_files() if not path.is_file()]
    if missing:
        restricted = Layer("restricted_runtime", False, f"{', '.join(missing)} missing: no bot can start")
    elif not limits.restricted:
        restricted = Layer("restricted_runtime", False, "turned off by the setting [limits] restricted = false: bots "
                                                        "run with the interpreter's own builtins and modules")
    else:
        restricted = Layer("restricted_runtime", True, "builtins whitelist, guarded attributes, stores and imports, "
                                                       "module proxies, checked generated code")
    return [
        Layer("static_analysis", validates, "every submission and local bot is checked before it runs" if validates
              else "turned off by the test-only setting validate_submissions = false"),
        restricted,
        Layer("process_isolation", runtime_ok,
              f"one process per seat under {python}, own session, clean environment" if runtime_ok
              else f"bot interpreter {python} or runtime missing"),
        Layer("resource_limits", limits_ok,
              "rlimits on CPU, address space, processes, file size, open files; bounded output" if limits_ok
              else "resource limits not supported by this OS"),
        Layer("timeouts", True, "start-up, per-move with overage bank, whole match; SIGTERM, grace, SIGKILL"),
        *(Layer(name, isolation[name].active, isolation[name].reason)
          for name in ("namespaces", "seccomp", "filesystem")),
    ]


def require_layers(names: tuple[str, ...], limits: Limits | None = None, *, validates: bool = True) -> list[Layer]:
    """Every layer (as :func:`sandbox_layers` reports it), after checking that the named ones are active.

    Raises:
        LayerUnavailable: naming each required layer that is inactive and why.
    """
    layers = sandbox_layers(limits, validates=validates)
    missing = [layer for layer in layers if layer.name in names and not layer.active]
    if missing:
        detail = "; ".join(f"{layer.name} ({layer.reason})" for layer in missing)
        raise LayerUnavailable(f"required sandbox layers inactive: {detail}")
    return layers


@functools.cache
def layer_2_files(directory: Path = SEAT_DIR) -> tuple[Path, ...]:
    """The files of layer 2, without which no bot starts: ``restricted.py`` and every file of the
    seat folder it imports, directly or through another (read from their import statements once)."""
    found: list[Path] = []
    todo = ["restricted"]
    while todo:
        path = directory / f"{todo.pop()}.py"
        if path in found:
            continue
        found.append(path)
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (OSError, SyntaxError):
            continue  # reported missing (or failing at load) all the same
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo.append(node.module or "__init__")  # ``from . import NAME``: the package's own
    return tuple(found)
