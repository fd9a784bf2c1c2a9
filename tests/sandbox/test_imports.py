"""The sandbox package's modules import each other one way: no circle, none hidden in a function.

Launching seats is split by job (``process.py`` the seat process, ``fresh.py`` fresh seats,
``forkserver.py`` and ``_forkseat.py`` forked ones, ``launch.py`` the seat modes): each imports
the ones below it at module level, and nothing imports back. Read from the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "server" / "sandbox"
PROJECT_PACKAGES = ("server", "client", "protocol")


def module_name(path: Path) -> str:
    parts = path.relative_to(SANDBOX.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolved(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The project modules an import statement names (``from . import x`` may name a module or a name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] in PROJECT_PACKAGES]
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = ".".join(package[: len(package) - node.level + 1])
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    if target.split(".")[0] not in PROJECT_PACKAGES:
        return []
    return [target, *(f"{target}.{alias.name}" for alias in node.names)]


def sandbox_imports() -> dict[str, dict[str, bool]]:
    """Each sandbox module -> the sandbox modules it imports, and whether only inside a function."""
    paths = {module_name(path): path for path in SANDBOX.rglob("*.py")}
    graph: dict[str, dict[str, bool]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_bytes(), str(path))
        edges: dict[str, bool] = {}
        in_function = {id(node) for function in ast.walk(tree)
                       if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(function)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in resolved(path, node):
                    if target in paths and target != name:
                        edges[target] = edges.get(target, True) and id(node) in in_function
        graph[name] = edges
    return graph


def test_no_module_of_the_sandbox_imports_one_inside_a_function() -> None:
    hidden = {name: sorted(target for target, is_hidden in edges.items() if is_hidden)
              for name, edges in sandbox_imports().items()}
    assert {name: targets for name, targets in hidden.items() if targets} == {}


def test_the_sandbox_modules_import_each_other_without_a_circle() -> None:
    graph = sandbox_imports()
    circles = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if target == name.rpartition(".")[0] or name == target.rpartition(".")[0]:
                continue  # a package and its own modules: ``from . import NAME`` reads the package
            if state.get(target) == 1:
                circles.append([*path[path.index(target):], target])
            elif target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert circles == []


def test_the_launching_modules_import_downwards() -> None:
    graph = sandbox_imports()
    below = {
        "server.sandbox.process": set(),
        "server.sandbox._forkseat": {"server.sandbox.process"},
        "server.sandbox.fresh": {"server.sandbox.process"},
        "server.sandbox.forkserver": {"server.sandbox._forkseat", "server.sandbox.process"},
        "server.sandbox.launch": {"server.sandbox.forkserver", "server.sandbox.fresh", "server.sandbox.process"},
    }
    for name, allowed in below.items():
        launching = set(graph[name]) & set(below)
        assert launching == allowed, name
