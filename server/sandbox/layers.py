"""Which sandbox layers are active on this machine, with the reason for each."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from .process import RUNTIME_PATH, bot_python

__all__ = ["LAYER_NAMES", "Layer", "sandbox_layers"]

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
    return [
        Layer("static_analysis", True, "every submission and local bot is checked before it runs"),
        Layer("restricted_runtime", False, "not built yet: bots run with the interpreter's full builtins"),
        Layer("process_isolation", runtime_ok,
              f"one process per seat under {python}, own session, clean environment" if runtime_ok
              else f"bot interpreter {python} or runtime missing"),
        Layer("resource_limits", limits_ok,
              "rlimits on CPU, address space, processes, file size, open files; bounded output" if limits_ok
              else "resource limits not supported by this OS"),
        Layer("timeouts", True, "start-up, per-move with overage bank, whole match; SIGTERM, grace, SIGKILL"),
        Layer("namespaces", False, "not built yet"),
        Layer("seccomp", False, "not built yet"),
        Layer("filesystem", False, "not built yet"),
    ]
