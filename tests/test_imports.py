"""The project's modules import one way: no circle, and nothing imports a floor above its own.

The floors are those of the style guide (``../shared/STYLE.md``, "Layout"), top to bottom:
the client, the app, the HTTP and WebSocket routes, the ladder, the settings and health the
ladder reports to, the matches, and at the bottom ``protocol/``, the sandbox, storage and the
other modules that import nothing above them. Every module of ``server/``, ``client/`` and
``protocol/`` is placed on one floor by ``FLOORS`` (a new module must be placed there), and
every import is an edge, also one written inside a function or under ``TYPE_CHECKING``: an
import moved into a function still runs, so it cannot hide a circle. The one exception is the
style guide's own: the command-line modules import server parts inside the commands that need
them (``arena play``, ``arena serve``), and the remote-agent SDK never imports ``server/`` at all.
Read from the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("server", "client", "protocol")

# Top to bottom; a module is on the floor of the longest prefix that names it. Within a floor,
# modules import each other freely (the circle check still applies).
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("client", ("client",)),
    # The app, and the server that runs it and drains it on a signal.
    ("app", ("server.app", "server.__main__", "server.drain")),
    # The routes, and the app's resources they read from each request (``arena_state``).
    ("routes", ("server.http", "server.web", "server.state")),
    ("ladder", ("server.ladder",)),
    ("settings and health", ("server.config", "server.health")),
    # The match queue's worker side (claim loop, leases) runs matches through the manager.
    ("matches", ("server.matches", "server.cluster")),
    # ``server`` is the package itself (its version); ``server.ladder.rules`` is the ladder's pure
    # rating rule, which storage applies inside its write transaction; the example bots are sources.
    # ``server.stats`` is pure statistics (comparing bots), for the CLI and the server alike.
    ("protocol, sandbox, storage", ("protocol", "server.sandbox", "server.storage", "server.ladder.rules",
                                    "server.bots", "server.stats", "server")),
)
# The remote-agent SDK, what a bot author imports to play from their own machine (``client``
# re-exports ``client.sdk``).
SDK = ("client", "client.sdk")


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    line: int
    is_lazy: bool  # written inside a function
    is_typing: bool  # written under ``if TYPE_CHECKING:``, for annotations only

    def __str__(self) -> str:
        where = "inside a function" if self.is_lazy else "for annotations" if self.is_typing else "at module level"
        return f"{self.source}:{self.line} imports {self.target} {where}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PROJECT_PACKAGES for path in (ROOT / package).rglob("*.py")
            if "__pycache__" not in path.parts}


def named_modules(path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The project modules an import statement names: ``from a import b`` names ``a.b`` where that
    is a module, else ``a``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = ".".join(package[: len(package) - node.level + 1])
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    if source.split(".")[0] not in PROJECT_PACKAGES:
        return []
    named = {f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names}
    return sorted(name for name in named if name in modules)


def is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def import_edges() -> list[Edge]:
    """Every import between the project's modules, at module level or inside a function."""
    modules = project_modules()
    edges = []
    for name, path in sorted(modules.items()):
        tree = ast.parse(path.read_bytes(), str(path))
        in_function = {id(node) for function in ast.walk(tree)
                       if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(function)}
        for_typing = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and is_type_checking(block.test)
                      for statement in block.body for node in ast.walk(statement)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges.extend(Edge(name, target, node.lineno, id(node) in in_function, id(node) in for_typing)
                             for target in named_modules(path, node, modules) if target != name)
    return edges


def floor_of(module: str) -> int:
    """The floor a module is on, 0 at the top."""
    best, floor = -1, -1
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), index
    assert floor >= 0, f"{module} is on no floor: place it in FLOORS"
    return floor


def is_within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def circles(edges: list[Edge]) -> list[list[str]]:
    """Every circle a depth-first walk meets (each back edge closes one)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    found = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    return found


def test_every_module_is_on_a_floor() -> None:
    for name in project_modules():
        floor_of(name)


def test_no_import_circle() -> None:
    assert [" -> ".join(circle) for circle in circles(import_edges())] == []


def test_nothing_imports_a_floor_above_its_own() -> None:
    upward = [f"{edge} ({FLOORS[floor_of(edge.target)][0]} is above {FLOORS[floor_of(edge.source)][0]})"
              for edge in import_edges() if floor_of(edge.target) < floor_of(edge.source)]
    assert upward == []


def test_the_client_imports_the_server_only_inside_commands() -> None:
    # The style guide's one allowance: the CLI is above the server, but a command imports the
    # server parts it needs when it runs, so ``arena`` starts without them. An import for
    # annotations alone never runs.
    eager = [str(edge) for edge in import_edges() if is_within(edge.source, ("client",))
             and is_within(edge.target, ("server",)) and not (edge.is_lazy or edge.is_typing)]
    assert eager == []


def test_the_sdk_never_imports_the_server() -> None:
    modules = project_modules()
    edges = import_edges()
    reached, todo = set(SDK), list(SDK)
    while todo:  # the SDK's modules and every project module they import, lazily or not
        name = todo.pop()
        for edge in edges:
            if edge.source == name and edge.target not in reached:
                reached.add(edge.target)
                todo.append(edge.target)
    assert all(name in modules for name in SDK)
    assert sorted(name for name in reached if is_within(name, ("server",))) == []


def test_the_import_graph_sees_lazy_imports() -> None:
    edges = import_edges()
    assert any(edge.is_lazy for edge in edges)  # the CLI's commands import the server lazily
    assert any(edge.source == "server.app" and edge.target == "server.http.routes" for edge in edges)
