"""Layer 8 of the sandbox, the read-only filesystem view: what a seat's root holds.

Theory of operation. bubblewrap (``isolation.py``) builds the seat's root empty and read-only,
then binds into it only

* what the bot interpreter maps and imports (:func:`filesystem_view`), found once by running it
  outside the sandbox: its executable, the directories of its libraries and of its standard
  library; the merged-``/usr`` links; ``/dev/null``, ``/dev/zero``, ``/dev/urandom``;
* the seat folder (``server/sandbox/seat/``: what runs inside a seat, see its ``__init__.py``),
  every file of it and nothing else of the project (:func:`seat_files` lists the folder; no
  list of its files is written anywhere), copied in read-only through memory file descriptors at
  ``/arena/<name>`` (:func:`seat_contents`), so that the sandbox needs no access to the
  project's directory;
* with numpy allowed (the operator's opt-in, seat by seat or for a zygote whose pool allows it),
  numpy's package directory, alone in its site directory, the libraries it loads and the links
  the loader follows to them (Debian's ``/etc/alternatives/libblas.so.3-*`` and kin: those
  links, not ``/etc``), found once by importing numpy (:func:`numpy_view`).

Not ``/etc``, ``/home``, ``/root``, ``/tmp``, the project, the database, other submissions.
Without the view (a test-only choice) a seat runs the seat folder's files from the host's tree:
from a read-only copy when bubblewrap's user could not read the originals
(:func:`readable_runtime`).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from protocol.errors import LayerUnavailable

from . import seat
from .seat import SANDBOX_DIR

__all__ = [
    "RUNTIME_PATH", "SEAT_DIR", "ZYGOTE_PATH", "filesystem_view", "numpy_view", "others_may_read",
    "readable_runtime", "seat_contents", "seat_files", "seat_paths",
]  # fmt: skip

log = logging.getLogger(__name__)

SEAT_DIR = Path(seat.__file__).parent  # what runs inside a seat, and nothing else
RUNTIME_PATH = SEAT_DIR / seat.RUNTIME
ZYGOTE_PATH = SEAT_DIR / seat.ZYGOTE
_PROBE_TIMEOUT_S = 20.0

# Run once outside the sandbox: which files the interpreter maps and where its library lives.
_DISCOVER = (
    "import sys, json, math, random, collections, itertools, functools, heapq, bisect, statistics, string, re, "
    "time, typing, dataclasses, enum, copy, decimal, fractions\n"
    "maps = set()\n"
    "for line in open('/proc/self/maps'):\n"
    "    parts = line.split(None, 5)\n"
    "    if len(parts) == 6 and parts[5].startswith('/'):\n"
    "        maps.add(parts[5].strip())\n"
    "print(json.dumps({'executable': sys.executable, 'path': sys.path, 'maps': sorted(maps)}))\n"
)
# Run once outside the sandbox when a seat may use numpy: the runtime (argv[1]) imports it as in a
# seat; then what the process maps, and every library by the path the loader opened it under.
_DISCOVER_NUMPY = r"""
import ctypes, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bot_runtime", sys.argv[1])
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
runtime.enable_numpy()
maps = set()
for line in open("/proc/self/maps"):
    parts = line.split(None, 5)
    if len(parts) == 6 and parts[5].startswith("/"):
        maps.add(parts[5].strip())
class Info(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]
opened = []
def found(info, size, data):
    opened.append((info.contents.name or b"").decode())
    return 0
ctypes.CDLL(None).dl_iterate_phdr(ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p)(found), None)
package = sys.modules["numpy"].__path__[0]
print(json.dumps({"package": package, "maps": sorted(maps), "opened": [p for p in opened if p.startswith("/")]}))
"""


# -- the seat folder -------------------------------------------------------------------------------


def seat_files(directory: Path = SEAT_DIR) -> tuple[str, ...]:
    """The names of the files a seat's view holds: every module of the seat folder ``directory``."""
    return tuple(sorted(path.name for path in directory.glob("*.py")))


def seat_contents(directory: Path) -> list[tuple[str, bytes]]:
    """Each file of the seat folder ``directory`` as the view holds it: its path in the sandbox, its bytes.

    Raises:
        OSError: a file cannot be read.
    """
    return [(posixpath.join(SANDBOX_DIR, name), (directory / name).read_bytes()) for name in seat_files(directory)]


def seat_paths(directory: Path, *, has_view: bool, as_nobody: bool) -> dict[str, str]:
    """Where a seat finds each file of the seat folder ``directory``, by its host path: in the view's
    ``/arena``; without the view, in the host's tree (a readable copy when bubblewrap runs ``as_nobody``).
    """
    if has_view:
        inside = SANDBOX_DIR
    elif as_nobody:
        inside = str(readable_runtime(directory / seat.RUNTIME).parent)
    else:
        inside = str(directory)
    return {str(directory / name): posixpath.join(inside, name) for name in seat_files(directory)}


@functools.cache
def readable_runtime(runtime_path: Path) -> Path:
    """``runtime_path`` if uid 65534 may read it and the rest of its folder's files, else a copy that it may.

    Without the filesystem view, bwrap (started as 65534) runs the runtime from the host's tree:
    a checkout under a directory only root may enter (``mktemp -d`` makes one) is out of its
    reach. The copy sits in a directory of its own under the system's temporary directory,
    owned by root, read-only for everyone else, removed when this process exits.
    """
    files = [runtime_path.with_name(name) for name in seat_files(runtime_path.parent)]
    if all(others_may_read(path) for path in files):
        return runtime_path
    copy = Path(tempfile.mkdtemp(prefix="arena-runtime-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for path in files:
        shutil.copyfile(path, copy / path.name)
        (copy / path.name).chmod(0o444)
    copy.chmod(0o755)
    return copy / runtime_path.name


def others_may_read(path: Path) -> bool:
    """Whether a user neither owning nor in the group of ``path`` or its directories may read it."""
    resolved = path.resolve()
    if not os.stat(resolved).st_mode & stat.S_IROTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in resolved.parents)


# -- the interpreter's files -----------------------------------------------------------------------


@functools.cache
def filesystem_view(python: str) -> tuple[str, ...]:
    """bwrap arguments for a root that holds only what ``python`` maps and imports.

    Raises:
        LayerUnavailable: the interpreter could not be run to find out.
    """
    args = ["--ro-bind", os.path.realpath(python), os.path.realpath(python)]
    for d in _view_directories(python):
        args += ["--ro-bind", d, d]
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):  # merged-/usr links
        link = f"/{top}"
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
    args += ["--dir", "/dev"]
    for dev in ("null", "zero", "urandom"):
        args += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
    return tuple(args)


@functools.cache
def _view_directories(python: str) -> tuple[str, ...]:
    """The directories the view binds for ``python``: what it maps and imports from, outermost only.

    Raises:
        LayerUnavailable: the interpreter could not be run to find out.
    """
    try:
        found = subprocess.run(
            [python, "-I", "-S", "-c", _DISCOVER], capture_output=True, env={}, cwd="/",
            timeout=_PROBE_TIMEOUT_S, check=True,
        )
        facts = json.loads(found.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise LayerUnavailable(f"could not inspect the bot interpreter {python}: {exc}") from exc
    executable = os.path.realpath(python)
    dirs = {os.path.realpath(p) for p in facts["path"] if os.path.isdir(p)}
    dirs |= {os.path.dirname(os.path.realpath(p)) for p in facts["maps"] if os.path.realpath(p) != executable}
    # The ELF interpreter is named by a fixed path (/lib64/ld-linux-x86-64.so.2): keep its directory.
    dirs |= {d for d in ("/lib64", "/usr/lib64", "/lib32", "/usr/lib32") if os.path.isdir(d) and not os.path.islink(d)}
    kept: list[str] = []
    for d in sorted(dirs):  # a directory inside one already bound comes with it
        if d != "/" and not _is_under(d, kept):
            kept.append(d)
    return tuple(kept)


def _is_under(path: str, directories: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in directories)


@functools.cache
def numpy_view(python: str) -> tuple[str, ...]:
    """bwrap arguments that add numpy to ``python``'s view; () when it cannot import numpy.

    numpy's package directory is bound alone at its path (its site directory holds nothing
    else in the view), then the directories of the libraries it maps that the view lacks,
    then, for every library, the links the loader followed that lie outside the view (Debian
    picks its BLAS through ``/etc/alternatives``): as links, with their targets.
    """
    try:
        found = subprocess.run(
            [python, "-I", "-S", "-c", _DISCOVER_NUMPY, str(RUNTIME_PATH)],
            capture_output=True, env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}, cwd="/",
            timeout=_PROBE_TIMEOUT_S,
        )
        facts = json.loads(found.stdout) if found.returncode == 0 else None
        why = (found.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {found.returncode}"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        facts, why = None, str(exc)
    if facts is None:
        log.warning("the bot interpreter %s cannot import numpy, so seats allowed numpy will fail to load: %s",
                    python, why)
        return ()
    inside = list(_view_directories(python))
    package = os.path.realpath(facts["package"])
    args = ["--ro-bind", package, os.path.normpath(facts["package"])]
    inside.append(package)
    executable = os.path.realpath(python)
    mapped = {os.path.realpath(p) for p in facts["maps"]} - {executable}
    for directory in sorted({os.path.dirname(p) for p in mapped} - {"/"}):
        if not _is_under(directory, inside):
            args += ["--ro-bind", directory, directory]
            inside.append(directory)
    links: dict[str, str] = {}
    for path in facts["opened"]:
        hops = 0
        while os.path.islink(path) and hops < 40:  # the kernel's own limit on a chain of links
            target = os.readlink(path)
            if not _is_under(os.path.realpath(os.path.dirname(path)), inside):
                links[path] = target
            path, hops = os.path.normpath(os.path.join(os.path.dirname(path), target)), hops + 1
    for path, target in sorted(links.items()):
        args += ["--symlink", target, path]
    return tuple(args)

