"""Which sandbox layers are active on this machine, with the reason for each."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from protocol.errors import LayerUnavailable

from .isolation import isolation_status
from .process import RUNTIME_PATH, bot_python

__all__ = ["LAYER_NAMES", "Layer", "require_layers", "sandbox_layers"]

# Layer 2: without these files no bot starts.
RESTRICTED_PATHS = tuple(
    RUNTIME_PATH.with_name(name) for name in ("restricted.py", "_guards.py", "_stdlib_guards.py", "_numpy_guards.py"))

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


def sandbox_layers() -> list[Layer]:
    """Report every layer, probing what the machine offers."""
    python = bot_python()
    runtime_ok = os.access(python, os.X_OK) and RUNTIME_PATH.is_file()
    limits_ok = hasattr(resource, "RLIMIT_AS") and hasattr(resource, "RLIMIT_NPROC")
    isolation = isolation_status(python, RUNTIME_PATH)  # probed once per process
    missing = [str(path) for path in RESTRICTED_PATHS if not path.is_file()]
    return [
        Layer("static_analysis", True, "every submission and local bot is checked before it runs"),
        Layer("restricted_runtime", not missing,
              f"{', '.join(missing)} missing: no bot can start" if missing
              else "builtins whitelist, guarded attributes and imports, module proxies"),
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


def require_layers(names: tuple[str, ...]) -> list[Layer]:
    """Every layer, after checking that the named ones are active.

    Raises:
        LayerUnavailable: naming each required layer that is inactive and why.
    """
    layers = sandbox_layers()
    missing = [layer for layer in layers if layer.name in names and not layer.active]
    if missing:
        detail = "; ".join(f"{layer.name} ({layer.reason})" for layer in missing)
        raise LayerUnavailable(f"required sandbox layers inactive: {detail}")
    return layers
