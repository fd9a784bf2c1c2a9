"""The tests' outer box: where attacks that could hurt the machine run, should a sandbox layer fail.

The box is a new PID namespace with its own ``/proc`` (``kill(-1)`` there reaches only the box,
and its processes all die with its first one), inside a cgroup v1 ``pids`` group that caps how
many processes and threads it may hold and, when asked, a ``memory`` group that caps its memory.
The cgroups are used when this machine lets us make them (root with cgroup v1, as in CI);
without them the box is the PID namespace alone.

Used by ``tests/sandbox/test_isolation.py`` (one seat per box) and ``tests/security/`` (a whole
arena server per box).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OuterBox", "cgroup", "outer_box", "pids_cgroup"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_RMDIR_WAIT_S = 5.0  # a cgroup stays busy for a moment while its last processes exit


@contextmanager
def cgroup(controller: str, settings: dict[str, str]) -> Iterator[Path | None]:
    """A fresh cgroup v1 group of ``controller`` with ``settings`` written, or None if we may not make one."""
    root = CGROUP_ROOT / controller
    if not os.access(root, os.W_OK):
        yield None
        return
    group = root / f"arena-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        for name, value in settings.items():
            (group / name).write_text(value)
        yield group
    finally:
        deadline = time.monotonic() + _RMDIR_WAIT_S
        while True:
            try:
                group.rmdir()
                break
            except OSError:  # EBUSY: processes of the box are still exiting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@contextmanager
def pids_cgroup(max_pids: int = 64) -> Iterator[Path | None]:
    """A cgroup v1 ``pids`` group for the outer box, when this machine lets us make one."""
    with cgroup("pids", {"pids.max": str(max_pids)}) as group:
        yield group


# The head of the attack bots in the sandbox tests: each attempt prints one line, "NAME: OK
# value" or "NAME: ExceptionType errno=N", to the seat's log for the test to read.
ATTEMPT_PRELUDE = """
import os

def attempt(name, fn):
    try:
        result = fn()
    except BaseException as exc:
        print(f"{name}: {type(exc).__name__} errno={getattr(exc, 'errno', None)}", flush=True)
    else:
        print(f"{name}: OK {result!r:.300}", flush=True)

def agent(observation, configuration):
    return 0

"""

@dataclass(frozen=True, slots=True)
class OuterBox:
    """How to start a command in the box; the box's cgroups (None where unavailable)."""

    pids_group: Path | None
    memory_group: Path | None

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in a new PID namespace (with its own ``/proc``), inside the box's cgroups."""
        box = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc"]
        if os.geteuid() != 0:
            box[1:1] = ["--user", "--map-current-user"]  # the sandbox maps its uid from ours
        command = [*box, *argv]
        groups = [str(g) for g in (self.pids_group, self.memory_group) if g is not None]
        if groups:  # join every group, then become the box: nothing it starts can leave them
            join = 'for g in $GROUPS_; do echo $$ > "$g/cgroup.procs" || exit 1; done; exec "$@"'
            command = ["env", f"GROUPS_={' '.join(groups)}", "sh", "-c", join, "sh", *command]
        return command

    def processes(self) -> set[int] | None:
        """Every process in the box now (host pids), from its ``pids`` group; None without one."""
        if self.pids_group is None:
            return None
        text = (self.pids_group / "cgroup.procs").read_text()
        return {int(pid) for pid in text.split()}


@contextmanager
def outer_box(*, max_pids: int = 64, memory_bytes: int | None = None) -> Iterator[OuterBox]:
    """An outer box for the block; its cgroups are removed at the end (its processes must be gone)."""
    with ExitStack() as stack:
        pids = stack.enter_context(pids_cgroup(max_pids))
        memory = None
        if memory_bytes is not None:
            memory = stack.enter_context(cgroup("memory", {"memory.limit_in_bytes": str(memory_bytes)}))
        yield OuterBox(pids, memory)
