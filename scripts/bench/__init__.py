"""The benchmark suite of issue 4: ``scripts/bench/run`` (``python -m scripts.bench``) runs it all.

One module per area (``startup``, ``moves``, ``kaggle``, ``spectators``, ``storage``,
``memory``), each with ``async def run(quick: bool) -> Section``; ``suite`` runs them, prints
the table and writes ``bench-results/latest.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # the server's packages, when run from elsewhere (or imported by a test)
    sys.path.insert(0, _ROOT)
