"""A process and what it holds, read from ``/proc``: its descendants and its descriptors.

For the crash test (``tests/server/test_crash.py``) and the soak (``scripts/soak.py``), which
must show that no process of a server outlives it. A process is named by its pid *and* its
start time (field 22 of ``/proc/PID/stat``, clock ticks since boot), so a pid the kernel hands
to a new process after the old one died is never taken for the old one. The descendants are
found by walking every ``/proc/PID/stat`` once and following the parent pids down from the
root; a process whose parent died is re-parented (to init or a subreaper) and drops out of the
tree, which is why a caller records the tree *before* it kills or stops the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "alive", "descendants", "open_fds"]


@dataclass(frozen=True, slots=True)
class Proc:
    """One process as it was seen: its pid, its start time (clock ticks since boot) and command."""

    pid: int
    start_ticks: int
    command: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """State, parent pid and start time of ``pid``, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command may hold spaces and parentheses: the fields follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]


def descendants(root: int) -> list[Proc]:
    """Every live process below ``root`` (children, their children...), by pid."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found is not None and found[0] != "Z":
            children.setdefault(found[1], []).append((int(entry.name), found[2]))
    tree: list[Proc] = []
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            tree.append(Proc(pid, start, _command(pid)))
            todo.append(pid)
    return sorted(tree, key=lambda p: p.pid)


def alive(procs: list[Proc]) -> list[Proc]:
    """Those of ``procs`` still running: same pid and start time, and not a zombie."""
    running = []
    for proc in procs:
        found = _stat(proc.pid)
        if found is not None and found[2] == proc.start_ticks and found[0] != "Z":
            running.append(proc)
    return running


def open_fds(pid: int) -> int:
    """How many descriptors ``pid`` has open (entries of ``/proc/PID/fd``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))
