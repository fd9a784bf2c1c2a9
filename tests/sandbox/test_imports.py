"""The sandbox package's modules import each other one way: no circle, none hidden in a function.

Launching seats is split by job (``process.py`` the seat process, ``fresh.py`` fresh seats,
``forkserver.py`` and ``_forkseat.py`` forked ones, ``launch.py`` the seat modes): each imports
the ones below it at module level, and nothing imports back. Read from the source with ``ast``,
by the project's import graph (``tests/test_imports.py``).
"""

from __future__ import annotations

from tests.test_imports import Edge, circles, import_edges, is_within


def sandbox_edges() -> list[Edge]:
    """Every import from a sandbox module to another, except a package's reading of its own modules."""
    return [edge for edge in import_edges()
            if is_within(edge.source, ("server.sandbox",)) and is_within(edge.target, ("server.sandbox",))
            and edge.target != edge.source.rpartition(".")[0] and edge.source != edge.target.rpartition(".")[0]]


def test_no_module_of_the_sandbox_imports_one_inside_a_function() -> None:
    assert [str(edge) for edge in sandbox_edges() if edge.is_lazy] == []


def test_the_sandbox_modules_import_each_other_without_a_circle() -> None:
    assert [" -> ".join(circle) for circle in circles(sandbox_edges())] == []


def test_the_launching_modules_import_downwards() -> None:
    below = {
        "server.sandbox.process": set(),
        "server.sandbox._forkseat": {"server.sandbox.process"},
        "server.sandbox.fresh": {"server.sandbox.process"},
        "server.sandbox.forkserver": {"server.sandbox._forkseat", "server.sandbox.process"},
        "server.sandbox.launch": {"server.sandbox.forkserver", "server.sandbox.fresh", "server.sandbox.process"},
    }
    edges = sandbox_edges()
    for name, allowed in below.items():
        launching = {edge.target for edge in edges if edge.source == name} & set(below)
        assert launching == allowed, name
