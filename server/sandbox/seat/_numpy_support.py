"""numpy in a seat, the operator's opt-in (``allow_numpy``): importing it, seeding it, sending its values.

``python -I -S`` leaves every site directory off ``sys.path``: :func:`enable_numpy` adds the one
that holds numpy (in the sandbox's view it holds numpy alone) before the bot's code runs, or, in
a fork server's zygote, before it forks seats. Its global generator is seeded from the match
seed and the seat as ``random`` is, and its scalars and arrays in an action go out as plain JSON
values (:func:`plain`). Layer 2's guards of numpy are ``_numpy_guards.py``.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
from typing import Any

__all__ = ["NUMPY_IMPORTS", "enable_numpy", "plain", "seed_numpy"]

NUMPY_IMPORTS = ("numpy", "numpy.fft", "numpy.linalg", "numpy.random")  # restricted.NUMPY_MODULES


def enable_numpy() -> None:
    """Import numpy and the submodules a bot may import, from the site directory that holds it.

    ``python -I -S`` puts no site directory on ``sys.path``: the first of the interpreter's that
    holds numpy joins it (in the sandbox's view it holds numpy alone). Runs before the bot's code.

    Raises:
        ImportError: numpy is not installed for this interpreter, or fails to import.
    """
    if "numpy" not in sys.modules:
        import site  # with -S importing it adds nothing to sys.path; its list of directories is all we use

        for directory in site.getsitepackages():
            if os.path.isfile(os.path.join(directory, "numpy", "__init__.py")):
                if directory not in sys.path:
                    sys.path.append(directory)
                break
        else:
            raise ImportError(f"numpy is not installed for {sys.executable} (Debian: apt-get install python3-numpy)")
    for name in NUMPY_IMPORTS:
        importlib.import_module(name)


def seed_numpy(seed: str) -> None:
    """Seed numpy's global generator (``numpy.random.rand``...) from ``seed``, as ``random`` is."""
    numpy = sys.modules["numpy"]
    numpy.random.seed(random.Random(f"{seed}:numpy").getrandbits(32))


def plain(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy's scalars and arrays as Python values, nothing else."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        # The base classes' own methods: a subclass of the bot's cannot run code here.
        if isinstance(value, numpy.generic):
            return numpy.generic.item(value)
        if isinstance(value, numpy.ndarray):
            return numpy.ndarray.tolist(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
