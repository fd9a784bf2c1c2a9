"""Accounting for the processes of a boxed arena server: which may stay, which are left over.

A server in fork-server mode keeps processes that outlive any one match: bubblewrap and its
reaper around the zygote, the zygote, and the pool of seats it forked ahead of need (each
waiting for its ``init``). They are told apart by ancestry, which no bot can change: the zygote
is the ``zygote.py`` interpreter whose parent is bubblewrap; its children are forked seats. A
seat that outlived its match is still a child of the zygote, so the zygote's children may
number at most the pool's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ForkServerProcesses", "describe", "descendants", "fork_server_processes"]


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += children - found
            found |= children
    return found


def describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        uid = re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} uid={uid.group(1) if uid else '?'} {cmdline[:120]}"


def _parent_and_name(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return int(stat[stat.rindex(")") + 2 :].split()[1]), name


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@dataclass(frozen=True)
class ForkServerProcesses:
    """The fork server's own processes among some pids, and the seats it forked."""

    own: set[int]  # bubblewrap, its reaper, the zygote
    seats: set[int]  # the zygote's children: the pool, and any seat still running


def fork_server_processes(pids: set[int]) -> ForkServerProcesses:
    """Split ``pids`` (host pids) into the fork servers' own processes and their seats."""
    parents = {pid: found for pid in pids if (found := _parent_and_name(pid)) is not None}
    zygotes = {pid for pid, (ppid, name) in parents.items()
               if name.startswith("python") and b"/arena/zygote.py" in _cmdline(pid)
               and parents.get(ppid, (0, ""))[1] == "bwrap"}
    own = set(zygotes)
    for zygote in zygotes:  # bubblewrap's reaper, then bubblewrap itself
        ppid = parents[zygote][0]
        while ppid in parents and parents[ppid][1] == "bwrap":
            own.add(ppid)
            ppid = parents[ppid][0]
    seats = {pid for pid, (ppid, _) in parents.items() if ppid in zygotes}
    return ForkServerProcesses(own, seats)
