"""The seat folder (``server/sandbox/seat/``): exactly what runs inside a seat, and what the view holds.

Every module of the folder runs under the bot interpreter (``python3 -I -S``), loaded by path:
it may import the standard library and the folder, nothing else. The filesystem view copies in
exactly the folder's files, found by listing it. The values both sides agree on are written once,
in the folder's ``__init__.py``. Run by path from anywhere (a copy of the folder elsewhere, as
without the view), the runtime loads its neighbours from its own folder.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.sandbox import Limits, seat
from server.sandbox.isolation import build_isolation
from server.sandbox.layers import layer_2_files
from server.sandbox.process import CLEAN_ENV, bot_python
from server.sandbox.view import RUNTIME_PATH, SEAT_DIR, ZYGOTE_PATH, seat_files

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "server" / "sandbox"
FOLDER = SANDBOX_DIR / "seat"
MODULES = sorted(FOLDER.glob("*.py"))


def imports(tree: ast.AST) -> list[tuple[int, str, int]]:
    """Every import statement's (level, module, line), at module level or inside a function alike."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", node.lineno))
    return found


def test_the_seat_folder_is_the_one_the_server_launches_from() -> None:
    assert SEAT_DIR == FOLDER and RUNTIME_PATH.parent == ZYGOTE_PATH.parent == FOLDER
    assert {RUNTIME_PATH.name, ZYGOTE_PATH.name, "restricted.py", "__init__.py"} <= {p.name for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_a_seat_module_imports_the_standard_library_and_the_folder_only(path: Path) -> None:
    neighbours = {p.stem for p in MODULES}
    outside = []
    for level, module, line in imports(ast.parse(path.read_bytes(), str(path))):
        if level > 1 or (level == 1 and module and module.split(".")[0] not in neighbours):
            outside.append(f"line {line}: {'.' * level}{module} (outside the folder)")
        elif level == 0 and module.split(".")[0] not in sys.stdlib_module_names:
            outside.append(f"line {line}: {module} (not the standard library)")
    assert outside == [], f"{path.name} runs in a seat, standard library only: {outside}"


def test_the_filesystem_view_holds_exactly_the_seat_folders_files() -> None:
    isolation = build_isolation(python=bot_python())
    argv, fds = isolation.wrap_command([bot_python(), "-I", "-S", str(RUNTIME_PATH)], runtime_path=RUNTIME_PATH,
                                       python=bot_python())
    try:
        copied = {argv[i + 2]: os.pread(int(argv[i + 1]), 1 << 20, 0)
                  for i, arg in enumerate(argv) if arg == "--ro-bind-data"}
    finally:
        for fd in fds:
            os.close(fd)
    assert copied == {f"/arena/{path.name}": path.read_bytes() for path in MODULES}
    assert argv[-1] == "/arena/bot_runtime.py"  # the command runs the copy
    assert seat_files() == tuple(path.name for path in MODULES)


def test_layer_2s_files_are_read_from_restricted_py_imports() -> None:
    names = {path.name for path in layer_2_files()}
    assert {"restricted.py", "_guards.py", "_stdlib_guards.py", "_numpy_guards.py", "__init__.py"} == names
    assert {path.parent for path in layer_2_files()} == {FOLDER}


def test_the_values_both_sides_agree_on_are_written_once() -> None:
    """The uid, the view's directory and the bot's file and module names are spelt out in the
    seat folder's ``__init__.py`` only (``"--seccomp"`` is also bubblewrap's own option, and the
    zygote names the runtime's file to load it before the folder is a package)."""
    contract = {seat.NOBODY, seat.BOT_FILENAME, seat.BOT_MODULE, seat.RUNTIME, seat.ZYGOTE}
    found = []
    for path in sorted(SANDBOX_DIR.rglob("*.py")):
        if path == FOLDER / "__init__.py":
            continue
        tree = ast.parse(path.read_bytes(), str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in docstrings:
                continue
            value = node.value
            if value in contract or (isinstance(value, str) and value.startswith(seat.SANDBOX_DIR)):
                if not (path == ZYGOTE_PATH and value == seat.RUNTIME):
                    found.append(f"{path.relative_to(SANDBOX_DIR)}:{node.lineno}: {value!r}")
    assert found == []


def test_the_runtime_loads_its_neighbours_from_its_own_folder(tmp_path: Path) -> None:
    """A copy of the folder anywhere (the view's /arena, a readable copy) runs by path: the
    runtime makes its own folder the package it imports layer 2 and its native calls from."""
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for path in MODULES:
        (copy / path.name).write_bytes(path.read_bytes())
    init = {"type": "init", "protocol_version": 1, "seat": 0, "seed": 1, "code": "def agent(o, c):\n    return 4\n",
            "configuration": {}, "limits": Limits(cpu_s=10).for_runtime()}
    act = {"type": "act", "step": 1, "observation": {}}
    script = (  # the runtime as its own program, then what it loaded, and from where
        "import runpy, sys\n"
        "sys.argv = sys.argv[1:]  # the runtime's own command line: no option\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    package = sorted(name for name in sys.modules if name.startswith('arena_sandbox'))\n"
        "    print(package, sys.modules['arena_sandbox.restricted'].__file__, file=sys.stderr)\n"
    )
    done = subprocess.run([bot_python(), "-I", "-S", "-c", script, str(copy / "bot_runtime.py")], cwd="/",
                          input=f"{json.dumps(init)}\n{json.dumps(act)}\n", capture_output=True, text=True,
                          timeout=30, env=CLEAN_ENV)
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert [reply["type"] for reply in replies] == ["ready", "action"] and replies[1]["action"] == 4, done.stderr
    modules = ["_guards", "_native", "_numpy_guards", "_numpy_support", "_stdlib_guards", "restricted"]
    loaded = ["arena_sandbox", *(f"arena_sandbox.{name}" for name in modules)]
    assert done.stderr.strip().splitlines()[-1] == f"{loaded} {copy}/restricted.py", done.stderr
